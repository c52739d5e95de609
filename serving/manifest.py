"""The repository manifest: the typed contract between build/, serving/ and loadtest/.

Defined once, here, needing nothing but the standard library: the build writes it through `write_manifest`,
everything that serves or loads the repository reads it through `load_manifest` or `read_manifest`. A bad
field fails on load with its path (`models.resnet18_int8.io.input_dims`), and repositories written with the
previous schema (one model family, no cards) still load.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
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


def _number(data: dict, key: str, where: str) -> float | None:
    """An optional number: absent or null is None."""
    value = data.get(key)
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        raise ManifestError(f"{where}.{key}: expected a number, got {value!r}")
    return value


@dataclass(frozen=True)
class Accuracy:
    """Test top-1 over `images` images, and over their first `prefix_images`: the sample a served check classifies."""

    top1: float
    images: int
    split: str | None = None  # the build's records say "test"
    prefix_images: int | None = None
    prefix_top1: float | None = None

    def on(self, images: int) -> float | None:
        """Top-1 on the first `images` test images, where this record holds that many."""
        if self.images == images:
            return self.top1
        return self.prefix_top1 if self.prefix_images == images else None

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"top1": self.top1, "images": self.images}
        if self.split is not None:
            out["split"] = self.split
        if self.prefix_images is not None:
            out["prefix"] = {"images": self.prefix_images, "top1": self.prefix_top1}
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Accuracy:
        _object(data, where)
        prefix = _object(data.get("prefix", {}), f"{where}.prefix")
        images = data.get("images", 0)
        if not isinstance(images, int) or isinstance(images, bool):
            raise ManifestError(f"{where}.images: expected int, got {images!r}")
        return cls(top1=float(_need(data, "top1", (int, float), where)), images=images,
                   split=data.get("split"), prefix_images=prefix.get("images"),
                   prefix_top1=_number(prefix, "top1", f"{where}.prefix"))


@dataclass(frozen=True)
class Speed:
    """In-process speed as the build timed it; speed-ups are ratios to the entry's baseline in the same run.
    `device`: what a device runner timed itself (CUDA events), recorded beside the host's figures."""

    # Optional for repositories written before all three were recorded; the build records all three.
    latency_b1_p50_ms: float | None = None
    latency_b1_p99_ms: float | None = None
    throughput_b64_ips: float | None = None
    rounds: int | None = None
    speedup_b1: float | None = None
    speedup_b64: float | None = None
    device: dict[str, float] = field(default_factory=dict)

    def with_speedups(self, baseline: Speed | None) -> Speed:
        """This speed with its ratios to `baseline`, timed in the same run (none without a baseline's figures)."""
        if baseline is None or self.latency_b1_p50_ms is None or self.throughput_b64_ips is None or \
                baseline.latency_b1_p50_ms is None or baseline.throughput_b64_ips is None:
            return self
        return replace(self, speedup_b1=round(baseline.latency_b1_p50_ms / self.latency_b1_p50_ms, 3),
                       speedup_b64=round(self.throughput_b64_ips / baseline.throughput_b64_ips, 3))

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "device" and v is not None}
        return {**self.device, **out}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Speed:
        _object(data, where)
        known = {f.name for f in fields(cls)}
        rounds = _number(data, "rounds", where)
        return cls(latency_b1_p50_ms=_number(data, "latency_b1_p50_ms", where),
                   latency_b1_p99_ms=_number(data, "latency_b1_p99_ms", where),
                   throughput_b64_ips=_number(data, "throughput_b64_ips", where),
                   rounds=None if rounds is None else int(rounds), speedup_b1=_number(data, "speedup_b1", where),
                   speedup_b64=_number(data, "speedup_b64", where),
                   device={k: v for k, v in data.items() if k not in known})


@dataclass(frozen=True)
class Memory:
    """Peak resident memory of a fresh process running the model (MB), and of the model alone; `device`: a device
    runner's own figures (GPU memory)."""

    process_peak_mb: float | None = None
    model_peak_mb: float | None = None
    device: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        figures = {"process_peak_mb": self.process_peak_mb, "model_peak_mb": self.model_peak_mb}
        return {**self.device, **{k: v for k, v in figures.items() if v is not None}}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Memory:
        _object(data, where)
        return cls(process_peak_mb=_number(data, "process_peak_mb", where),
                   model_peak_mb=_number(data, "model_peak_mb", where),
                   device={k: v for k, v in data.items() if k not in ("process_peak_mb", "model_peak_mb")})


