"""Dataset type, source resolution, decode cache and the deterministic validation split."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from build.data import cifar_python, image_folder
from build.data.arrays import gather, open_split
from build.errors import ZooError
from serving.cache import default_cache_dir

DATA_ENV = "TRITONZOO_DATA"
VAL_FRACTION = 0.1  # 500 images per class on CIFAR-10
VAL_SEED = 0
CACHE_LAYOUT = 2  # 2: a folder of .npy files, one per split, already split and shuffled (1: one .npz)


@dataclass(frozen=True)
class ImageSet:
    """Raw images in NCHW uint8 (0-255) with integer labels."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int) -> ImageSet:
        """The first n images; the test set is shuffled once at load, so this is a fair sample."""
        return ImageSet(self.images[:n], self.labels[:n])


@dataclass(frozen=True)
class Dataset:
    train: ImageSet
    val: ImageSet
    test: ImageSet
    classes: list[str]
    checksum: str
    source: str


def resolve_data_spec(spec: str | None) -> str:
    """An explicit option wins, then $TRITONZOO_DATA, then the official download."""
    return spec or os.environ.get(DATA_ENV) or cifar_python.SPEC


def load_dataset(spec: str | None, shape: tuple[int, int, int], cache_dir: Path | None = None) -> Dataset:
    """The dataset `spec` names, every image as uint8 `shape` (C, H, W): decoded once, then read from the cache."""
    spec = resolve_data_spec(spec)
    cache_dir = Path(cache_dir or default_cache_dir())
    source, checksum = _locate(spec, cache_dir)
    folder = _cached_splits(source, checksum, tuple(shape), cache_dir)
    fit, val, test = (ImageSet(*open_split(folder, name)) for name in ("fit", "val", "test"))
    return Dataset(fit, val, test, json.loads((folder / "classes.json").read_text()), checksum, spec)


def validation_indices(labels: np.ndarray, fraction: float = VAL_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Stratified hold-out with a fixed seed: the same images whatever the training seed. (fit, val) indices, each
    in ascending order."""
    rng = np.random.default_rng(VAL_SEED)
    per_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    val_idx = np.concatenate([rng.permutation(idx)[: max(1, int(len(idx) * fraction))] for idx in per_class])
    mask = np.zeros(len(labels), dtype=bool)
    mask[val_idx] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def split_validation(train: ImageSet, fraction: float = VAL_FRACTION) -> tuple[ImageSet, ImageSet]:
    fit, val = validation_indices(train.labels, fraction)
    return ImageSet(train.images[fit], train.labels[fit]), ImageSet(train.images[val], train.labels[val])


def test_order(count: int) -> np.ndarray:
    """Archives list the test set class by class; a fixed shuffle makes any prefix a fair sample."""
    return np.random.default_rng(VAL_SEED).permutation(count)


def _locate(spec: str, cache_dir: Path) -> tuple[Path, str]:
    if spec == cifar_python.SPEC:
        archive = cifar_python.download(cache_dir)
        return archive, sha256_file(archive)
    path = Path(spec).expanduser()
    if not path.exists():
        raise ZooError(
            f"dataset not found: {path} does not exist; pass --data or set ${DATA_ENV} to an "
            f"ImageFolder tree, its .tar.gz, or '{cifar_python.SPEC}' for the official download"
        )
    if path.is_dir():
        return path, image_folder.tree_fingerprint(path)
    checksum = sha256_file(path)
    _check_sidecar(path, checksum)
    return path, checksum


def _check_sidecar(path: Path, checksum: str) -> None:
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.exists():
        return
    expected = sidecar.read_text().split()[0].lower()
    if expected != checksum:
        raise ZooError(
            f"checksum mismatch for {path}: sha256 is {checksum}, {sidecar.name} says {expected}; "
            "the archive is corrupt or incomplete, fetch it again"
        )


def _cached_splits(source: Path, checksum: str, shape: tuple[int, ...], cache_dir: Path) -> Path:
    """The folder of the decoded splits, keyed by the source's checksum and the decoded size (one source serves
    models of several input sizes). Decoded once into a temporary folder, which is renamed into place when complete:
    an interrupted or failed decode leaves nothing behind."""
    folder = cache_dir / "datasets" / f"{checksum[:16]}-{'x'.join(map(str, shape))}-v{CACHE_LAYOUT}"
    if folder.exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        decoder = cifar_python if cifar_python.is_python_release(source) else image_folder
        classes = decoder.decode(source, shape, tmp)  # writes train_{x,y}.npy and test_{x,y}.npy
        fit, val = validation_indices(np.load(tmp / "train_y.npy"))
        gather(tmp, "train", fit, "fit")
        gather(tmp, "train", val, "val")
        gather(tmp, "test", test_order(len(np.load(tmp / "test_y.npy"))), "shuffled")
        for name in ("train_x", "train_y", "test_x", "test_y"):
            (tmp / f"{name}.npy").unlink()
        for suffix in ("x", "y"):
            (tmp / f"shuffled_{suffix}.npy").rename(tmp / f"test_{suffix}.npy")
        (tmp / "classes.json").write_text(json.dumps([str(c) for c in classes]))
        try:
            tmp.rename(folder)
        except OSError:  # another process published the same decode first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
