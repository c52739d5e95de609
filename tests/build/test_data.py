from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from build.data import cifar_python, load_dataset
from build.data.dataset import ImageSet, split_validation
from build.errors import ZooError
from tests.conftest import CIFAR


def _jpeg(color: tuple[int, int, int], size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def _write_tree(root: Path, per_class: int = 3) -> None:
    for split in ("train", "test"):
        for cls, color in (("cat", (255, 0, 0)), ("ant", (0, 0, 255))):
            folder = root / "set" / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                (folder / f"{i}.png").write_bytes(_jpeg(color, 32 if i else 40))


def _tar(src: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(src, arcname=".")
    return dest


def test_image_folder_tree_and_archive_decode_alike(tmp_path: Path) -> None:
    _write_tree(tmp_path / "tree", per_class=10)
    from_tree = load_dataset(str(tmp_path / "tree"), CIFAR)
    from_tar = load_dataset(str(_tar(tmp_path / "tree", tmp_path / "set.tar.gz")), CIFAR)
    assert from_tree.classes == from_tar.classes == ["ant", "cat"]  # sorted, ImageFolder-style
    for ds in (from_tree, from_tar):
        assert ds.test.images.shape == (20, 3, 32, 32) and ds.test.images.dtype == np.uint8
        assert len(ds.train) + len(ds.val) == 20 and len(ds.val) == 2
    # Red images are class 'cat' (index 1); blue are 'ant' (index 0), resized from 40x40 where needed.
    red = from_tar.test.images[from_tar.test.labels == 1]
    assert (red[:, 0] > 200).all() and (red[:, 2] < 50).all()


def test_real_mini_archive_loads(mini_archive: Path) -> None:
    ds = load_dataset(str(mini_archive), CIFAR)
    assert len(ds.classes) == 10 and ds.classes[0] == "airplane"
    assert len(ds.test) == 300 and len(ds.train) + len(ds.val) == 100
    assert sorted(np.bincount(ds.test.labels)) == [30] * 10
    assert len(np.unique(ds.test.labels[:50])) > 5, "the test set is shuffled, so prefixes are fair samples"


def test_decode_happens_once(mini_archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_dataset(str(mini_archive), CIFAR)
    monkeypatch.setattr("build.data.image_folder.decode", lambda *_: pytest.fail("decoded twice"))
    second = load_dataset(str(mini_archive), CIFAR)
    assert np.array_equal(first.test.images, second.test.images) and first.checksum == second.checksum


def test_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="dataset not found: .*nowhere.tar.gz does not exist"):
        load_dataset(str(tmp_path / "nowhere.tar.gz"), CIFAR)


def test_corrupt_archive_is_reported_and_not_cached(tmp_path: Path, isolated_cache: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b" + b"garbage" * 100)
    with pytest.raises(ZooError, match="bad.tar.gz is corrupt"):
        load_dataset(str(bad), CIFAR)
    assert not list((isolated_cache / "datasets").iterdir()), "no decode, complete or partial, is left"


def test_the_cache_holds_each_split_memory_mapped_as_split_and_shuffled_from_the_decode(
        tmp_path: Path, mini_archive: Path, isolated_cache: Path) -> None:
    """Large images never need to fit in memory: each split is a file, read through a memory map (copy-on-write,
    so batches are writable arrays). It holds what splitting and shuffling the decoded arrays in memory gives."""
    from build.data import image_folder
    from build.data.dataset import split_validation, test_order

    ds = load_dataset(str(mini_archive), CIFAR)
    assert all(isinstance(s.images, np.memmap) and s.images.flags.writeable for s in (ds.train, ds.val, ds.test))
    raw = tmp_path / "raw"
    raw.mkdir()
    image_folder.decode(mini_archive, CIFAR, raw)
    train = ImageSet(np.load(raw / "train_x.npy"), np.load(raw / "train_y.npy"))
    fit, val = split_validation(train)
    order = test_order(len(np.load(raw / "test_y.npy")))
    assert np.array_equal(ds.train.images, fit.images) and np.array_equal(ds.val.labels, val.labels)
    assert np.array_equal(ds.test.images, np.load(raw / "test_x.npy")[order])
    folder = next((isolated_cache / "datasets").iterdir())
    assert sorted(p.name for p in folder.iterdir()) == ["classes.json", "fit_x.npy", "fit_y.npy", "test_x.npy",
                                                         "test_y.npy", "val_x.npy", "val_y.npy"]


def test_checksum_sidecar_mismatch(tmp_path: Path, mini_archive: Path) -> None:
    copy = tmp_path / "cifar.tar.gz"
    copy.write_bytes(mini_archive.read_bytes())
    (tmp_path / "cifar.tar.gz.sha256").write_text("0" * 64 + "  cifar.tar.gz\n")
    with pytest.raises(ZooError, match="checksum mismatch for .*cifar.tar.gz"):
        load_dataset(str(copy), CIFAR)
    (tmp_path / "cifar.tar.gz.sha256").write_text(hashlib.sha256(copy.read_bytes()).hexdigest() + "  cifar.tar.gz\n")
    assert len(load_dataset(str(copy), CIFAR).test) == 300


def test_validation_split_is_stratified_deterministic_and_disjoint() -> None:
    labels = np.repeat(np.arange(10), 50)
    images = np.arange(len(labels), dtype=np.int64)[:, None]  # images carry their own index
    fit1, val1 = split_validation(ImageSet(images, labels))
    fit2, val2 = split_validation(ImageSet(images, labels))
    assert np.array_equal(val1.images, val2.images)
    assert list(np.bincount(val1.labels)) == [5] * 10
    assert not set(fit1.images.ravel()) & set(val1.images.ravel())
    assert len(fit1) + len(val1) == len(labels)


def _python_release(path: Path) -> Path:
    rng = np.random.default_rng(0)

    def batch(n: int) -> bytes:
        return pickle.dumps({b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
                             b"labels": list(rng.integers(0, 10, n))})

    files = {f"data_batch_{i}": batch(20) for i in range(1, 6)}
    meta = pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]})
    files |= {"test_batch": batch(30), "batches.meta": meta}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_python_release_decodes(tmp_path: Path) -> None:
    ds = load_dataset(str(_python_release(tmp_path / "cifar-10-python.tar.gz")), CIFAR)
    assert ds.classes == [f"c{i}" for i in range(10)]
    assert ds.test.images.shape == (30, 3, 32, 32)
    assert len(ds.train) + len(ds.val) == 100
    gray = load_dataset(str(tmp_path / "cifar-10-python.tar.gz"), (1, 20, 24))  # resized, one channel
    assert gray.test.images.shape == (30, 1, 20, 24) and gray.test.images.dtype == np.uint8