# Fields of ModelEntry written as plain JSON values; the typed ones (io, accuracy, speed, memory) convert themselves.
_PLAIN = ("model", "family", "variant", "runtime", "version", "max_batch_size", "precision", "baseline", "parent",
          "recipe", "description", "size_mb", "compressed_mb", "flags", "metrics", "runtime_info")
_OPTIONAL_STR = ("precision", "baseline", "parent", "description")


@dataclass(frozen=True)
class ModelEntry:
    """One published Triton model: its place in the zoo, its interface, and what the build measured.

    The build makes it typed in the step that publishes the model (a bad field fails there, not at commit),
    measurement returns a new one with its speed and memory, and the report reads it."""

    model: str
    family: str  # the card's name: every model built from one card shares it
    variant: str
    runtime: str
    version: int
    io: ModelIO
    accuracy: Accuracy
    max_batch_size: int
    speed: Speed | None = None  # in-process latency and throughput, absent when the build did not time it
    memory: Memory | None = None  # peak memory, absent when the build did not measure it
    precision: str | None = None  # what the variant's file computes in (fp32, fp16, int8), as the variant declares
    baseline: str | None = None  # the model its speed-ups and accuracy drop are measured against
    parent: str | None = None  # the variant (or "teacher") it was made from
    recipe: tuple[str, ...] = ()  # the steps that made it
    description: str | None = None
    size_mb: float | None = None
    compressed_mb: float | None = None
    flags: dict[str, str] = field(default_factory=dict)  # warnings the report shows beside the model
    metrics: dict = field(default_factory=dict)  # params, MACs, and each technique's record (free-form per technique)
    runtime_info: dict = field(default_factory=dict)  # what really ran: versions, settings, kernels
    details: dict = field(default_factory=dict)  # verification, files, provenance: shown, not relied on

    @property
    def top1(self) -> float:
        return self.accuracy.top1

    @property
    def throughput_b64(self) -> float | None:
        return self.speed.throughput_b64_ips if self.speed else None

    @property
    def is_baseline(self) -> bool:
        return self.baseline == self.model

    def to_dict(self) -> dict:
        out = {**self.details, **{k: getattr(self, k) for k in _PLAIN if getattr(self, k) is not None}}
        out["recipe"] = list(self.recipe)
        out["io"] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.io).items()}
        out["accuracy"] = self.accuracy.to_dict()
        for name in ("speed", "memory"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict, where: str) -> ModelEntry:
        _object(data, where)
        family = data.get("family", data.get("arch"))  # schema 1 named the family `arch`
        if not isinstance(family, str):
            raise ManifestError(f"{where}.family: missing")
        speed, memory = data.get("speed"), data.get("memory")
        optional = {k: _need(data, k, str, where) for k in _OPTIONAL_STR if data.get(k) is not None}
        return cls(model=_need(data, "model", str, where), family=family, variant=_need(data, "variant", str, where),
                   runtime=_need(data, "runtime", str, where), version=_need(data, "version", int, where),
                   io=ModelIO.from_dict(_need(data, "io", dict, where), f"{where}.io"),
                   accuracy=Accuracy.from_dict(_need(data, "accuracy", dict, where), f"{where}.accuracy"),
                   max_batch_size=_need(data, "max_batch_size", int, where),
                   speed=None if speed is None else Speed.from_dict(speed, f"{where}.speed"),
                   memory=None if memory is None else Memory.from_dict(memory, f"{where}.memory"),
                   recipe=tuple(_strings(data, "recipe", where)) if "recipe" in data else (),
                   size_mb=_number(data, "size_mb", where), compressed_mb=_number(data, "compressed_mb", where),
                   flags=_object(data.get("flags", {}), f"{where}.flags"),
                   metrics=_object(data.get("metrics", {}), f"{where}.metrics"),
                   runtime_info=_object(data.get("runtime_info", {}), f"{where}.runtime_info"), **optional,
                   details={k: v for k, v in data.items() if k not in (*_PLAIN, "io", "accuracy", "speed", "memory",
                                                                          "arch")})


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
