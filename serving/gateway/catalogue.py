"""The published models, from the repository manifest and label files. Read once, not per request."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serving.gateway.errors import NotFound
from serving.manifest import load_manifest


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
    metadata: dict

    def summary(self) -> dict:
        """What the catalogue shows: metrics and lineage, without file-level detail."""
        keys = ("variant", "runtime", "version", "parent", "recipe", "accuracy", "size_mb", "speed", "metrics",
                "verification", "built_at", "code_version")
        return {"model": self.name, **{k: self.metadata[k] for k in keys if k in self.metadata}}


class Catalogue:
    def __init__(self, repository: Path) -> None:
        self.repository = Path(repository)
        self.models: dict[str, ModelInfo] = {}
        self.reload()

    def reload(self, name: str | None = None) -> None:
        """Re-read the manifest: all models, or just `name` (e.g. one being loaded into Triton)."""
        manifest = load_manifest(self.repository)
        if name is None:
            self.models = {m: _info(self.repository, m, meta) for m, meta in manifest.items()}
        elif name in manifest:
            self.models = {**self.models, name: _info(self.repository, name, manifest[name])}
        else:
            raise NotFound(f"'{name}' is not in the repository manifest; publish it with `invoke build` first")

    def get(self, name: str) -> ModelInfo:
        try:
            return self.models[name]
        except KeyError:
            raise NotFound(f"unknown model '{name}'; published models: {sorted(self.models)}") from None


def _info(repo: Path, name: str, meta: dict) -> ModelInfo:
    io = meta["io"]
    labels_file = repo / name / io.get("labels", "labels.txt")
    labels = tuple(labels_file.read_text().split()) if labels_file.exists() else ()
    return ModelInfo(
        name=name, version=int(meta["version"]), variant=meta["variant"], runtime=meta["runtime"],
        input_name=io["input"], dims=tuple(io["input_dims"]), output_name=io["output"], labels=labels,
        max_batch_size=int(meta.get("max_batch_size", 1)), metadata=meta,
    )
