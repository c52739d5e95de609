from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest

from build.data import load_dataset
from build.export import export_onnx
from build.hardware import detect, int8_types
from build.models import Classifier
from build.models.resnet import CifarResNet
from build.steps.quantize import Int8Config, QuantizeStatic, doubling, quantize, sensitivity
from tests.conftest import CIFAR, PRE, unused


@pytest.fixture
def quantized(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    import torch
    from onnxruntime.quantization.shape_inference import quant_pre_process

    torch.manual_seed(0)
    export_onnx(Classifier(CifarResNet([1], [8], 10), PRE).eval(), tmp_path / "m.onnx")
    quant_pre_process(str(tmp_path / "m.onnx"), str(tmp_path / "prepared.onnx"))
    images = np.random.default_rng(0).integers(0, 255, (64, 3, 32, 32), dtype=np.uint8)
    quantize(tmp_path / "prepared.onnx", tmp_path / "q.onnx", "images", images, Int8Config(), int8_types(detect()),
             exclude=[])
    return tmp_path / "prepared.onnx", tmp_path / "q.onnx", images


def test_sensitivity_ranks_every_quantized_layer(quantized, tmp_path: Path) -> None:
    prepared, q, images = quantized
    ranked = sensitivity(prepared, q, "images", images[:16], tmp_path)
    convs = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in ("Conv", "Gemm")]
    assert sorted(ranked) == sorted(convs)


def test_over_budget_layers_fall_back_to_fp32(quantized, tmp_path: Path, mini_archive: Path) -> None:
    from build.pipeline import BuildContext, BuildOptions, VariantState
    from build.repository.model_config import model_io
    from build.sources import Teacher
    from build.verification import Tolerance

    prepared, _, _ = quantized
    mini = load_dataset(str(mini_archive), CIFAR)
    data = dataclasses.replace(mini, val=mini.test)
    # A negative budget can never be met: the step falls back as far as it is allowed to.
    cfg = Int8Config(calibration_images=64, check_images=100, accuracy_budget=-1.0, max_fallback_layers=3)
    ctx = BuildContext(data, unused(Teacher), BuildOptions(threads=1), [], tmp_path, {},
                       model_io(CIFAR))
    state = VariantState("int8", "fp32", unused(Tolerance), tmp_path, onnx_path=prepared)
    result = QuantizeStatic(cfg).run(state, ctx)
    state = state.advanced("quantize_static_int8", result)
    q = state.metrics["quantization"]
    assert len(q["fp32_fallback_layers"]) == 3 and q["validation"]["within_budget"] is False
    graph = onnx.load(str(state.onnx_path)).graph
    initializers = {i.name for i in graph.initializer}
    float_convs = {n.name for n in graph.node if n.op_type == "Conv" and n.input[1] in initializers}
    assert float_convs == set(q["fp32_fallback_layers"]), "exactly those layers keep FP32 weights"


def test_doubling() -> None:
    assert doubling(8) == [1, 2, 4, 8] and doubling(3) == [1, 2, 3] and doubling(1) == [1] and doubling(0) == []


def test_calibration_adapts_to_a_small_validation_split_and_says_so() -> None:
    from build.errors import ZooError

    cfg = Int8Config()
    assert cfg.images(5000) == (512, 2000, ""), "a split large enough takes the settings as they are"
    calibration, check, note = cfg.images(200)  # 2,000 training images: a validation split of 200
    assert (calibration, check) == (200, 200) and "calibrated on 200 and checked on 200" in note
    cfg.validate(200)  # no error: the sizes adapt
    with pytest.raises(ZooError, match="needs at least 64 validation images.*has 50.*at least 640 training images"):
        cfg.validate(50)
    with pytest.raises(ZooError, match="at least 64 images, got 10"):
        Int8Config(calibration_images=10).validate(5000)
