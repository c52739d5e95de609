"""ImageNet-shaped networks at 224 pixels, end to end: an ImageNet-layout ResNet-18 (at half width, so that the test
is quicker) as a torch source and as its ONNX export, each on a few hundred images, built with the default recipes
into fp32 and INT8 on both CPU runtimes, FP16, pruned and distilled (the torch source), served by one real
tritonserver and compared with what the build measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from build.card import ModelCard
from build.data import load_dataset
from build.pipeline import BuildOptions
from build.steps.distill import DistillConfig
from build.zoo import build_zoo
from serving.client import TritonClassifier
from serving.manifest import read_manifest
from serving.triton import TritonConfig, TritonServer
from tests.byo_models import export_float_onnx, imagenet_resnet18, subset_archive
from tests.conftest import MINI_ARCHIVE, full_data_spec

pytestmark = pytest.mark.e2e
CLASSES = ["airplane", "automobile", "bird", "cat"]
SHAPE = (3, 224, 224)
IMAGENET_MEAN, IMAGENET_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
WIDTH = 32  # half of ResNet-18's widths: a quarter of its 1.8 GMACs, still above the widenet student at 224
# 170 training images a class: a validation split of 68, enough to calibrate INT8 (64 at least)
PER_CLASS = {"train": 170, "test": 50}
# distillation's recipe runs 50 epochs, minutes at 224 pixels on 2 cores: one epoch here checks the path
OPTIONS = BuildOptions(verify_images=100, measure_speed=False, threads=2, configs=(DistillConfig(epochs=1),),
                       user_set=frozenset({(DistillConfig, "epochs")}))  # as --set: the recipe's 100 would win
TORCH_VARIANTS = ["fp32", "int8", "fp16", "pruned", "distilled"]
ONNX_VARIANTS = ["fp32", "int8", "fp16"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    source = full_data_spec()
    if source is None:
        pytest.skip(f"needs the full dataset ($TRITONZOO_DATA): {MINI_ARCHIVE.name} has too few images a class")
    root = tmp_path_factory.mktemp("byo224")
    data = subset_archive(Path(source), CLASSES, root / "four.tar.gz", PER_CLASS)
    onnx_file = export_float_onnx(imagenet_resnet18(len(CLASSES), WIDTH), root / "inet.onnx", SHAPE)
    torch_card = ModelCard("inettorch", "torch:tests.byo_models:imagenet_resnet18", SHAPE, IMAGENET_MEAN,
                           IMAGENET_STD, data=str(data), args={"num_classes": len(CLASSES), "width": WIDTH})
    onnx_card = ModelCard("inetonnx", f"onnx:{onnx_file}", SHAPE, IMAGENET_MEAN, IMAGENET_STD, data=str(data))
    repo = root / "repo"
    builds = {
        card.name: build_zoo([card], repo, variants, ["onnxruntime", "openvino"], OPTIONS, log=lambda _: None)[0]
        for card, variants in ((torch_card, TORCH_VARIANTS), (onnx_card, ONNX_VARIANTS))}
    with TritonServer(TritonConfig.on_free_ports(repo)) as server:
        client = TritonClassifier(server.cfg.grpc_url)
        yield repo, data, builds, client
        client.close()


def test_every_variant_is_published_on_both_cpu_runtimes_and_agrees_with_the_original(world) -> None:
    repo, _, builds, _ = world
    models = read_manifest(repo).models
    for family, variants in (("inettorch", TORCH_VARIANTS), ("inetonnx", ONNX_VARIANTS)):
        assert builds[family].rejected == {}, builds[family].rejected
        for variant in variants:
            # FP16 files are for GPUs: OpenVINO's CPU counterpart is openvino_bf16 of fp32 (the report says so)
            for suffix in ("",) if variant == "fp16" else ("", "_openvino"):
                entry = models[f"{family}_{variant}{suffix}"]
                assert entry.io.input_dims == SHAPE
                check = entry.details["verification"]  # the loosest documented tolerance (INT8): 97%
                assert check["confident_top1_agreement"] >= 0.97, (entry.model, check)
    assert "needs the PyTorch model" in builds["inetonnx"].not_applicable.get("pruned", "needs the PyTorch model")
    student = models["inettorch_distilled"].metrics["distillation"]
    assert student["student"] == "widenet" and student["trained_in_build"], "a user's card trains its own student"
    assert student["macs_reduction_vs_teacher"] > 1.0, "a student shaped for 224 pixels is smaller than its teacher"


def test_the_served_models_answer_as_the_build_measured(world) -> None:
    repo, data, _, client = world
    test = load_dataset(str(data), SHAPE).test
    for name, entry in sorted(read_manifest(repo).models.items()):
        logits = client.predict_all(name, test.images)
        served = float((logits.argmax(1) == test.labels).mean())
        assert logits.shape == (len(test), len(CLASSES))
        assert np.isclose(served, entry.top1), name
