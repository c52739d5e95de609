"""Quantization-aware training (QAT): fine-tune under simulated INT8, then export QDQ like post-training INT8.

BatchNorm is folded into the convolutions first, so training sees the very weights that get quantized.
Every Conv2d and Linear then computes with fake-quantized weights (per output channel, symmetric, with
the bits ONNX Runtime's quantizer uses on this CPU: see `build.hardware.int8_types`) and fake-quantized
inputs (per tensor, affine, ranges from moving-average min/max observers that freeze for the last part
of training). Gradients pass the rounding straight through; the loss is knowledge distillation on the
teacher's soft targets, as in every other fine-tuning here.

The fake quantizers are then removed: the variant goes on as a float model with QAT-adapted weights,
and the usual ExportOnnx, OptimizeGraph and QuantizeStatic steps turn it into QDQ ONNX laid out (and
running) exactly like the post-training int8 variant. ONNX Runtime derives the weight scales as the fake
quantizers did (per-channel max-abs), so the INT8 weights are the ones QAT trained for. Activation
ranges are not carried over: ONNX Runtime's min-max calibrator re-measures them on the validation
split. That is the statistic the QAT observers track, though over the calibration images rather than
as a moving average over training batches, so the ranges are close but not identical.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import torch
from onnxruntime.quantization import QuantType
from torch import fx, nn
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.utils.hooks import RemovableHandle

from build.complexity import macs_and_params
from build.errors import ZooError
from build.fit import FitConfig, fit
from build.hardware import Int8Types, int8_types
from build.models import Classifier
from build.pipeline import BuildContext, StepResult, TechniqueStep, VariantState
from build.shipped import model_sha256, origin_note, run_key

# ONNX Runtime's integer ranges: asymmetric activations use the whole type; symmetric INT8 weights
# use -127..127, and -64..64 with reduce_range (7-bit weights). Symmetric INT8 activations (ActivationSymmetric,
# TensorRT's encoding) use -127..127 with zero point 0, as ONNX_INT_TYPE_SYMMETRIC_RANGE says.
ACTIVATION_RANGES = {QuantType.QUInt8: (torch.quint8, 0, 255), QuantType.QInt8: (torch.qint8, -128, 127)}
SYMMETRIC_ACTIVATIONS = (torch.qint8, -127, 127)
WEIGHT_RANGES = {False: (-127, 127), True: (-64, 64)}


@dataclass(frozen=True)
class QatConfig:
    steps: int = 300  # 0.85 epoch at batch 128: about 2.5 minutes for ResNet-20 on 2 CPU cores
    # Small: the network is trained already, and with BatchNorm folded its weights lose their scale
    # invariance. At 0.01 the full build's QAT student fell to 12.7% top-1 (README: Measured).
    lr: float = 0.001
    batch_size: int = 128
    temperature: float = 4.0
    alpha: float = 0.9
    freeze_observers_after: float = 0.8  # fraction of the steps after which activation ranges stop moving
    seed: int = 0
    shipped: bool = True  # load the network `invoke build --ship` shipped for this very run, when there is one

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ZooError(f"QAT needs steps >= 1 and batch_size >= 1; got steps={self.steps}, "
                           f"batch_size={self.batch_size}")
        if not 0 < self.lr <= 1:
            raise ZooError(f"QAT learning rate must lie in (0, 1], got {self.lr}")
        if not 0 <= self.alpha <= 1 or self.temperature <= 0:
            raise ZooError(f"QAT distillation needs 0 <= alpha <= 1 and temperature > 0; got alpha={self.alpha}, "
                           f"temperature={self.temperature}")
        if not 0 < self.freeze_observers_after <= 1:
            raise ZooError(f"freeze_observers_after is a fraction of the steps in (0, 1], "
                           f"got {self.freeze_observers_after}")


def check_types(types: Int8Types) -> None:
    if types.weight != QuantType.QInt8 or types.activation not in ACTIVATION_RANGES:
        raise ZooError(f"QAT simulates signed symmetric INT8 weights and 8-bit activations; this machine's INT8 "
                       f"settings are {types.activation.name} activations, {types.weight.name} weights")


def weight_fake_quant(types: Int8Types) -> FakeQuantize:
    # Averaging constant 1: the range of the weights as they are now, as ONNX Runtime will read the final ones.
    low, high = WEIGHT_RANGES[types.reduce_range]
    return FakeQuantize(observer=MovingAveragePerChannelMinMaxObserver, averaging_constant=1.0, quant_min=low,
                        quant_max=high, dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0)


def input_fake_quant(types: Int8Types) -> FakeQuantize:
    """The activations as the export quantizes them: affine over the whole type, or, where the export is symmetric
    (TensorRT's encoding), symmetric around zero point 0, so that training sees the rounding the engine will do."""
    if types.symmetric_activations:
        dtype, low, high = SYMMETRIC_ACTIVATIONS
        scheme = torch.per_tensor_symmetric
    else:
        dtype, low, high = ACTIVATION_RANGES[types.activation]
        scheme = torch.per_tensor_affine
    return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=low, quant_max=high, dtype=dtype,
                        qscheme=scheme)


