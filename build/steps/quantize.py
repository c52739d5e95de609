"""Post-training static INT8 quantization to QDQ ONNX, calibrated on the validation split.

When INT8 costs more validation accuracy than the budget allows, the most sensitive layers go back
to FP32 (mixed precision). Sensitivity is each layer's own quantization noise, as the
signal-to-quantization-noise ratio that ONNX Runtime's QDQ debugger measures at its output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, quantize_static
from onnxruntime.quantization import qdq_loss_debug as qdq_debug
from onnxruntime.quantization.shape_inference import quant_pre_process

from build.errors import ZooError
from build.hardware import Int8Types, int8_types
from build.measure import onnx_accuracy
from build.pipeline import BuildContext, StepResult, TechniqueStep, VariantState

METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}
MIN_CALIBRATION_IMAGES = 64
QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")


@dataclass(frozen=True)
class Int8Config:
    method: str = "minmax"
    calibration_images: int = 512  # at most: a smaller validation split calibrates on all of its images
    per_channel: bool = True
    percentile: float = 99.999
    accuracy_budget: float = 0.005  # validation top-1 INT8 may lose before layers fall back to FP32
    check_images: int = 2000  # validation images that measure that loss (at most: the split's size)
    max_fallback_layers: int = 8

    def validate(self, available: int) -> None:
        if self.method not in METHODS:
            raise ZooError(f"unknown calibration method '{self.method}'; choose one of {sorted(METHODS)}")
        if self.calibration_images < MIN_CALIBRATION_IMAGES:
            raise ZooError(f"calibration needs at least {MIN_CALIBRATION_IMAGES} images, got {self.calibration_images}")
        if available < MIN_CALIBRATION_IMAGES:
            raise ZooError(f"INT8 calibration needs at least {MIN_CALIBRATION_IMAGES} validation images, and the "
                           f"validation split (a tenth of the training images) has {available}: give the card's data "
                           f"at least {MIN_CALIBRATION_IMAGES * 10} training images, or leave out the int8 variants "
                           "(--variants fp32,fp16,...)")

    def images(self, available: int) -> tuple[int, int, str]:
        """Calibration and check images for a validation split of `available` images, and a note when they shrank."""
        calibration, check = min(self.calibration_images, available), min(self.check_images, available)
        shrunk = calibration < self.calibration_images or check < self.check_images
        note = (f"calibrated on {calibration} and checked on {check} validation images (the split's size; "
                f"{self.calibration_images} and {self.check_images} asked)") if shrunk else ""
        return calibration, check, note
        if self.accuracy_budget < 0 or self.max_fallback_layers < 0:
            raise ZooError(f"accuracy_budget and max_fallback_layers must not be negative; got {self}")


class BatchReader(CalibrationDataReader):
    def __init__(self, input_name: str, images: np.ndarray, batch_size: int = 32) -> None:
        self.batches = iter([{input_name: images[i:i + batch_size]} for i in range(0, len(images), batch_size)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def sensitivity(float_path: Path, qdq_path: Path, input_name: str, images: np.ndarray, workdir: Path) -> list[str]:
    """Quantized layers, noisiest first: the lowest SQNR at the tensor each one's output is quantized at."""
    augmented = []
    for path in (float_path, qdq_path):
        out = workdir / f"{path.stem}.debug.onnx"
        qdq_debug.modify_model_output_intermediate_tensors(str(path), str(out))
        augmented.append(qdq_debug.collect_activations(str(out), BatchReader(input_name, images)))
    errors = qdq_debug.compute_activation_error(qdq_debug.create_activation_matching(augmented[1], augmented[0]))
    graph = onnx.load(str(float_path)).graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    scores = {}
    for node in graph.node:
        if node.op_type not in QUANTIZED_OPS:
            continue
        # A Conv followed by Relu is quantized after the Relu: look at both tensors.
        tensors = [node.output[0]] + [c.output[0] for c in consumers.get(node.output[0], []) if c.op_type == "Relu"]
        snr = [errors[t]["qdq_err"] for t in tensors if t in errors]
        if snr:
            scores[node.name] = min(snr)
    return sorted(scores, key=lambda name: scores[name])


def doubling(n: int) -> list[int]:
    """1, 2, 4, ... then n: how many of the most sensitive layers to try in FP32, fewest first."""
    counts = [1 << i for i in range(n.bit_length()) if 1 << i < n]
    return counts + [n] if n else []


def quantize(prepared: Path, out: Path, input_name: str, calibration: np.ndarray, cfg: Int8Config,
             types: Int8Types, exclude: list[str]) -> None:
    quantize_static(
        str(prepared), str(out), BatchReader(input_name, calibration), quant_format=QuantFormat.QDQ,
        per_channel=cfg.per_channel, reduce_range=types.reduce_range, activation_type=types.activation,
        weight_type=types.weight, calibrate_method=METHODS[cfg.method], nodes_to_exclude=exclude,
        extra_options={"CalibPercentile": cfg.percentile, "ActivationSymmetric": types.symmetric_activations,
                       "QuantizeBias": types.quantize_bias},
    )


@dataclass(frozen=True)
class QuantizeStatic(TechniqueStep):
    config: Int8Config = field(default_factory=Int8Config)
    name = "quantize_static_int8"

    def check(self, ctx: BuildContext) -> None:
        self.config.validate(len(ctx.data.val))

    def run(self, state: VariantState, ctx: BuildContext) -> StepResult:
        assert state.onnx_path is not None
        cfg = self.config
        prepared = state.workdir / "prepared.onnx"
        quant_pre_process(str(state.onnx_path), str(prepared))
        n_calibration, n_check, note = cfg.images(len(ctx.data.val))
        calibration = ctx.data.val.images[:n_calibration]
        out = state.workdir / "model.onnx"
        types, name = int8_types(ctx.hardware, [r.name for r in ctx.runtimes]), ctx.io.input
        quantize(prepared, out, name, calibration, cfg, types, exclude=[])
        check = ctx.data.val.head(n_check)
        float_acc = onnx_accuracy(prepared, check, ctx.options.threads)
        int8_acc = onnx_accuracy(out, check, ctx.options.threads)
        fallback: list[str] = []
        if float_acc - int8_acc > cfg.accuracy_budget and cfg.max_fallback_layers:
            ranked = sensitivity(prepared, out, name, calibration[:64], state.workdir)[: cfg.max_fallback_layers]
            for count in doubling(len(ranked)):
                fallback = ranked[:count]
                quantize(prepared, out, name, calibration, cfg, types, exclude=fallback)
                int8_acc = onnx_accuracy(out, check, ctx.options.threads)
                if float_acc - int8_acc <= cfg.accuracy_budget:
                    break
        drop = float_acc - int8_acc
        return StepResult.ok({"quantization": {
            "format": "QDQ", "method": cfg.method, "calibration_images": n_calibration,
            "per_channel": cfg.per_channel, "activations": types.activation.name, "weights": types.weight.name,
            "reduce_range": types.reduce_range, "why": types.reason,
            "validation": {"images": len(check), "float_top1": float_acc, "int8_top1": int8_acc,
                           "drop": round(drop, 4), "budget": cfg.accuracy_budget,
                           "within_budget": drop <= cfg.accuracy_budget},
            "fp32_fallback_layers": fallback,
        }}, note, onnx_path=out)
