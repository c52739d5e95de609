"""Real test images for payloads, read with Pillow and numpy (load generators need no torch or build/).

Sources: an ImageFolder tree or .tar.gz (`<root>/test/<class>/<image>`, e.g. ../shared/data/cifar10-jpeg.tar.gz)
or the official cifar-10-python.tar.gz. Images come back as uint8 NCHW at the (C, H, W) a model takes: converted
to grayscale for one channel, resized (bilinear) as the gateway resizes a posted image, in a fixed order (sorted
names, classes interleaved).

A model's payloads come from its own dataset, the one its card named when the build read it (the manifest's
card record), when that is on this disk; else from the source the user gave.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

from serving.manifest import CardRecord, ModelEntry, read_manifest
from serving.pixels import refit, to_chw

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
RELEASE_DIMS = (3, 32, 32)  # the official CIFAR-10 python release's storage format: rows of 32x32 RGB
Picked = list[bytes] | np.ndarray  # still-encoded images, or the python release's pixels in RELEASE_DIMS


def load_test_images(source: Path, limit: int, dims: tuple[int, int, int]) -> np.ndarray:
    """Up to `limit` test images as uint8 (N, *dims), interleaved across classes so any prefix is mixed."""
    return decode_all(pick_test_images(source, limit), dims)


def pick_test_images(source: Path, limit: int) -> Picked:
    """The first `limit` test images in payload order, not yet decoded: decoding is per input shape."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"image source {source} does not exist")
    if source.is_dir():
        named = _from_folder(source)
    elif source.name.startswith("cifar-10-python"):
        return _from_python_release(source, limit)
    else:
        named = _from_archive(source)
    if not named:
        raise ValueError(f"{source} has no test images (expected <root>/test/<class>/<image>)")
    return _interleave(named, limit)


def decode_all(picked: Picked, dims: tuple[int, int, int]) -> np.ndarray:
    if isinstance(picked, np.ndarray):
        return refit(picked, dims)
    return np.stack([decode(data, dims) for data in picked])


def _from_folder(root: Path) -> dict[str, list[tuple[str, bytes]]]:
    by_class: dict[str, list[tuple[str, bytes]]] = {}
    for path in sorted(root.glob("**/test/*/*")):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            by_class.setdefault(path.parent.name, []).append((path.name, path.read_bytes()))
    return by_class


def _from_archive(archive: Path) -> dict[str, list[tuple[str, bytes]]]:
    by_class: dict[str, list[tuple[str, bytes]]] = {}
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:  # streamed: one pass over the archive, no extraction to disk
            parts = member.name.split("/")
            if member.isfile() and len(parts) >= 3 and parts[-3] == "test" and \
                    parts[-1].lower().endswith(IMAGE_SUFFIXES):
                by_class.setdefault(parts[-2], []).append((parts[-1], _member(tar, member).read()))
    return by_class


def _member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    stream = tar.extractfile(member)
    if stream is None:
        raise ValueError(f"{member.name} is not a regular file")
    return stream


def _interleave(by_class: dict[str, list[tuple[str, bytes]]], limit: int) -> list[bytes]:
    ordered = [sorted(items) for _, items in sorted(by_class.items())]
    picked: list[bytes] = []
    for i in range(max(len(items) for items in ordered)):
        picked.extend(items[i][1] for items in ordered if i < len(items))
        if len(picked) >= limit:
            break
    return picked[:limit]


def decode(data: bytes, dims: tuple[int, int, int]) -> np.ndarray:
    """One encoded image as uint8 (C, H, W) at `dims`."""
    with Image.open(io.BytesIO(data)) as img:
        return to_chw(img, dims)


def _from_python_release(archive: Path, limit: int) -> np.ndarray:
    """The official release's test_batch: 10,000 rows of 3072 bytes, already CHW."""
    with tarfile.open(archive, "r:gz") as tar:
        member = next(m for m in tar if m.name.endswith("/test_batch"))
        batch = pickle.load(_member(tar, member), encoding="bytes")  # the official, checksummed format
    return np.asarray(batch[b"data"][:limit], dtype=np.uint8).reshape(-1, *RELEASE_DIMS)


def model_source(card: CardRecord | None, fallback: Path | None) -> Path | None:
    """A model's own dataset when its card names one that is on this disk, else `fallback` (the user's source).
    'cifar10' (the build's own download) names no path here."""
    own = Path(card.data) if card is not None and card.data != "cifar10" else None
    return own if own is not None and own.is_absolute() and own.exists() else fallback


def payloads_for(repo: Path, models: Iterable[str], fallback: Path | None, limit: int) -> dict[str, np.ndarray]:
    """Each model's payload images, uint8 (limit, *input_dims): from its family's dataset (see `model_source`)
    at its own input shape. Each source is read once and decoded once per shape."""
    manifest = read_manifest(repo)
    models = list(dict.fromkeys(models))
    unknown = [m for m in models if m not in manifest.models]
    if unknown:
        raise ValueError(f"models {unknown} are not in {repo}; it has {sorted(manifest.models)}")
    sources = {m: model_source(manifest.cards.get(manifest.models[m].family), fallback) for m in models}
    found = {m: source for m, source in sources.items() if source is not None}
    missing = [m for m in sources if m not in found]
    if missing:
        raise ValueError(f"no payload images for {missing}: their cards name no dataset on this disk; give --data")
    picked: dict[Path, Picked] = {}
    decoded: dict[tuple[Path, tuple[int, int, int]], np.ndarray] = {}
    out = {}
    for model in models:
        c, h, w = manifest.models[model].io.input_dims
        source, dims = found[model], (c, h, w)
        if (source, dims) not in decoded:
            if source not in picked:
                picked[source] = pick_test_images(source, limit)
            decoded[source, dims] = decode_all(picked[source], dims)
        out[model] = decoded[source, dims]
    return out


def fit_payloads(images: np.ndarray | Mapping[str, np.ndarray], entries: Mapping[str, ModelEntry],
                 models: Iterable[str]) -> dict[str, np.ndarray]:
    """Per model, images at its input dims: a model's own array where `images` maps models to arrays (as
    `payloads_for` returns), else the one array given, converted and resized to each model's dims."""
    models = list(models)
    if isinstance(images, Mapping) and set(models) - set(images):
        raise ValueError(f"no payload images for {sorted(set(models) - set(images))}")
    out = {}
    for model in models:
        given = images[model] if isinstance(images, Mapping) else images
        out[model] = refit(np.asarray(given, dtype=np.uint8), entries[model].io.input_dims)
    return out


def save_images(images: np.ndarray, path: Path) -> Path:
    """Pre-decoded images for the Locust processes: each loads them in milliseconds, not by re-reading the archive."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, images)
    return path


def save_payloads(payloads: Mapping[str, np.ndarray], path: Path) -> Path:
    """Pre-decoded images per model (one .npz array per model name), for Locust's --tz-images-file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # a file object: np.savez would append .npz to a path without it
        np.savez(f, **dict(payloads))
    return path


def load_payloads(path: Path, limit: int | None = None) -> np.ndarray | dict[str, np.ndarray]:
    """What `save_payloads` wrote (model -> images), or what `save_images` wrote (one array for every model)."""
    data = np.load(path)
    if isinstance(data, np.ndarray):
        return data[:limit]
    with data:
        return {name: data[name][:limit] for name in data.files}
