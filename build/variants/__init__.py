"""The variant registry: a variant is a named recipe of steps, with its parent and its tolerance.

Adding a variant is one module defining a `Variant` plus one line in `VARIANTS`.
"""

from __future__ import annotations

from build.variants.base import Variant
from build.variants.fp32 import FP32

VARIANTS: dict[str, Variant] = {v.name: v for v in (FP32,)}

__all__ = ["VARIANTS", "Variant"]
