"""Real CIFAR-10 test images for payloads, read with Pillow and numpy (load generators need no torch or build/).

Sources: an ImageFolder tree or .tar.gz (`<root>/test/<class>/<image>`, e.g. ../shared/data/cifar10-jpeg.tar.gz)
or the official cifar-10-python.tar.gz. Images come back as uint8 NCHW, in a fixed order (sorted names).
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def load_test_images(source: Path, limit: int) -> np.ndarray:
    """Up to `limit` test images as uint8 (N, 3, 32, 32), interleaved across classes so any prefix is mixed."""
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
                by_class.setdefault(parts[-2], []).append((parts[-1], tar.extractfile(member).read()))
    return by_class


def _interleave(by_class: dict[str, list[tuple[str, bytes]]], limit: int) -> np.ndarray:
    ordered = [sorted(items) for _, items in sorted(by_class.items())]
    picked: list[bytes] = []
    for i in range(max(len(items) for items in ordered)):
        picked.extend(items[i][1] for items in ordered if i < len(items))
        if len(picked) >= limit:
            break
    return np.stack([decode(data) for data in picked[:limit]])


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        pixels = np.asarray(img.convert("RGB"), dtype=np.uint8)
    if pixels.shape != (32, 32, 3):
        raise ValueError(f"expected a 32x32 CIFAR-10 image, got {pixels.shape[1]}x{pixels.shape[0]}")
    return pixels.transpose(2, 0, 1).copy()


def _from_python_release(archive: Path, limit: int) -> np.ndarray:
    """The official release's test_batch: 10,000 rows of 3072 bytes, already CHW."""
    with tarfile.open(archive, "r:gz") as tar:
        member = next(m for m in tar if m.name.endswith("/test_batch"))
        batch = pickle.load(tar.extractfile(member), encoding="bytes")  # the official, checksummed format
    return np.asarray(batch[b"data"][:limit], dtype=np.uint8).reshape(-1, 3, 32, 32)


def save_images(images: np.ndarray, path: Path) -> Path:
    """Pre-decoded images for the Locust processes: each loads them in milliseconds, not by re-reading the archive."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, images)
    return path
