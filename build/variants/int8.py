"""int8: post-training static quantization of fp32 to QDQ ONNX (the format TensorRT also reads)."""

from build.export import Tolerance
from build.steps.quantize import Int8Config, QuantizeStatic
from build.steps.source import FromVariant
from build.variants.base import Variant

INT8 = Variant(
    name="int8",
    parent="fp32",
    steps=lambda: [FromVariant("fp32"), QuantizeStatic(Int8Config())],
    tolerance=Tolerance(max_abs_diff=None, min_top1_agreement=0.97),
    description="static INT8, QDQ, per-channel weights, calibrated on the validation split",
)
