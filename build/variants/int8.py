"""int8: post-training static quantization to QDQ ONNX (the format TensorRT also reads)."""

from build.hardware import Hardware
from build.steps.quantize import QuantizeStatic
from build.steps.source import FromVariant
from build.variants.base import Variant
from build.verification import QUANTIZED


def int8_note(hw: Hardware) -> str | None:
    if hw.machine in ("x86_64", "AMD64") and not hw.vnni:
        return "no VNNI on this CPU: INT8 convolutions lose most of their speed-up"
    return None


def int8_of(parent: str, name: str) -> Variant:
    return Variant(
        name=name,
        parent=parent,
        steps=(FromVariant(parent), QuantizeStatic()),
        tolerance=QUANTIZED,
        description=f"{parent}, static INT8 (QDQ, per-channel weights, calibrated on the validation split)",
        hardware_note=int8_note,
        precision="int8",
    )


INT8 = int8_of("fp32", "int8")
