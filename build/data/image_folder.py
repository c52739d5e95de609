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

from build.data.arrays import image_file, save_labels
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


def decode(source: Path, shape: tuple[int, ...], folder: Path) -> list[str]:
    """Every image decoded, converted to `shape`'s channels (RGB or grayscale) and resized to its H x W, written into
    `folder` as the train and test arrays (see build.data.arrays); returns the class names. Two passes over the
    source, the first for names only, so that each image goes straight to its place and none is held in memory."""
    names = sorted({entry[:3] for entry in _entries(source, read=False)})
    classes = sorted({cls for _, cls, _ in names})
    slots: dict[tuple[str, str, str], int] = {}
    files = {}
    for split in SPLITS:
        items = [n for n in names if n[0] == split]
        if not items:
            raise ZooError(f"{source} has no images under a '{split}/<class>/' folder; expected the ImageFolder layout")
        slots.update({item: i for i, item in enumerate(items)})
        files[split] = image_file(folder, split, len(items), shape)
        save_labels(folder, split, np.array([classes.index(cls) for _, cls, _ in items]))
    with tqdm(total=len(names), desc="decode", unit="img", mininterval=1.0) as bar:
        for split, cls, name, data in _entries(source):
            files[split][slots[split, cls, name]] = _decode_image(data, f"{source}:{split}/{cls}/{name}", shape)
            bar.update()
    for images in files.values():
        images.flush()
    return classes


def _entries(source: Path, read: bool = True) -> Iterator[Entry]:
    """(split, class, name, bytes) of every image file; the bytes are empty when not `read`."""
    if source.is_dir():
        for f in source.rglob("*"):
            parsed = _parse(PurePosixPath(f.relative_to(source).as_posix()))
            if parsed and f.is_file():
                yield (*parsed, f.read_bytes() if read else b"")
        return
    try:
        with tarfile.open(source) as tar:
            for m in tar:
                parsed = _parse(PurePosixPath(m.name))
                if parsed and m.isfile():
                    member = tar.extractfile(m) if read else None
                    yield (*parsed, member.read() if member is not None else b"")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ZooError(f"dataset archive {source} is corrupt or not a tar archive ({exc}); fetch it again") from exc


def _parse(path: PurePosixPath) -> tuple[str, str, str] | None:
    """(split, class, name) for '<anything>/<split>/<class>/<image>', else None."""
    parts = path.parts
    if len(parts) < 3 or parts[-3] not in SPLITS or path.suffix.lower() not in SUFFIXES:
        return None
    return parts[-3], parts[-2], parts[-1]


def _decode_image(data: bytes, where: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return to_chw(img, shape)  # the gateway prepares request images with the same function
    except (UnidentifiedImageError, OSError) as exc:
        raise ZooError(f"cannot decode image {where} ({exc}); the dataset is corrupt") from exc
