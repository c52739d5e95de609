"""ImageFolder layout (<root>/{train,test}/<class>/<image>), as a tree or a tar archive."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from build.errors import ZooError
from serving.pixels import to_chw

SPLITS = ("train", "test")
SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}

Entry = tuple[str, str, str, bytes]  # split, class, name, encoded bytes


def tree_fingerprint(root: Path) -> str:
    """Cheap identity for a tree: names, sizes and mtimes, so edits invalidate the cache."""
    digest = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.is_file():
            st = f.stat()
            digest.update(f"{f.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def decode(source: Path, shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Every image decoded, converted to `shape`'s channels (RGB or grayscale) and resized to its H x W."""
    entries = sorted(_entries(source), key=lambda e: e[:3])
    classes = sorted({cls for _, cls, _, _ in entries})
    out: dict[str, np.ndarray] = {"classes": np.array(classes)}
    for split in SPLITS:
        items = [e for e in entries if e[0] == split]
        if not items:
            raise ZooError(f"{source} has no images under a '{split}/<class>/' folder; expected the ImageFolder layout")
        images = [_decode_image(data, f"{source}:{split}/{cls}/{name}", shape) for _, cls, name, data in
                  tqdm(items, desc=f"decode {split}", unit="img", mininterval=1.0)]
        out[f"{split}_x"] = np.stack(images)
        out[f"{split}_y"] = np.array([classes.index(cls) for _, cls, _, _ in items], dtype=np.int64)
    return out


def _entries(source: Path) -> Iterator[Entry]:
    if source.is_dir():
        for f in source.rglob("*"):
            parsed = _parse(PurePosixPath(f.relative_to(source).as_posix()))
            if parsed and f.is_file():
                yield (*parsed, f.read_bytes())
        return
    try:
        with tarfile.open(source) as tar:
            for m in tar:
                parsed = _parse(PurePosixPath(m.name))
                if parsed and m.isfile():
                    member = tar.extractfile(m)
                    assert member is not None  # a regular file's member always has its data
                    yield (*parsed, member.read())
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ZooError(f"dataset archive {source} is corrupt or not a tar archive ({exc}); fetch it again") from exc


def _parse(path: PurePosixPath) -> tuple[str, str, str] | None:
    """(split, class, name) for '<anything>/<split>/<class>/<image>', else None."""
    parts = path.parts
    if len(parts) < 3 or parts[-3] not in SPLITS or path.suffix.lower() not in SUFFIXES:
        return None
    return parts[-3], parts[-2], parts[-1]


def _decode_image(data: bytes, where: str, shape: tuple[int, int, int]) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return to_chw(img, shape)  # the gateway prepares request images with the same function
    except (UnidentifiedImageError, OSError) as exc:
        raise ZooError(f"cannot decode image {where} ({exc}); the dataset is corrupt") from exc
