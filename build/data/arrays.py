"""Decoded images on disk: one uint8 .npy per split, written image by image and read back memory-mapped, so that a
dataset of large images (224 pixels and up) never has to fit in memory at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap


def image_file(folder: Path, name: str, count: int, shape: tuple[int, ...]) -> np.memmap:
    """A new (count, *shape) uint8 array file `<name>_x.npy` in `folder`, to be filled in place."""
    return open_memmap(folder / f"{name}_x.npy", mode="w+", dtype=np.uint8, shape=(count, *shape))


def save_labels(folder: Path, name: str, labels: np.ndarray) -> None:
    np.save(folder / f"{name}_y.npy", np.asarray(labels, dtype=np.int64))


def gather(folder: Path, source: str, index: np.ndarray, target: str, chunk: int = 2048) -> None:
    """`target`'s images and labels: `source`'s at `index`, in that order, copied a chunk at a time."""
    images = np.load(folder / f"{source}_x.npy", mmap_mode="r")
    out = image_file(folder, target, len(index), images.shape[1:])
    for start in range(0, len(index), chunk):
        out[start:start + chunk] = images[index[start:start + chunk]]
    out.flush()
    save_labels(folder, target, np.load(folder / f"{source}_y.npy")[index])


def open_split(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Images memory-mapped copy-on-write (slices are writable arrays, as torch wants; the file never changes) and
    labels in memory."""
    return np.load(folder / f"{name}_x.npy", mmap_mode="c"), np.load(folder / f"{name}_y.npy")
