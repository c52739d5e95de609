"""pruned: structured channel pruning of the teacher, fine-tuned with soft targets after each step."""

from build.steps.export import ExportOnnx
from build.steps.graph import OptimizeGraph
from build.steps.prune import PruneConfig, StructuredPrune
from build.steps.source import FromVariant
from build.steps.teacher import FromTeacher
from build.variants.base import Variant

PRUNED = Variant(
    name="pruned",
    parent="teacher",
    # About one epoch of fine-tuning after each pruning step and twenty after the last: the defaults' two epochs in
    # all lost 3.1 points of the 91.70% teacher, twelve after the last 1.0 (docs/training.md: each run's curve).
    steps=(FromTeacher(), StructuredPrune(PruneConfig(finetune_steps=350, final_steps=7020)), ExportOnnx(),
           OptimizeGraph()),
    description="structured channel pruning (Torch-Pruning), iterative, fine-tuned for 22 epochs with soft targets",
    transforms_source=True,
)

PRUNED_DISTILLED = Variant(
    name="pruned_distilled",
    parent="distilled",
    steps=(FromVariant("distilled"), StructuredPrune(), ExportOnnx(), OptimizeGraph()),
    description="the distilled student, channel-pruned and fine-tuned with the teacher's soft targets",
)
