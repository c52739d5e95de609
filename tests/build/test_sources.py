"""Bring your own model: torch and ONNX sources through the build, and their bad inputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from build.card import ModelCard
from build.data import load_dataset
from build.errors import ZooError
from build.onnx_source import OnnxLogits
from build.pipeline import BuildOptions
from build.zoo import build_zoo
from serving.manifest import read_manifest
from tests.byo_models import export_float_onnx, small_net, subset_archive
from tests.conftest import PRE, card_for

FAST = BuildOptions(verify_images=60, measure_speed=False, threads=1)
CLASSES = ["airplane", "automobile", "bird", "cat"]
SHAPE = (3, 48, 48)


@pytest.fixture
def four_classes(tmp_path: Path, mini_archive: Path) -> Path:
    return subset_archive(mini_archive, CLASSES, tmp_path / "four.tar.gz")


def torch_card(data: Path, **fields) -> ModelCard:
    base = dict(name="mynet", source="torch:tests.byo_models:small_net", input=SHAPE, mean=PRE.mean, std=PRE.std,
                data=str(data), args={"num_classes": 4})
    return ModelCard(**{**base, **fields})


def onnx_card(tmp_path: Path, data: Path, shape: tuple[int, int, int] = SHAPE, **fields) -> ModelCard:
    path = export_float_onnx(small_net(), tmp_path / "mine.onnx", shape)
    return ModelCard(**{**dict(name="mine", source=f"onnx:{path}", input=shape, mean=PRE.mean, std=PRE.std,
                               data=str(data)), **fields})


def test_a_torch_source_of_another_size_and_class_count_builds_beside_a_builtin(
        tmp_path: Path, teacher: Path, four_classes: Path, mini_archive: Path) -> None:
    repo = tmp_path / "repo"
    cards = [card_for(teacher, data=str(mini_archive)), torch_card(four_classes)]
    builds = build_zoo(cards, repo, ["fp32", "fp16"], ["onnxruntime"],
                       dataclasses.replace(FAST, configs=()), log=lambda _: None)
    manifest = read_manifest(repo)
    assert sorted(manifest.models) == ["mynet_fp16", "mynet_fp32", "tiny_fp16", "tiny_fp32"]
    mine = manifest.models["mynet_fp32"]
    assert mine.family == "mynet" and mine.io.input_dims == SHAPE
    assert mine.details["verification"]["top1_agreement"] == 1
    assert manifest.cards["mynet"].classes == tuple(CLASSES) and manifest.cards["tiny"].input == (3, 32, 32)
    assert (repo / "mynet_fp32" / "labels.txt").read_text().split() == CLASSES
    assert [b.card.name for b in builds] == ["tiny", "mynet"]
    # Rebuilding one card leaves the other's folders byte for byte as they were.
    before = {p: p.read_bytes() for p in (repo / "tiny_fp32").rglob("*") if p.is_file()}
    build_zoo([torch_card(four_classes)], repo, ["fp32"], ["onnxruntime"], FAST, log=lambda _: None)
    assert {p: p.read_bytes() for p in (repo / "tiny_fp32").rglob("*") if p.is_file()} == before
    assert read_manifest(repo).models["mynet_fp32"].version == 2


def test_an_onnx_source_gets_uint8_input_and_keeps_its_top1(tmp_path: Path, four_classes: Path) -> None:
    repo = tmp_path / "repo"
    card = onnx_card(tmp_path, four_classes)
    (build,) = build_zoo([card], repo, ["fp32", "fp16", "pruned", "sparse"], ["onnxruntime"], FAST,
                         log=lambda _: None)
    assert sorted(build.entries) == ["mine_fp16", "mine_fp32"]
    assert "needs the PyTorch model" in build.not_applicable["pruned"] and "sparse" in build.not_applicable
    images = load_dataset(str(four_classes), SHAPE).test.images
    original = OnnxLogits(Path(card.spec), 1, PRE.mean, PRE.std)(images)  # the user's file, fed normalised floats
    published = OnnxLogits(repo / "mine_fp32" / "1" / "model.onnx", 1)(images)  # raw uint8 pixels
    assert np.array_equal(original.argmax(1), published.argmax(1)) and np.abs(original - published).max() < 1e-4


def test_an_onnx_source_can_teach_a_student(tmp_path: Path, four_classes: Path, micro_student: str) -> None:
    options = dataclasses.replace(FAST, max_train_steps=2, configs=(
        dataclasses.replace(__import__("build.steps.distill", fromlist=["x"]).DistillConfig(),
                            student=micro_student, shipped=False),))
    (build,) = build_zoo([onnx_card(tmp_path, four_classes)], tmp_path / "repo", ["distilled"], ["onnxruntime"],
                         options, log=lambda _: None)
    assert build.entries["mine_distilled"].metrics["distillation"]["steps"] == 2


def _fails(tmp_path: Path, cards: list[ModelCard], match: str) -> None:
    repo = tmp_path / "repo"
    with pytest.raises(ZooError, match=match):
        build_zoo(cards, repo, ["fp32"], ["onnxruntime"], FAST, log=lambda _: None)
    assert not (repo / "manifest.json").exists(), "nothing is published"


def test_sources_that_cannot_be_loaded_are_named(tmp_path: Path, four_classes: Path) -> None:
    _fails(tmp_path, [torch_card(four_classes, source="torch:tests.nowhere:net")], r"mynet: source: cannot import")
    _fails(tmp_path, [torch_card(four_classes, source="torch:tests.byo_models:nothing")], r"source: cannot import")
    _fails(tmp_path, [torch_card(four_classes, args={"colours": 2})], r"args: .*failed")


def test_weights_that_do_not_fit_are_named(tmp_path: Path, four_classes: Path) -> None:
    torch.save(small_net(num_classes=10).state_dict(), tmp_path / "w.pt")
    _fails(tmp_path, [torch_card(four_classes, weights=tmp_path / "w.pt")], r"weights: w.pt does not fit the network")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    _fails(tmp_path, [torch_card(four_classes, weights=tmp_path / "junk.pt")], r"weights: cannot read")


def test_a_card_that_disagrees_with_its_model_or_data_is_named(tmp_path: Path, four_classes: Path,
                                                                  mini_archive: Path) -> None:
    _fails(tmp_path, [torch_card(mini_archive)], r"data: the model returns shape \[2, 4\] .* 10 classes")
    _fails(tmp_path, [torch_card(four_classes, classes=("a", "b", "c", "d"))], r"classes: .*class folders are")
    _fails(tmp_path, [onnx_card(tmp_path, four_classes, input=(3, 40, 40))], r"input: \[3, 40, 40\] but")


def test_onnx_files_of_the_wrong_shape_are_refused(tmp_path: Path, four_classes: Path) -> None:
    flat = tmp_path / "flat.onnx"
    torch.onnx.export(torch.nn.Linear(12, 4).eval(), (torch.zeros(1, 12),), str(flat), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "n"}})
    card = onnx_card(tmp_path, four_classes)
    _fails(tmp_path, [dataclasses.replace(card, source=f"onnx:{flat}")], r"input: flat.onnx's input x has rank 2")
    conv = tmp_path / "conv.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3).eval(), (torch.zeros(1, *SHAPE),), str(conv), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "n"}})
    _fails(tmp_path, [dataclasses.replace(card, source=f"onnx:{conv}")], r"output has shape .* not \(batch, classes\)")


def test_two_cards_with_one_name_are_refused(tmp_path: Path, four_classes: Path) -> None:
    _fails(tmp_path, [torch_card(four_classes), torch_card(four_classes)], "is also the name of card")


def test_onnx_macs_are_counted_as_torch_counts_them(tmp_path: Path) -> None:
    from build.complexity import macs_and_params as torch_count
    from build.models import Classifier
    from build.onnx_source import macs_and_params as onnx_count

    net = small_net()
    path = export_float_onnx(net, tmp_path / "n.onnx", SHAPE)
    macs, params = onnx_count(path)
    expected = 48 * 48 * 8 * 3 * 9 + 24 * 24 * 16 * 8 * 9 + 16 * 4  # two convolutions and the head
    folded = (8 * 3 * 9 + 8) + (16 * 8 * 9 + 16) + (16 * 4 + 4)  # BatchNorm folded into weights and biases
    assert macs == expected and params == folded
    # Torch-Pruning also counts BatchNorm and activations: 10% more on this tiny net, 0.3% on ResNet18
    assert abs(macs - torch_count(Classifier(net, dataclasses.replace(PRE, input=SHAPE)))[0]) / macs < 0.15


def test_a_torch_source_gets_the_variants_that_transform_its_weights(tmp_path: Path, four_classes: Path) -> None:
    """Pruning through Torch-Pruning's dependency graph and sparsity work on a network the zoo never saw."""
    options = dataclasses.replace(FAST, max_train_steps=2)
    (build,) = build_zoo([torch_card(four_classes)], tmp_path / "repo", ["pruned", "sparse"], ["onnxruntime"],
                         options, log=lambda _: None)
    assert sorted(build.entries) == ["mynet_pruned", "mynet_sparse"] and not build.rejected
    pruning = build.entries["mynet_pruned"].metrics["pruning"]
    assert pruning["macs_after"] < pruning["macs_before"]


def test_a_cards_network_exports_alone_with_a_card_that_builds_it_back(tmp_path: Path, four_classes: Path) -> None:
    """`invoke export-onnx`: the network without preprocessing, and an onnx: card giving the same predictions."""
    from build.card import load_card, write_onnx_card
    from build.export import export_float_onnx
    from build.sources import network

    card = torch_card(four_classes)
    path = export_float_onnx(network(card), tmp_path / "mynet.onnx", card.input)
    again = load_card(write_onnx_card(card, path))
    assert again.kind == "onnx" and again.input == card.input and again.mean == card.mean
    (build,) = build_zoo([again], tmp_path / "repo", ["fp32"], ["onnxruntime"], FAST, log=lambda _: None)
    images = load_dataset(str(four_classes), SHAPE).test.images
    torch_logits = network(card)((torch.from_numpy(images).float() - torch.tensor(PRE.mean).view(1, 3, 1, 1))
                                 / torch.tensor(PRE.std).view(1, 3, 1, 1)).detach().numpy()
    published = OnnxLogits(tmp_path / "repo" / "mynetonnx_fp32" / "1" / "model.onnx", 1)(images)
    assert np.abs(torch_logits - published).max() < 1e-3
