"""Payload images at each model's input shape, from each model's own dataset where the manifest's card names one."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loadtest.protocol import images as images_module
from loadtest.protocol.images import (
    fit_payloads,
    load_payloads,
    load_test_images,
    model_source,
    payloads_for,
    save_images,
    save_payloads,
)
from serving.manifest import load_manifest
from tests.conftest import CIFAR, MINI_ARCHIVE
from tests.serving.manifests import card, entry, write


def first_mini_image() -> Image.Image:
    with tarfile.open(MINI_ARCHIVE) as tar:  # the first image in payload order: the first airplane
        member = tar.extractfile("cifar10-mini/test/airplane/0000.jpg")
        assert member is not None
        data = member.read()
    return Image.open(io.BytesIO(data))


def test_images_are_resized_to_the_input_asked_for() -> None:
    wide = load_test_images(MINI_ARCHIVE, 4, (3, 48, 48))
    assert wide.shape == (4, 3, 48, 48) and wide.dtype == np.uint8
    resized = first_mini_image().convert("RGB").resize((48, 48), Image.Resampling.BILINEAR)
    expected = np.asarray(resized).transpose(2, 0, 1)
    assert np.array_equal(wide[0], expected)


def test_one_channel_images_are_the_grayscale_of_the_originals() -> None:
    gray = load_test_images(MINI_ARCHIVE, 3, (1, 28, 28))
    assert gray.shape == (3, 1, 28, 28)
    expected = np.asarray(first_mini_image().convert("L").resize((28, 28), Image.Resampling.BILINEAR))
    assert np.array_equal(gray[0, 0], expected)
    assert np.array_equal(load_test_images(MINI_ARCHIVE, 3, CIFAR), load_test_images(MINI_ARCHIVE, 3, (3, 32, 32)))


def python_release(path: Path, rows: np.ndarray) -> Path:
    """A stand-in for cifar-10-python.tar.gz: its test_batch holds `rows` (N, 3072)."""
    data = pickle.dumps({b"data": rows, b"labels": list(range(len(rows)))})
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_the_python_release_is_resized_too(tmp_path: Path) -> None:
    rows = np.stack([np.full(3072, v, np.uint8) for v in (10, 200)])
    archive = python_release(tmp_path / "cifar-10-python.tar.gz", rows)
    assert np.array_equal(load_test_images(archive, 2, CIFAR), rows.reshape(2, 3, 32, 32))
    gray = load_test_images(archive, 2, (1, 20, 24))
    assert gray.shape == (2, 1, 20, 24) and np.all(gray[0] == 10) and np.all(gray[1] == 200)


def own_dataset(root: Path, colours: dict[str, tuple[int, int, int]], size: tuple[int, int] = (60, 60)) -> Path:
    """An ImageFolder test split of uniform images, one class per colour: payloads from it are recognisable."""
    for name, colour in colours.items():
        folder = root / "test" / name
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", size, colour).save(folder / f"{i}.png")
    return root


def test_each_model_takes_its_familys_dataset_at_its_own_input(tmp_path: Path, monkeypatch) -> None:
    digits = own_dataset(tmp_path / "digits", {"a": (255, 255, 255), "b": (0, 0, 0)})
    cards = [card("digits", data=str(digits), dims=(1, 28, 28)),
             card("resnet18", data="cifar10"),  # the build's own download: no path here
             card("gone", data=str(tmp_path / "moved.tar.gz"), dims=(3, 48, 48))]
    entries = [entry("digits_fp32", dims=(1, 28, 28)), entry("digits_int8", variant="int8", dims=(1, 28, 28)),
               entry("resnet18_fp32"), entry("gone_fp32", dims=(3, 48, 48)), entry("nocard_fp32", dims=(3, 40, 40))]
    repo = write(tmp_path / "repo", entries, cards)
    reads: list[Path] = []
    pick = images_module.pick_test_images

    def recorded_pick(source: Path, limit: int) -> images_module.Picked:
        reads.append(source)
        return pick(source, limit)

    monkeypatch.setattr(images_module, "pick_test_images", recorded_pick)

    payloads = payloads_for(repo, [e.model for e in entries], MINI_ARCHIVE, 4)
    assert sorted(reads) == sorted([digits, MINI_ARCHIVE]), "each source is read once, whatever the shapes"
    assert {m: a.shape for m, a in payloads.items()} == {
        "digits_fp32": (4, 1, 28, 28), "digits_int8": (4, 1, 28, 28), "resnet18_fp32": (4, 3, 32, 32),
        "gone_fp32": (4, 3, 48, 48), "nocard_fp32": (4, 3, 40, 40)}
    assert [int(a.mean()) for a in payloads["digits_fp32"]] == [255, 0, 255, 0], "its own classes, interleaved"
    assert np.array_equal(payloads["resnet18_fp32"], load_test_images(MINI_ARCHIVE, 4, CIFAR))
    assert np.array_equal(payloads["gone_fp32"], load_test_images(MINI_ARCHIVE, 4, (3, 48, 48)))


def test_models_without_a_dataset_need_the_users_source(tmp_path: Path) -> None:
    repo = write(tmp_path / "repo", [entry("resnet18_fp32"), entry("mynet_fp32")], [card("resnet18")])
    with pytest.raises(ValueError, match=r"no payload images for \['mynet_fp32', 'resnet18_fp32'\].*--data"):
        payloads_for(repo, ["mynet_fp32", "resnet18_fp32"], None, 2)
    with pytest.raises(ValueError, match=r"\['nope'\] are not in"):
        payloads_for(repo, ["nope"], MINI_ARCHIVE, 2)


def test_model_source_prefers_the_cards_dataset_only_when_it_is_here(tmp_path: Path) -> None:
    fallback = Path("/data/cifar.tar.gz")
    assert model_source(card("a", data=str(tmp_path)), fallback) == tmp_path
    assert model_source(card("a", data=str(tmp_path / "missing")), fallback) == fallback
    assert model_source(card("a", data="cifar10"), fallback) == fallback
    assert model_source(card("a", data="cifar10-mini.tar.gz"), fallback) == fallback, "relative: not the build's"
    assert model_source(None, fallback) == fallback


def test_one_array_is_fitted_to_each_models_input(tmp_path: Path) -> None:
    repo = write(tmp_path, [entry("a_fp32"), entry("g_fp32", dims=(1, 28, 28))])
    entries = load_manifest(repo)
    batch = np.full((2, 3, 32, 32), 90, np.uint8)
    fitted = fit_payloads(batch, entries, ["a_fp32", "g_fp32"])
    assert fitted["a_fp32"] is batch and fitted["g_fp32"].shape == (2, 1, 28, 28) and np.all(fitted["g_fp32"] == 90)
    own = {"a_fp32": batch, "g_fp32": np.zeros((1, 1, 28, 28), np.uint8)}
    assert fit_payloads(own, entries, ["g_fp32"])["g_fp32"] is own["g_fp32"]
    with pytest.raises(ValueError, match="no payload images for"):
        fit_payloads({"a_fp32": batch}, entries, ["a_fp32", "g_fp32"])


def test_payload_files_hold_one_array_per_model_or_one_for_all(tmp_path: Path) -> None:
    payloads = {"a_fp32": np.ones((5, 3, 32, 32), np.uint8), "g_fp32": np.zeros((5, 1, 28, 28), np.uint8)}
    loaded = load_payloads(save_payloads(payloads, tmp_path / "images.npz"), 3)
    assert isinstance(loaded, dict)
    assert {m: a.shape for m, a in loaded.items()} == {"a_fp32": (3, 3, 32, 32), "g_fp32": (3, 1, 28, 28)}
    single = load_payloads(save_images(payloads["a_fp32"], tmp_path / "images.npy"))
    assert isinstance(single, np.ndarray) and single.shape == (5, 3, 32, 32)
