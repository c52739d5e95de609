"""fp32: the teacher as it is, exported to ONNX."""

from build.steps.export import ExportOnnx
from build.steps.teacher import FromTeacher
from build.variants.base import Variant

FP32 = Variant(
    name="fp32",
    parent="teacher",
    steps=lambda: [FromTeacher(), ExportOnnx()],
    description="the FP32 teacher, exported to ONNX (opset 18, BatchNorm folded into Conv)",
)
