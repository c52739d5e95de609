"""One exception type for every user-facing failure, so the CLI prints one line and exits."""


class ZooError(Exception):
    """A problem the user can fix; the message names the thing and what to do."""
