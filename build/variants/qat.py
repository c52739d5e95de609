"""<parent>_int8_qat: quantization-aware fine-tuning, then the same static INT8 QDQ export as the int8 variants.

The registry builds it from the distilled ResNet-20 student: a QAT step there costs about a sixth of a
ResNet18 step on 2 CPU cores (0.45 s against 2.8 s at batch 128), so the default 300 steps are most of an
epoch for about 2.5 minutes, in which ResNet18 would get about 50 steps (a seventh of an epoch).
`qat_of("fp32", "int8_qat")` is the ResNet18 counterpart of `int8`, for a machine with time to spare.
"""

from build.steps.export import ExportOnnx
from build.steps.graph import OptimizeGraph
from build.steps.qat import QuantAwareFinetune
from build.steps.quantize import QuantizeStatic
from build.steps.source import FromVariant
from build.variants.base import Variant
from build.variants.int8 import int8_note
from build.verification import QUANTIZED


def qat_of(parent: str, name: str) -> Variant:
    return Variant(
        name=name,
        parent=parent,
        steps=(FromVariant(parent), QuantAwareFinetune(), ExportOnnx(), OptimizeGraph(), QuantizeStatic()),
        tolerance=QUANTIZED,
        description=f"{parent}, BatchNorm folded and quantization-aware fine-tuned (fake-quantized weights and "
                    "inputs), then static INT8 (QDQ, per-channel weights, calibrated on the validation split)",
        hardware_note=int8_note,
        precision="int8",
    )