def test_image_folder_resizes_and_converts_to_the_cards_input(mini_archive: Path) -> None:
    """Any image size in, the card's (C, H, W) out; the same source at two sizes is cached twice."""
    rgb = load_dataset(str(mini_archive), (3, 48, 48))
    gray = load_dataset(str(mini_archive), (1, 28, 28))
    assert rgb.test.images.shape[1:] == (3, 48, 48) and gray.test.images.shape[1:] == (1, 28, 28)
    assert rgb.checksum == gray.checksum and np.array_equal(rgb.test.labels, gray.test.labels)
    # grayscale is the luminance of the colour image, not one of its channels
    small = load_dataset(str(mini_archive), CIFAR).test.images[0].astype(float)
    luma = 0.299 * small[0] + 0.587 * small[1] + 0.114 * small[2]
    assert abs(load_dataset(str(mini_archive), (1, 32, 32)).test.images[0, 0] - luma).max() <= 1.0


def test_download_verifies_md5_and_leaves_nothing_on_mismatch(tmp_path: Path) -> None:
    release = _python_release(tmp_path / "src.tar.gz")
    cache = tmp_path / "cache"
    with pytest.raises(ZooError, match="checksum mismatch"):
        cifar_python.download(cache, url=release.as_uri(), md5="0" * 32)
    assert not any((cache / "downloads").iterdir())
    good = hashlib.md5(release.read_bytes()).hexdigest()
    target = cifar_python.download(cache, url=release.as_uri(), md5=good)
    assert target.read_bytes() == release.read_bytes()


def test_download_offline_gives_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="cannot download CIFAR-10 .*offline"):
        cifar_python.download(tmp_path, url="http://127.0.0.1:9/cifar-10-python.tar.gz")
