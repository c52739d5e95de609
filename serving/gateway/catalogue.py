"""The published models, from the repository manifest and label files. Read once, not per request."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serving.gateway.errors import NotFound
from serving.manifest import ModelEntry, load_manifest

SUMMARY_KEYS = ("family", "variant", "runtime", "version", "parent", "recipe", "accuracy", "size_mb", "speed",
                "metrics", "verification", "built_at", "code_version")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: int
    variant: str
    runtime: str
    input_name: str
    dims: tuple[int, ...]
    output_name: str
    labels: tuple[str, ...]
    max_batch_size: int
    metadata: dict  # the manifest entry as JSON: what the catalogue shows
    family: str

    def summary(self) -> dict:
        """What the catalogue shows: metrics and lineage, without file-level detail; its input and classes, which
        differ between families."""
        shown = {k: self.metadata[k] for k in SUMMARY_KEYS if k in self.metadata}
        return {"model": self.name, **shown, "input_dims": list(self.dims), "classes": len(self.labels)}


class Catalogue:
    def __init__(self, repository: Path) -> None:
        self.repository = Path(repository)
        self.models: dict[str, ModelInfo] = {}
        self.reload()

    def reload(self, name: str | None = None) -> None:
        """Re-read the manifest: all models, or just `name` (e.g. one being loaded into Triton)."""
        manifest = load_manifest(self.repository)
        if name is None:
            self.models = {m: _info(self.repository, m, entry) for m, entry in manifest.items()}
        elif name in manifest:
            self.models = {**self.models, name: _info(self.repository, name, manifest[name])}
        else:
            raise NotFound(f"'{name}' is not in the repository manifest; publish it with `invoke build` first")

    def get(self, name: str) -> ModelInfo:
        try:
            return self.models[name]
        except KeyError:
            raise NotFound(f"unknown model '{name}'; published models: {sorted(self.models)}") from None

    def families(self) -> dict[str, list[ModelInfo]]:
        """Models by family, families and their models in name order."""
        grouped: dict[str, list[ModelInfo]] = {}
        for info in sorted(self.models.values(), key=lambda m: (m.family, m.name)):
            grouped.setdefault(info.family, []).append(info)
        return grouped


def family_summary(models: list[ModelInfo]) -> dict:
    """One family's input and classes (those of its models: one card made them all) and its models' names."""
    first = models[0]
    return {"input_dims": list(first.dims), "classes": len(first.labels), "models": [m.name for m in models]}


def _info(repo: Path, name: str, entry: ModelEntry) -> ModelInfo:
    io = entry.io
    labels_file = repo / name / io.labels
    # One label per line: a class folder's name may hold spaces ("sea lion").
    labels = tuple(s.strip() for s in labels_file.read_text().splitlines() if s.strip()) if labels_file.exists() else ()
    return ModelInfo(
        name=name, version=entry.version, variant=entry.variant, runtime=entry.runtime,
        input_name=io.input, dims=io.input_dims, output_name=io.output, labels=labels,
        max_batch_size=entry.max_batch_size, metadata=entry.to_dict(), family=entry.family,
    )
