from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto
from onnxruntime.quantization import QuantType
from onnxruntime.quantization.quant_utils import compute_scale_zp, get_qmin_qmax_for_qType
from torch import nn
from torch.ao.quantization import FakeQuantize
from torch.nn import functional as F

from build.card import ModelCard
from build.data import Dataset, load_dataset
from build.errors import ZooError
from build.hardware import Int8Types, detect, int8_types
from build.models import Classifier
from build.models.resnet import CifarResNet
from build.pipeline import BuildContext, BuildOptions, VariantState
from build.profiles import options_for
from build.repository.model_config import model_io
from build.sources import Teacher
from build.steps.distill import DistillConfig
from build.steps.export import ExportOnnx
from build.steps.graph import OptimizeGraph
from build.steps.qat import (
    FakeQuantLayer,
    QatConfig,
    QuantAwareFinetune,
    check_types,
    fold_batchnorm,
    freeze_input_ranges_after,
    insert_fake_quant,
)
from build.steps.quantize import Int8Config, QuantizeStatic
from build.verification import Tolerance
from build.zoo import build_order
from tests.conftest import CIFAR, PRE, build_one, models_of, unused

ONNX_TYPES = {QuantType.QUInt8: TensorProto.UINT8, QuantType.QInt8: TensorProto.INT8}
TYPES = [
    Int8Types(QuantType.QUInt8, QuantType.QInt8, False, "x86 with VNNI"),
    Int8Types(QuantType.QUInt8, QuantType.QInt8, True, "x86 without VNNI"),
    Int8Types(QuantType.QInt8, QuantType.QInt8, False, "Arm"),
    # TensorRT's encoding: the export quantizes activations symmetrically (ActivationSymmetric), and so must QAT.
    Int8Types(QuantType.QInt8, QuantType.QInt8, False, "TensorRT", symmetric_activations=True, quantize_bias=False),
]


def tiny_model() -> Classifier:
    """A two-block ResNet whose BatchNorms hold non-trivial statistics, as a trained network's do."""
    torch.manual_seed(0)
    model = Classifier(CifarResNet([1, 1], [8, 16], 10), PRE)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        assert bn.running_mean is not None and bn.running_var is not None, "BatchNorms track running statistics"
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 255, (n, 3, 32, 32), dtype=np.uint8))


def context(tmp_path: Path, mini_archive: Path) -> BuildContext:
    mini = load_dataset(str(mini_archive), CIFAR)
    data = dataclasses.replace(mini, val=mini.test)  # the mini archive's validation split is too small to calibrate
    options = BuildOptions(threads=1, verify_images=100)
    teacher = Teacher(card_for_model(), "tiny", module=tiny_model())
    return BuildContext(data, teacher, options, [], tmp_path, {}, model_io(CIFAR))


def ort_qparams(rmin: float | torch.Tensor, rmax: float | torch.Tensor, qtype: QuantType, reduce_range: bool,
                symmetric: bool):
    """Scale and zero point as ONNX Runtime's quantizer computes them."""
    qmin, qmax = get_qmin_qmax_for_qType(ONNX_TYPES[qtype], reduce_range=reduce_range, symmetric=symmetric)
    zero, scale = compute_scale_zp(np.float32(float(rmin)), np.float32(float(rmax)), qmin, qmax, symmetric=symmetric)
    return float(scale), int(zero), int(qmin), int(qmax)


def fake_quant(x: torch.Tensor, scale: float, zero: int, qmin: int, qmax: int) -> torch.Tensor:
    return (torch.clamp(torch.round(x / scale) + zero, qmin, qmax) - zero) * scale


@pytest.mark.parametrize(("name", "value", "message"), [
    ("steps", "0", "steps >= 1"),
    ("lr", "0", "learning rate must lie in"),
    ("alpha", "1.5", "0 <= alpha <= 1"),
    ("temperature", "0", "temperature > 0"),
    ("freeze_observers_after", "0", "freeze_observers_after is a fraction"),
])
def test_bad_settings_are_refused_before_the_build(name: str, value: str, message: str, tmp_path: Path) -> None:
    options = options_for("default", [f"qat.{name}={value}"])
    ctx = BuildContext(unused(Dataset), unused(Teacher), options, [], tmp_path, {},
                       model_io(CIFAR))
    with pytest.raises(ZooError, match=message):
        QuantAwareFinetune().tuned(options).check(ctx)


