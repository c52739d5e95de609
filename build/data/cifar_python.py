"""The official CIFAR-10 python release: download with checksum, then unpickle its batches."""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from build.data.arrays import image_file, save_labels
from build.errors import ZooError
from serving.pixels import to_chw

SPEC = "cifar10"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"  # published with the release
FILENAME = "cifar-10-python.tar.gz"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
NATIVE = (3, 32, 32)  # the release's own image format


def download(cache_dir: Path, url: str = URL, md5: str = MD5) -> Path:
    """Fetch the release into the cache once; a partial or corrupt download never stays there."""
    target = cache_dir / "downloads" / FILENAME
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{FILENAME}.part{os.getpid()}")
    try:
        _fetch(url, tmp)
        actual = hashlib.md5(tmp.read_bytes()).hexdigest()
        if actual != md5:
            raise ZooError(f"checksum mismatch for {url}: md5 {actual}, expected {md5}; try the download again")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _fetch(url: str, dest: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp, open(dest, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="download CIFAR-10") as bar:
                while block := resp.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise ZooError(
            f"cannot download CIFAR-10 from {url} ({exc}); if this machine is offline, pass --data "
            f"(or set $TRITONZOO_DATA) to a local {FILENAME} or an ImageFolder .tar.gz"
        ) from exc


def is_python_release(path: Path) -> bool:
    if path.is_dir():
        return any(path.rglob(TEST_BATCH))
    return path.name.endswith(FILENAME) or _archive_has(path, TEST_BATCH)


def _archive_has(path: Path, name: str) -> bool:
    try:
        with tarfile.open(path) as tar:
            return any(Path(m.name).name == name for m in tar.getmembers())
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ZooError(f"dataset archive {path} is corrupt or not a tar archive ({exc}); fetch it again") from exc


def decode(path: Path, shape: tuple[int, ...], folder: Path) -> list[str]:
    """The release's 32x32 RGB images, converted to `shape` (C, H, W) where a model takes another, written into
    `folder` as the train and test arrays (see build.data.arrays); returns the class names."""
    batches = _read_batches(path)
    for split, names in (("train", TRAIN_BATCHES), ("test", [TEST_BATCH])):
        images = np.concatenate([_images(batches[name]) for name in names])  # 32x32: small at any count
        out = image_file(folder, split, len(images), shape)
        if tuple(shape) == NATIVE:
            out[:] = images
        else:
            for i, img in enumerate(tqdm(images, desc=f"resize {split} to {shape}", unit="img", mininterval=1.0)):
                out[i] = to_chw(Image.fromarray(img.transpose(1, 2, 0)), shape)
        out.flush()
        save_labels(folder, split, np.concatenate([_labels(batches[name]) for name in names]))
    return [c.decode() for c in batches["batches.meta"][b"label_names"]]


def _read_batches(path: Path) -> dict[str, dict]:
    wanted = set(TRAIN_BATCHES) | {TEST_BATCH, "batches.meta"}
    found: dict[str, dict] = {}
    try:
        if path.is_dir():
            for f in path.rglob("*"):
                if f.name in wanted:
                    found[f.name] = pickle.loads(f.read_bytes(), encoding="bytes")
        else:
            with tarfile.open(path) as tar:
                for m in tar.getmembers():
                    if Path(m.name).name in wanted:
                        member = tar.extractfile(m)
                        assert member is not None, f"{m.name} in {path} is not a file"
                        found[Path(m.name).name] = pickle.load(member, encoding="bytes")
    except (tarfile.TarError, pickle.UnpicklingError, EOFError, OSError) as exc:
        raise ZooError(f"CIFAR-10 release at {path} is corrupt ({exc}); fetch it again") from exc
    missing = wanted - found.keys()
    if missing:
        raise ZooError(f"CIFAR-10 release at {path} lacks {sorted(missing)}; fetch it again")
    return found


def _images(batch: dict) -> np.ndarray:
    return np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, *NATIVE)


def _labels(batch: dict) -> np.ndarray:
    return np.asarray(batch[b"labels"], dtype=np.int64)
