"""What a variant is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from build.hardware import Hardware
from build.pipeline import Step
from build.verification import Tolerance

Precision = Literal["fp32", "fp16", "int8"]
BASELINE = "fp32"  # the variant every other one is measured against unless it declares another


def _runs_well(hw: Hardware) -> str | None:
    return None


@dataclass(frozen=True)
class Variant:
    name: str
    parent: str  # "teacher", or the variant whose result this one starts from
    steps: tuple[Step, ...]  # configured already: each technique step holds its config (the build may tune it)
    tolerance: Tolerance = field(default_factory=Tolerance)
    description: str = ""
    hardware_note: Callable[[Hardware], str | None] = _runs_well  # why this hardware runs it poorly, if it does
    transforms_source: bool = False  # it changes the source's own PyTorch weights: not for ONNX sources
    # Why this hardware leaves it out of the default set (`--variants default`, the main job's), if it does: a
    # variant no runtime here serves better costs every newcomer minutes of evaluation. Named, or with
    # `--variants all`, it is built.
    optional: Callable[[Hardware], str | None] = _runs_well
    # A rung of the student ladder beside the default student: the default set distils into it only for cards that
    # ship their training runs (the builtin zoo). For a user's model every run is trained in the build, and the
    # ladder would triple a first build's training; named (`--variants default,<name>`), it is built.
    ladder: bool = False
    # What its model file computes in (runtimes and the report read this, never the name): fp32, fp16 or int8.
    precision: Precision = "fp32"
    # The variant whose reference-runtime model its speed-ups and accuracy drop are measured against, in the same
    # run; a variant that names itself is a baseline.
    baseline: str = BASELINE

    @property
    def is_baseline(self) -> bool:
        return self.baseline == self.name