def test_unsigned_weights_cannot_be_simulated() -> None:
    check_types(int8_types(detect()))  # this machine's settings are supported
    with pytest.raises(ZooError, match="QUInt8 weights"):
        check_types(Int8Types(QuantType.QUInt8, QuantType.QUInt8, False, "hypothetical"))


@pytest.mark.parametrize("types", TYPES, ids=lambda t: t.reason)
@pytest.mark.parametrize("layer", [nn.Conv2d(3, 4, 3, padding=1), nn.Linear(6, 5)], ids=["conv", "linear"])
def test_wrapped_layer_quantizes_as_onnxruntime_would(types: Int8Types, layer: nn.Conv2d | nn.Linear) -> None:
    torch.manual_seed(1)
    x = torch.randn(8, 3, 5, 5) * 2 + 0.5 if isinstance(layer, nn.Conv2d) else torch.randn(8, 6) * 3
    out = FakeQuantLayer(copy.deepcopy(layer), types)(x)

    w = layer.weight.detach()
    absmax = w.abs().flatten(1).amax(1)
    weight = torch.stack([fake_quant(w[c], *ort_qparams(-absmax[c], absmax[c], types.weight, types.reduce_range,
                                                        symmetric=True)) for c in range(len(w))])
    x_q = fake_quant(x, *ort_qparams(x.min(), x.max(), types.activation, False,
                                     symmetric=types.symmetric_activations))
    expected = (F.conv2d(x_q, weight, layer.bias, padding=1) if isinstance(layer, nn.Conv2d)
                else F.linear(x_q, weight, layer.bias))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, layer(x), atol=1e-3), "the rounding is really simulated"
    levels = 64 if types.reduce_range else 127
    assert (weight / (absmax.view(-1, *[1] * (w.dim() - 1)) / levels)).round().abs().max() == levels


def test_batchnorm_folds_into_the_convolutions() -> None:
    model = tiny_model()
    x = images(16)
    before = model(x)
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert fold_batchnorm(model) == 6, "stem, two per block, and the one shortcut"
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == convs
    torch.testing.assert_close(model(x), before, atol=1e-4, rtol=1e-4)


