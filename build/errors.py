"""One exception type for every user-facing failure, so the CLI prints one line and exits."""


class ZooError(Exception):
    """A problem the user can fix; the message names the thing and what to do."""


class VariantRejected(ZooError):
    """One variant fails its checks: the build goes on without it, and without what derives from it."""


class ModelRejected(ZooError):
    """One runtime's model of a variant fails (conversion, verification): only that model is left out."""


class RunNotShipped(ZooError):
    """A variant's training run is not shipped and the build was not asked to train it: the variant is left out
    (SKIPPED), with the command that trains it."""
