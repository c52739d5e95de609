"""The repository manifest: the typed contract between build/, serving/ and loadtest/.

Defined once, here, needing nothing but the standard library: the build writes it through `write_manifest`,
everything that serves or loads the repository reads it through `load_manifest` or `read_manifest`. A bad
field fails on load with its path (`models.resnet18_int8.io.input_dims`), and repositories written with the
previous schema (one model family, no cards) still load.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
SCHEMA_VERSION = 2  # 2: several model families, each with its card; 1: one family, no cards
RELEASE = "triton_release"  # top-level key: the Triton release the repository is built for (optional in schema 2)


class ManifestError(ValueError):
    """The manifest exists but does not follow the schema; the message names the file and the field."""


def _need(data: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ManifestError(f"{where}.{key}: missing")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float, (int, float))):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ManifestError(f"{where}.{key}: expected {names}, got {value!r}")
    return value


def _ints(data: dict, key: str, where: str, length: int | None = None) -> tuple[int, ...]:
    value = _need(data, key, list, where)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value) or (
            length is not None and len(value) != length):
        size = f"{length} " if length else ""
        raise ManifestError(f"{where}.{key}: expected a list of {size}positive integers, got {value!r}")
    return tuple(value)


def _floats(data: dict, key: str, where: str) -> tuple[float, ...]:
    value = _need(data, key, list, where)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ManifestError(f"{where}.{key}: expected a list of numbers, got {value!r}")
    return tuple(float(v) for v in value)


def _strings(data: dict, key: str, where: str) -> tuple[str, ...]:
    value = _need(data, key, list, where)
    if not all(isinstance(v, str) for v in value):
        raise ManifestError(f"{where}.{key}: expected a list of strings, got {value!r}")
    return tuple(value)


def _object(data: Any, where: str) -> dict:
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected an object, got {type(data).__name__}")
    return data


@dataclass(frozen=True)
class ModelIO:
    """What a client sends and gets back: raw pixels of `input_dims` (C, H, W) in, logits out."""

    input: str
    input_dims: tuple[int, ...]
    output: str
    input_dtype: str = "UINT8"
    labels: str = "labels.txt"

    @property
    def channels(self) -> int:
        return self.input_dims[0]

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the images the model takes."""
        return self.input_dims[1], self.input_dims[2]

    @classmethod
    def from_dict(cls, data: dict, where: str) -> ModelIO:
        optional = {k: _need(data, k, str, where) for k in ("input_dtype", "labels") if k in data}
        return cls(input=_need(data, "input", str, where), input_dims=_ints(data, "input_dims", where, 3),
                   output=_need(data, "output", str, where), **optional)


@dataclass(frozen=True)
class CardRecord:
    """A model card as the build resolved it: where the model came from and what it takes."""

    name: str
    source: str
    input: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    data: str  # the dataset the build read (absolute path, or 'cifar10')
    data_checksum: str
    normalized: bool = False  # onnx sources: the original graph expected normalised floats

    @classmethod
    def from_dict(cls, data: dict, where: str) -> CardRecord:
        _object(data, where)
        c, h, w = _ints(data, "input", where, 3)
        return cls(name=_need(data, "name", str, where), source=_need(data, "source", str, where),
                   input=(c, h, w), mean=_floats(data, "mean", where),
                   std=_floats(data, "std", where), classes=_strings(data, "classes", where),
                   data=_need(data, "data", str, where),
                   data_checksum=_need(data, "data_checksum", str, where),
                   normalized=bool(data.get("normalized", False)))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


_ENTRY_KEYS = ("model", "family", "variant", "runtime", "version", "io", "accuracy", "max_batch_size", "speed")


