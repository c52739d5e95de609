"""fp32: the teacher as it is, exported to ONNX and graph-optimized."""

from build.steps.export import ExportOnnx
from build.steps.graph import OptimizeGraph
from build.steps.teacher import FromTeacher
from build.variants.base import Variant

FP32 = Variant(
    name="fp32",
    parent="teacher",
    steps=(FromTeacher(), ExportOnnx(), OptimizeGraph()),
    description="the FP32 teacher: ONNX opset 18, BatchNorm folded, graph-optimized",
    baseline="fp32",  # itself: every other variant's speed-up and drop is measured against its ORT model
)
