"""The variant registry: a variant is a named recipe of steps, with its parent and its tolerance.

Adding a variant is one module defining a `Variant` plus one line in `VARIANTS`.
"""

from __future__ import annotations

from build.hardware import Hardware
from build.steps.distill import Distill, DistillConfig
from build.variants.base import Variant
from build.variants.distilled import DISTILLED, DISTILLED_MOBILENET, DISTILLED_RESNET20
from build.variants.fp16 import FP16
from build.variants.fp32 import FP32
from build.variants.int8 import INT8, int8_of
from build.variants.pruned import PRUNED, PRUNED_DISTILLED
from build.variants.qat import qat_of
from build.variants.sparse import SPARSE
from build.variants.targets import PARITY_TARGETS, REFERENCE_VARIANTS, ParityTarget, Target, targets

VARIANTS: dict[str, Variant] = {v.name: v for v in (
    FP32, INT8, FP16, PRUNED, SPARSE, DISTILLED, DISTILLED_RESNET20, DISTILLED_MOBILENET, PRUNED_DISTILLED,
    int8_of("pruned", "pruned_int8"),
    int8_of("distilled", "distilled_int8"),
    int8_of("distilled_mobilenetv2", "distilled_mobilenetv2_int8"),
    int8_of("pruned_distilled", "pruned_distilled_int8"),
    qat_of("distilled", "distilled_int8_qat"),
)}


def zoo_targets() -> list[Target]:
    """The report's targets, the student ladder's from this registry."""
    return targets(tuple(students()))


def optional_variants(hw: Hardware) -> dict[str, str]:
    """The variants the default set leaves out on this hardware, and why."""
    return {n: why for n, v in VARIANTS.items() if (why := v.optional(hw))}


def default_variants(hw: Hardware) -> list[str]:
    """The main job's variants: every registered one this hardware does not make optional."""
    return [n for n in VARIANTS if n not in optional_variants(hw)]


def lineage(name: str) -> list[str]:
    """A variant and its ancestors, up to the teacher (not included)."""
    chain = [name]
    while VARIANTS[chain[-1]].parent in VARIANTS:
        chain.append(VARIANTS[chain[-1]].parent)
    return chain


def students() -> dict[str, DistillConfig]:
    """The student ladder: each variant distilled from the teacher, with the settings its step distils with."""
    return {v.name: step.config for v in VARIANTS.values() for step in v.steps if isinstance(step, Distill)}


def distill_config(student: str) -> DistillConfig:
    """The settings the registry's variant for this student family distils with (its step's config)."""
    return next(c for c in students().values() if c.student == student)


__all__ = ["PARITY_TARGETS", "REFERENCE_VARIANTS", "VARIANTS", "ParityTarget", "Target", "Variant", "default_variants",
           "distill_config", "lineage", "optional_variants", "students", "zoo_targets"]
