"""What a variant is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from build.export import Tolerance
from build.pipeline import Step


@dataclass(frozen=True)
class Variant:
    name: str
    parent: str
    steps: Callable[[], list[Step]]
    tolerance: Tolerance = field(default_factory=Tolerance)
    description: str = ""