def test_input_ranges_freeze_while_weight_ranges_follow() -> None:
    model = tiny_model()
    fold_batchnorm(model)
    insert_fake_quant(model, TYPES[0])
    stem = model.get_submodule("backbone.stem.0")
    assert isinstance(stem, FakeQuantLayer)
    handle = freeze_input_ranges_after(model, 2)
    model.train()
    model(images(4, seed=1))
    model(images(4, seed=2))
    frozen = stem.input_fq.scale.clone()
    stem.layer.weight.data *= 0.5  # smaller weights: a running maximum would keep the old range
    model(images(4, seed=3) // 4)  # a much narrower input range, which a live observer would follow
    handle.remove()
    assert torch.equal(stem.input_fq.scale, frozen)
    assert not stem.input_fq.observer_enabled[0] and stem.weight_fq.observer_enabled[0]
    torch.testing.assert_close(stem.weight_fq.scale, stem.layer.weight.abs().flatten(1).amax(1) / 127)


def test_step_leaves_a_plain_folded_float_model(tmp_path: Path, mini_archive: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # A learning rate this small keeps the weights in place, so the result must equal the folded input.
    monkeypatch.setattr("build.pipeline.RECIPE_TRAIN_IMAGES", 1)  # the recipe's steps as given, not scaled down
    ctx = context(tmp_path, mini_archive)
    parent = tiny_model()
    state = VariantState("qat", "parent", unused(Tolerance), tmp_path, model=parent)
    step = QuantAwareFinetune(QatConfig(steps=3, lr=1e-7, batch_size=32))
    state = state.advanced(step.name, step.run(state, ctx))
    assert state.model is not None
    assert not any(isinstance(m, (FakeQuantLayer, FakeQuantize, nn.BatchNorm2d)) for m in state.model.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in parent.modules()), "the parent's model is left alone"
    folded = copy.deepcopy(tiny_model())
    fold_batchnorm(folded)
    x = images(16)
    torch.testing.assert_close(state.model(x), folded(x), atol=1e-3, rtol=1e-3)
    qat = state.metrics["qat"]
    assert (qat["steps"], qat["batchnorm_folded"], qat["layers_fake_quantized"]) == (3, 6, 7)
    assert qat["input_ranges_frozen_after_step"] == 2 and np.isfinite(qat["final_loss"])


def test_qat_model_exports_to_qdq_onnx_that_runs(tmp_path: Path, mini_archive: Path) -> None:
    ctx = context(tmp_path, mini_archive)
    state = VariantState("qat", "parent", unused(Tolerance), tmp_path, model=tiny_model())
    for step in (QuantAwareFinetune(QatConfig(steps=4, batch_size=32)), ExportOnnx(), OptimizeGraph(),
                 QuantizeStatic(Int8Config(calibration_images=64, check_images=100))):
        step.check(ctx)
        state = state.advanced(step.name, step.run(state, ctx))
    assert state.metrics["quantization"]["format"] == "QDQ"
    graph = onnx.load(str(state.onnx_path)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 0
    # ONNX Runtime picks the weight scales QAT trained for: per output channel, max-abs over 127 (or 64).
    scales = [onnx.numpy_helper.to_array(i) for i in graph.initializer if i.name.endswith("_scale")]
    levels = 64 if int8_types(detect()).reduce_range else 127
    assert state.model is not None and state.reference_logits is not None
    for name, m in state.model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            expected = m.weight.detach().abs().flatten(1).amax(1).numpy() / levels
            assert any(s.shape == expected.shape and np.allclose(s, expected, rtol=1e-5) for s in scales), name
    session = ort.InferenceSession(str(state.onnx_path), providers=["CPUExecutionProvider"])
    x = ctx.verify_set
    logits = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert logits.shape == (len(x), 10) and np.isfinite(logits).all()
    agreement = (logits.argmax(1) == state.reference_logits.argmax(1)).mean()
    assert agreement >= 0.8, "the INT8 model follows the QAT float model it was quantized from"


def test_distilled_int8_qat_variant_builds_verifies_and_publishes(tmp_path: Path, mini_archive: Path,
                                                                  teacher: Path, micro_student: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("build.pipeline.RECIPE_TRAIN_IMAGES", 1)  # the recipe's steps, capped at 2, not scaled down
    mini = load_dataset(str(mini_archive), CIFAR)
    options = BuildOptions(verify_images=100, measure_speed=False, threads=1, max_train_steps=2, train_runs=True,
                           configs=(Int8Config(calibration_images=100, check_images=100),
                                    DistillConfig(student=micro_student)))
    assert build_order(["distilled_int8_qat"]) == [("distilled", False), ("distilled_int8_qat", True)]
    repo = tmp_path / "repo"
    result = build_one(dataclasses.replace(mini, val=mini.test), teacher, repo, ["distilled_int8_qat"],
                       ["onnxruntime"], options, log=lambda _: None)
    assert result.rejected == {}
    entry = models_of(repo)["tiny_distilled_int8_qat"]
    assert entry["recipe"] == ["from:distilled", "qat_finetune", "export_onnx", "optimize_graph",
                               "quantize_static_int8", "publish:onnxruntime"]
    assert {"distillation", "qat", "quantization"} <= set(entry["metrics"]) and entry["metrics"]["qat"]["steps"] == 2
    assert entry["verification"]["top1_agreement"] >= 0.95


def card_for_model() -> ModelCard:
    return ModelCard("tiny", "builtin:tiny", CIFAR, PRE.mean, PRE.std)


def test_a_card_that_ships_no_runs_fine_tunes_within_the_budget(tmp_path: Path, mini_archive: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("build.pipeline.RECIPE_TRAIN_IMAGES", 1)  # the recipe's steps as given, not scaled down
    ctx = context(tmp_path, mini_archive)  # no weights folder: a user's card
    ctx = dataclasses.replace(ctx, options=dataclasses.replace(ctx.options, train_budget_tmacs=1e-9))
    state = VariantState("qat", "parent", unused(Tolerance), tmp_path, model=tiny_model())
    step = QuantAwareFinetune(QatConfig(steps=3, lr=1e-7, batch_size=32))
    qat = step.run(state, ctx).metrics["qat"]
    assert qat["steps"] == 1 and qat["train_budget"] == {"tmacs": 1e-9, "recipe_steps": 3, "steps": 1}
