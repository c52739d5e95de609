"""Bring your own model, end to end: a torch source (48x48, 4 classes) and an ONNX source built beside ResNet18
into one repository, served by one real tritonserver, and compared with in-process predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from build.card import ModelCard, load_card
from build.data import load_dataset
from build.onnx_source import OnnxLogits
from build.pipeline import BuildOptions
from build.zoo import build_zoo
from serving.client import TritonClassifier
from serving.manifest import read_manifest
from serving.triton import TritonConfig, TritonServer
from tests.byo_models import export_float_onnx, small_net, subset_archive
from tests.conftest import MINI_ARCHIVE, PRE, ROOT, full_data_spec

pytestmark = pytest.mark.e2e
FOUR = ["airplane", "automobile", "bird", "cat"]
SHAPE = (3, 48, 48)
OPTIONS = BuildOptions(verify_images=100, eval_images=300, measure_speed=False, threads=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("byo")
    four = subset_archive(Path(full_data_spec() or MINI_ARCHIVE), FOUR, root / "four.tar.gz")
    onnx_file = export_float_onnx(small_net(), root / "theirs.onnx", SHAPE)
    cards = [
        load_card(ROOT / "models" / "resnet18_cifar10.toml", full_data_spec() or str(MINI_ARCHIVE)),
        ModelCard("mynet", "torch:tests.byo_models:small_net", SHAPE, PRE.mean, PRE.std, data=str(four),
                  args={"num_classes": 4}),
        ModelCard("theirs", f"onnx:{onnx_file}", SHAPE, PRE.mean, PRE.std, data=str(four)),
    ]
    repo = root / "repo"
    build_zoo(cards, repo, ["fp32"], ["onnxruntime"], OPTIONS, log=lambda _: None)
    with TritonServer(TritonConfig.on_free_ports(repo)) as server:
        manifest = read_manifest(repo)
        client = TritonClassifier(server.cfg.grpc_url, names={m: (e.io.input, e.io.output)
                                                               for m, e in manifest.models.items()})
        yield repo, four, onnx_file, client
        client.close()


def test_three_families_share_one_repository(world) -> None:
    repo, *_ = world
    manifest = read_manifest(repo)
    assert sorted(manifest.models) == ["mynet_fp32", "resnet18_fp32", "theirs_fp32"]
    assert manifest.cards["mynet"].input == SHAPE and manifest.cards["mynet"].classes == tuple(FOUR)
    assert manifest.models["resnet18_fp32"].io.input_dims == (3, 32, 32)


def test_a_torch_source_serves_what_it_predicts_in_process(world) -> None:
    repo, four, _, client = world
    images = load_dataset(str(four), SHAPE).test.images[:200]
    served = client.predict_all("mynet_fp32", images)
    in_process = OnnxLogits(next((repo / "mynet_fp32").glob("*/model.onnx")), 1)(images)
    assert served.shape == (len(images), 4) and np.abs(served - in_process).max() < 1e-4
    assert np.array_equal(served.argmax(1), in_process.argmax(1))


def test_an_onnx_source_serves_raw_pixels_with_the_original_top1(world) -> None:
    _, four, onnx_file, client = world
    images = load_dataset(str(four), SHAPE).test.images[:200]
    served = client.predict_all("theirs_fp32", images)  # uint8 pixels, as every zoo client sends them
    original = OnnxLogits(onnx_file, 1, PRE.mean, PRE.std)(images)  # the user's file fed normalised floats
    assert np.array_equal(served.argmax(1), original.argmax(1)) and np.abs(served - original).max() < 1e-3
