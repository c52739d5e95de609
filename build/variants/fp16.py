"""fp16: FP16 ONNX with FP32 inputs and outputs. For GPU runtimes; ORT's CPU provider casts back."""

from build.hardware import Hardware
from build.steps.fp16 import ConvertFp16
from build.steps.source import FromVariant
from build.variants.base import Variant
from build.verification import Tolerance


def fp16_note(hw: Hardware) -> str | None:
    if hw.gpu is None:
        return "no GPU: ONNX Runtime's CPU provider computes FP16 models by casting back to FP32"
    return None


FP16 = Variant(
    name="fp16",
    parent="fp32",
    steps=(FromVariant("fp32"), ConvertFp16()),
    tolerance=Tolerance(max_rel_diff=0.05, min_top1_agreement=0.995),
    description="FP16 weights and activations, FP32 inputs and outputs",
    hardware_note=fp16_note,
    optional=fp16_note,
    precision="fp16",  # on a CPU it is a file for GPU deployments, slower here than fp32: built when asked for
)
