"""Post-training static INT8 quantization to QDQ ONNX, calibrated on the validation split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from build.errors import ZooError
from build.hardware import detect, int8_types
from build.pipeline import BuildContext, Step, VariantState

METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}
MIN_CALIBRATION_IMAGES = 64


@dataclass(frozen=True)
class Int8Config:
    method: str = "minmax"
    calibration_images: int = 512
    per_channel: bool = True
    percentile: float = 99.999

    def validate(self, available: int) -> None:
        if self.method not in METHODS:
            raise ZooError(f"unknown calibration method '{self.method}'; choose one of {sorted(METHODS)}")
        if not MIN_CALIBRATION_IMAGES <= self.calibration_images <= available:
            raise ZooError(f"calibration needs {MIN_CALIBRATION_IMAGES} to {available} validation images "
                           f"(the validation split's size), got {self.calibration_images}")


class BatchReader(CalibrationDataReader):
    def __init__(self, input_name: str, images: np.ndarray, batch_size: int = 32) -> None:
        self.batches = iter([{input_name: images[i:i + batch_size]} for i in range(0, len(images), batch_size)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


class QuantizeStatic(Step):
    name = "quantize_static_int8"

    def __init__(self, cfg: Int8Config) -> None:
        self.cfg = cfg

    def check(self, ctx: BuildContext) -> None:
        self.cfg.validate(len(ctx.data.val))

    def run(self, state: VariantState, ctx: BuildContext) -> None:
        assert state.onnx_path is not None
        types = int8_types(detect())
        prepared = state.workdir / "prepared.onnx"
        quant_pre_process(str(state.onnx_path), str(prepared))
        out = state.workdir / "model.onnx"
        quantize_static(
            str(prepared), str(out), BatchReader(ctx.io.input_name, ctx.data.val.images[: self.cfg.calibration_images]),
            quant_format=QuantFormat.QDQ, per_channel=self.cfg.per_channel, reduce_range=types.reduce_range,
            activation_type=types.activation, weight_type=types.weight, calibrate_method=METHODS[self.cfg.method],
            extra_options={"CalibPercentile": self.cfg.percentile},
        )
        state.onnx_path = out
        state.metrics["quantization"] = {
            "format": "QDQ", "method": self.cfg.method, "calibration_images": self.cfg.calibration_images,
            "per_channel": self.cfg.per_channel, "activations": types.activation.name,
            "weights": types.weight.name, "reduce_range": types.reduce_range, "why": types.reason,
        }
