"""sparse: unstructured magnitude pruning to a target sparsity. Smaller compressed, not faster."""

from build.hardware import Hardware
from build.steps.export import ExportOnnx
from build.steps.graph import OptimizeGraph
from build.steps.sparsify import MagnitudeSparsify
from build.steps.teacher import FromTeacher
from build.variants.base import Variant


def dense_note(hw: Hardware) -> str:
    return "unstructured zeros: dense runtimes do the same work, so only the compressed size shrinks"


SPARSE = Variant(
    name="sparse",
    parent="teacher",
    steps=(FromTeacher(), MagnitudeSparsify(), ExportOnnx(), OptimizeGraph()),
    description="80% of weights zeroed by global magnitude, fine-tuned with the zeros held",
    hardware_note=dense_note,
    transforms_source=True,
    optional=dense_note,  # 2.5 minutes of the main job (three teacher-sized models) for no faster model
)