@dataclass(frozen=True)
class ModelEntry:
    """One published Triton model: its place in the zoo, its interface, and what the build measured."""

    model: str
    family: str  # the card's name: every model built from one card shares it
    variant: str
    runtime: str
    version: int
    io: ModelIO
    accuracy: dict  # top1, images, split, prefix {images, top1}
    max_batch_size: int
    speed: dict | None = None  # in-process latency and throughput, absent when the build did not time it
    details: dict = field(default_factory=dict)  # lineage, sizes, verification, provenance: shown, not relied on

    @property
    def top1(self) -> float:
        return float(self.accuracy["top1"])

    @property
    def throughput_b64(self) -> float | None:
        return (self.speed or {}).get("throughput_b64_ips")

    def to_dict(self) -> dict:
        out = {**self.details, **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "details"}}
        out["io"] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.io).items()}
        if self.speed is None:
            del out["speed"]
        return out

    @classmethod
    def from_dict(cls, data: dict, where: str) -> ModelEntry:
        _object(data, where)
        family = data.get("family", data.get("arch"))  # schema 1 named the family `arch`
        if not isinstance(family, str):
            raise ManifestError(f"{where}.family: missing")
        accuracy = _need(data, "accuracy", dict, where)
        _need(accuracy, "top1", (int, float), f"{where}.accuracy")
        speed = data.get("speed")
        if speed is not None and not isinstance(speed, dict):
            raise ManifestError(f"{where}.speed: expected an object, got {speed!r}")
        return cls(model=_need(data, "model", str, where), family=family, variant=_need(data, "variant", str, where),
                   runtime=_need(data, "runtime", str, where), version=_need(data, "version", int, where),
                   io=ModelIO.from_dict(_need(data, "io", dict, where), f"{where}.io"), accuracy=accuracy,
                   max_batch_size=_need(data, "max_batch_size", int, where), speed=speed,
                   details={k: v for k, v in data.items() if k not in _ENTRY_KEYS and k != "arch"})


@dataclass
class Manifest:
    models: dict[str, ModelEntry] = field(default_factory=dict)
    cards: dict[str, CardRecord] = field(default_factory=dict)
    # The Triton release the models were built for (serving/release.py's fields, "name" first); None in a
    # repository published before releases were recorded.
    release: dict | None = None

    def family(self, name: str) -> dict[str, ModelEntry]:
        return {m: e for m, e in self.models.items() if e.family == name}

    def to_dict(self) -> dict:
        out = {"schema_version": SCHEMA_VERSION, "cards": {n: c.to_dict() for n, c in sorted(self.cards.items())},
               "models": {n: e.to_dict() for n, e in sorted(self.models.items())}}
        if self.release is not None:
            out[RELEASE] = dict(self.release)
        return out

    @property
    def release_name(self) -> str | None:
        return self.release["name"] if self.release else None

    @classmethod
    def from_dict(cls, data: Any, where: str = MANIFEST) -> Manifest:
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: expected an object at the top level")
        version = data.get("schema_version")
        if version not in (1, SCHEMA_VERSION):
            raise ManifestError(f"{where}: manifest schema {version!r}; this code reads 1 and {SCHEMA_VERSION}: "
                                "rebuild the repository or update tritonzoo")
        models = _object(data.get("models"), f"{where}: models")
        cards = _object(data.get("cards", {}), f"{where}: cards") if version == SCHEMA_VERSION else {}
        release = data.get(RELEASE)
        if release is not None:
            _need(_object(release, f"{where}: {RELEASE}"), "name", str, f"{where}: {RELEASE}")
        return cls({n: ModelEntry.from_dict(e, f"{where}: models.{n}") for n, e in models.items()},
                   {n: CardRecord.from_dict(c, f"{where}: cards.{n}") for n, c in cards.items()}, release)


def read_manifest(repo: Path) -> Manifest:
    """The repository's manifest; an empty one where nothing was published yet."""
    path = Path(repo) / MANIFEST
    if not path.exists():
        return Manifest()
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path} is not valid JSON ({exc}); rebuild the repository") from exc
    return Manifest.from_dict(data, str(path))


def load_manifest(repo: Path) -> dict[str, ModelEntry]:
    """Model name -> entry for every published model; FileNotFoundError where nothing was built."""
    path = Path(repo) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: build the repository first with `invoke build`")
    return read_manifest(repo).models


def write_manifest(repo: Path, manifest: Manifest) -> None:
    """Atomically: readers see the old manifest or the new one, never part of either."""
    path = Path(repo) / MANIFEST
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
