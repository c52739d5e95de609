"""distilled: a small student network trained on the teacher's softened logits."""

from build.steps.distill import Distill
from build.steps.export import ExportOnnx
from build.steps.graph import OptimizeGraph
from build.variants.base import Variant

DISTILLED = Variant(
    name="distilled",
    parent="teacher",
    steps=lambda: [Distill(), ExportOnnx(), OptimizeGraph()],
    description="knowledge distillation into a CIFAR ResNet-20 student (KL on softened logits + cross-entropy)",
)
