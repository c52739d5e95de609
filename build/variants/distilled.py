"""distilled students: small networks trained on the teacher's softened logits, one variant per student family.

`distilled` is the default student, the one the int8, QAT and pruned combinations start from; the others are the
rest of the ladder, published so that a user sees what each size of student costs and keeps.
"""

from build.steps.distill import Distill, DistillConfig
from build.steps.export import ExportOnnx
from build.steps.graph import OptimizeGraph
from build.variants.base import Variant

DISTILLED = Variant(
    name="distilled",
    parent="teacher",
    # 100 epochs: chosen on validation over 30 and 50 (docs/training.md), still rising at 50
    steps=(Distill(DistillConfig(epochs=100.0)), ExportOnnx(), OptimizeGraph()),
    description="knowledge distillation into the wide, shallow student (widenet: airbench94's network for CPUs; "
                "KL on softened logits + cross-entropy); 100 epochs",
)

DISTILLED_RESNET20 = Variant(
    name="distilled_resnet20",
    parent="teacher",
    steps=(Distill(DistillConfig(student="resnet20", epochs=60.0)), ExportOnnx(), OptimizeGraph()),
    description="knowledge distillation into a CIFAR ResNet-20 (16-32-64 channels), the smallest student; 60 epochs",
    ladder=True,
)

DISTILLED_MOBILENET = Variant(
    name="distilled_mobilenetv2",
    parent="teacher",
    # 12 epochs: what 2 CPU cores distil into it in half an hour (27 min; its depthwise convolutions train slowly)
    steps=(Distill(DistillConfig(student="mobilenetv2", epochs=12.0)), ExportOnnx(), OptimizeGraph()),
    description="knowledge distillation into a MobileNetV2 student (width 0.5: depthwise-separable inverted "
                "residuals), the second student family; 12 epochs",
    ladder=True,
)
