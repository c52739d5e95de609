"""pruned: structured channel pruning of the teacher, fine-tuned with soft targets after each step."""

from build.steps.export import ExportOnnx
from build.steps.graph import OptimizeGraph
from build.steps.prune import StructuredPrune
from build.steps.source import FromVariant
from build.steps.teacher import FromTeacher
from build.variants.base import Variant

PRUNED = Variant(
    name="pruned",
    parent="teacher",
    steps=(FromTeacher(), StructuredPrune(), ExportOnnx(), OptimizeGraph()),
    description="structured channel pruning (Torch-Pruning), iterative, fine-tuned",
    transforms_source=True,
)

PRUNED_DISTILLED = Variant(
    name="pruned_distilled",
    parent="distilled",
    steps=(FromVariant("distilled"), StructuredPrune(), ExportOnnx(), OptimizeGraph()),
    description="the distilled student, channel-pruned and fine-tuned with the teacher's soft targets",
)
