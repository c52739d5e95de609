"""The zoo's targets, declared with the variants they judge: the report checks them, naming no variant itself."""

from __future__ import annotations

from dataclasses import dataclass

from build.variants.base import Precision


@dataclass(frozen=True)
class Target:
    """The fastest of `variants` on `runtime` within the accuracy budget must reach these speed-ups over the
    baseline, measured in the same run."""

    label: str
    runtime: str
    variants: tuple[str, ...]
    min_speedup_b64: float
    min_speedup_b1: float | None
    max_drop_points: float


@dataclass(frozen=True)
class ParityTarget:
    """The best reference model computing in `precision` must reach PARITY of the share of its peak that the
    baseline reaches of the FP32 peak (a speed-up of at least PARITY x the two peaks' ratio)."""

    label: str
    precision: Precision | str  # bf16 is a runtime's precision (openvino_bf16), not a variant's
    max_drop_points: float


PARITY = 0.8
COMBINATIONS = ("pruned_int8", "distilled_int8", "pruned_distilled", "pruned_distilled_int8")
# The teacher's own models, one per precision: the report's hardware-efficiency rows.
REFERENCE_VARIANTS = ("fp32", "int8")
PARITY_TARGETS = (ParityTarget("INT8 efficiency parity", "int8", 0.5),
                  ParityTarget("BF16 efficiency parity", "bf16", 0.2))


def targets(students: tuple[str, ...]) -> list[Target]:
    """The fixed targets; the student ladder's (the fastest student within the budget meets it) is the registry's
    distilled variants."""
    return [
        Target("int8", "onnxruntime", ("int8",), 3.0, 2.5, 0.5),
        Target("pruned", "onnxruntime", ("pruned",), 2.0, None, 1.0),
        Target("distilled", "onnxruntime", students, 5.0, None, 2.0),
        Target("best combination", "onnxruntime", COMBINATIONS, 10.0, None, 2.0),
        Target("OpenVINO best combination", "openvino", COMBINATIONS, 25.0, None, 2.0),
    ]
