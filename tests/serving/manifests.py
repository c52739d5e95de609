"""Schema-2 manifests for tests, written through serving.manifest as the build writes them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from serving.manifest import CardRecord, Manifest, ModelEntry, write_manifest


def entry(model: str, family: str = "", variant: str = "fp32", runtime: str = "onnxruntime",
          dims: tuple[int, int, int] = (3, 32, 32), top1: float = 0.9, speed: dict | None = None,
          max_batch_size: int = 8, **details: Any) -> ModelEntry:
    """A model entry; its family defaults to the name's first part (`<family>_<variant>[_<runtime>]`)."""
    fields = {"model": model, "family": family or model.split("_")[0], "variant": variant, "runtime": runtime,
              "version": 1, "io": {"input": "images", "input_dims": list(dims), "output": "logits"},
              "accuracy": {"top1": top1, "images": 100}, "max_batch_size": max_batch_size, **details}
    # through the manifest's own reader, so that typed fields given by name (runtime_info, size_mb) land typed
    return ModelEntry.from_dict({**fields, **({"speed": speed} if speed is not None else {})}, model)


CLASSES = tuple(f"class{i}" for i in range(10))


def card(name: str, data: str = "cifar10", dims: tuple[int, int, int] = (3, 32, 32),
         classes: tuple[str, ...] = CLASSES) -> CardRecord:
    channels = dims[0]
    return CardRecord(name=name, source=f"builtin:{name}", input=dims, mean=(127.0,) * channels,
                      std=(64.0,) * channels, classes=classes, data=data, data_checksum="0" * 64)


def write(repo: Path, entries: Iterable[ModelEntry], cards: Iterable[CardRecord] = (),
          release: dict | None = None) -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    write_manifest(repo, Manifest({e.model: e for e in entries}, {c.name: c for c in cards}, release))
    return repo
