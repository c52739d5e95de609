"""Dataset type, source resolution, decode cache and the deterministic validation split."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from build.data import cifar_python, image_folder
from build.errors import ZooError

DATA_ENV = "TRITONZOO_DATA"
CACHE_ENV = "TRITONZOO_CACHE"
VAL_FRACTION = 0.1  # 500 images per class on CIFAR-10
VAL_SEED = 0


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


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "tritonzoo"))


def resolve_data_spec(spec: str | None) -> str:
    """An explicit option wins, then $TRITONZOO_DATA, then the official download."""
    return spec or os.environ.get(DATA_ENV) or cifar_python.SPEC


def load_dataset(spec: str | None, shape: tuple[int, int, int], cache_dir: Path | None = None) -> Dataset:
    """The dataset `spec` names, every image as uint8 `shape` (C, H, W): decoded once, then read from the cache."""
    spec = resolve_data_spec(spec)
    cache_dir = Path(cache_dir or default_cache_dir())
    source, checksum = _locate(spec, cache_dir)
    c, h, w = shape
    arrays = _cached_decode(source, checksum, (c, h, w), cache_dir)
    train = ImageSet(arrays["train_x"], arrays["train_y"])
    fit, val = split_validation(train)
    # Archives list the test set class by class; a fixed shuffle makes any prefix a fair sample.
    order = np.random.default_rng(VAL_SEED).permutation(len(arrays["test_y"]))
    test = ImageSet(arrays["test_x"][order], arrays["test_y"][order])
    return Dataset(fit, val, test, [str(c) for c in arrays["classes"]], checksum, spec)


def split_validation(train: ImageSet, fraction: float = VAL_FRACTION) -> tuple[ImageSet, ImageSet]:
    """Stratified hold-out with a fixed seed: the same images whatever the training seed."""
    rng = np.random.default_rng(VAL_SEED)
    per_class = [np.flatnonzero(train.labels == c) for c in np.unique(train.labels)]
    val_idx = np.concatenate([rng.permutation(idx)[: max(1, int(len(idx) * fraction))] for idx in per_class])
    mask = np.zeros(len(train), dtype=bool)
    mask[val_idx] = True
    return (
        ImageSet(train.images[~mask], train.labels[~mask]),
        ImageSet(train.images[mask], train.labels[mask]),
    )


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


def _cached_decode(source: Path, checksum: str, shape: tuple[int, int, int], cache_dir: Path) -> dict[str, np.ndarray]:
    """Keyed by the source's checksum and the decoded size: one source serves models of several input sizes."""
    cached = cache_dir / "datasets" / f"{checksum[:16]}-{'x'.join(map(str, shape))}.npz"
    if cached.exists():
        with np.load(cached) as f:
            return dict(f)
    arrays = _decode(source, shape)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".tmp{os.getpid()}.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, cached)
    finally:
        tmp.unlink(missing_ok=True)
    return arrays


def _decode(source: Path, shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    if cifar_python.is_python_release(source):
        return cifar_python.decode(source, shape)
    return image_folder.decode(source, shape)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