class FakeQuantLayer(nn.Module):
    """A Conv2d or Linear that computes with fake-quantized weights and inputs."""

    def __init__(self, layer: nn.Conv2d | nn.Linear, types: Int8Types) -> None:
        super().__init__()
        self.layer = layer
        self.weight_fq = weight_fake_quant(types)
        self.input_fq = input_fake_quant(types)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight_fq(self.layer.weight)
        x = self.input_fq(x.float())  # ranges and rounding in FP32, also under bf16 autocast
        if isinstance(self.layer, nn.Conv2d):
            return self.layer._conv_forward(x, weight, self.layer.bias)
        return F.linear(x, weight, self.layer.bias)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold each BatchNorm2d that only a Conv2d feeds into that conv (model in eval mode); return how many."""
    modules = dict(model.named_modules())
    pairs = []
    for node in fx.symbolic_trace(model).graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        source = node.args[0]
        if (isinstance(source, fx.Node) and source.op == "call_module"
                and isinstance(modules[source.target], nn.Conv2d) and len(source.users) == 1):
            assert isinstance(source.target, str) and isinstance(node.target, str)  # call_module: a module's path
            pairs.append((source.target, node.target))
    for conv, bn in pairs:
        model.set_submodule(conv, fuse_conv_bn_eval(modules[conv], modules[bn]))
        model.set_submodule(bn, nn.Identity())
    return len(pairs)


def insert_fake_quant(model: nn.Module, types: Int8Types) -> list[str]:
    """Wrap every Conv2d and Linear in a FakeQuantLayer; return their names."""
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for name, layer in layers:
        model.set_submodule(name, FakeQuantLayer(layer, types))
    return [name for name, _ in layers]


def strip_fake_quant(model: nn.Module) -> None:
    """Put every wrapped layer back, keeping its trained float weights."""
    for name, m in list(model.named_modules()):
        if isinstance(m, FakeQuantLayer):
            model.set_submodule(name, m.layer)


def freeze_input_ranges_after(model: nn.Module, steps: int) -> RemovableHandle:
    """Stop the input observers after `steps` training forward passes (fit runs one per step).

    Weight observers keep following the weights, as ONNX Runtime reads the final ones.
    """
    seen = 0

    def hook(module: nn.Module, args: tuple) -> None:
        nonlocal seen
        if not module.training:
            return
        seen += 1
        if seen == steps + 1:
            for m in module.modules():
                if isinstance(m, FakeQuantLayer):
                    m.input_fq.disable_observer()

    return model.register_forward_pre_hook(hook)


@dataclass(frozen=True)
class QuantAwareFinetune(TechniqueStep):
    config: QatConfig = field(default_factory=QatConfig)
    name = "qat_finetune"

    def check(self, ctx: BuildContext) -> None:
        self.config.validate()
        check_types(int8_types(ctx.hardware, [r.name for r in ctx.runtimes]))

    def run(self, state: VariantState, ctx: BuildContext) -> StepResult:
        cfg = self.config
        assert state.model is not None
        source, types = state.model, int8_types(ctx.hardware, [r.name for r in ctx.runtimes])
        # counted on the source: its folded, fake-quantized copy does the same convolutions
        run = ctx.run_steps([ctx.options.train_steps(cfg.steps, len(ctx.train_set))], cfg.batch_size,
                            lambda: macs_and_params(source)[0])
        steps = run.steps[0]
        source_sha = model_sha256(source)
        # the INT8 types follow the CPU (7-bit weights without VNNI), so they are part of the run
        bits = f"{types.activation.name}/{types.weight.name}/reduce_range={types.reduce_range}"
        if types.symmetric_activations:  # suffixed only then, so the keys of the runs shipped before stay valid
            bits += "/symmetric"
        key = run_key(cfg, source=source_sha, teacher=ctx.teacher.sha256, classes=list(ctx.data.classes),
                      train_images=len(ctx.train_set), steps=steps, int8_types=bits)
        model, record, origin = ctx.shipped_or_trained(
            state.name, key, cfg.shipped, lambda: quant_aware(source, cfg, types, steps, ctx, state.name),
            {"batchnorm_folded": True, "source_sha256": source_sha, "steps": steps, "int8_types": bits,
             "config": asdict(cfg)})
        return StepResult.ok({"qat": {**record["qat"], "run_key": key, **run.record(), **origin}},
                             note=origin_note(origin), model=model)


def quant_aware(source: Classifier, cfg: QatConfig, types: Int8Types, steps: int, ctx: BuildContext,
                desc: str) -> tuple[Classifier, dict]:
    """A copy of `source` with its batch norms folded, fine-tuned under simulated INT8, with its fake quantizers
    removed again, and the run's record."""
    model = copy.deepcopy(source).eval()  # the parent's model is shared, not ours to change
    folded = fold_batchnorm(model)
    wrapped = insert_fake_quant(model, types)
    observed = max(1, round(cfg.freeze_observers_after * steps))
    fit_cfg = FitConfig(steps=steps, lr=cfg.lr, batch_size=cfg.batch_size, temperature=cfg.temperature,
                        alpha=cfg.alpha, seed=cfg.seed)
    handle = freeze_input_ranges_after(model, observed)
    try:
        loss = fit(model, ctx.train_set, ctx.soft_targets(), fit_cfg, f"{desc}: quantization-aware")
    finally:
        handle.remove()
    strip_fake_quant(model)
    return model, {"final_loss": loss, "qat": {
        "steps": steps, "lr": cfg.lr, "input_ranges_frozen_after_step": observed, "final_loss": round(loss, 4),
        "batchnorm_folded": folded, "layers_fake_quantized": len(wrapped),
        "weights": f"{types.weight.name} per-channel symmetric" + (", 7-bit" if types.reduce_range else ""),
        "inputs": f"{types.activation.name} per-tensor {'symmetric' if types.symmetric_activations else 'affine'}, "
                  "moving-average min/max",
    }}
