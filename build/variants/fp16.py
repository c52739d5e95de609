"""fp16: FP16 ONNX with FP32 inputs and outputs. For GPU runtimes; ORT's CPU provider casts back."""

from build.export import Tolerance
from build.steps.fp16 import ConvertFp16
from build.steps.source import FromVariant
from build.variants.base import Variant

FP16 = Variant(
    name="fp16",
    parent="fp32",
    steps=lambda: [FromVariant("fp32"), ConvertFp16()],
    tolerance=Tolerance(max_abs_diff=0.05, min_top1_agreement=0.995),
    description="FP16 weights and activations, FP32 inputs and outputs",
)
