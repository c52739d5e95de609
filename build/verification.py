"""Verification: how closely a model's logits follow its reference, and the tolerance it must hold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from build.errors import VariantRejected


@dataclass(frozen=True)
class Agreement:
    """How closely a candidate's logits follow a reference on the same images."""

    max_abs_diff: float
    top1_agreement: float
    images: int

    def as_dict(self) -> dict[str, float | int]:
        return {"max_abs_logit_diff": self.max_abs_diff, "top1_agreement": self.top1_agreement, "images": self.images}


@dataclass(frozen=True)
class Tolerance:
    max_abs_diff: float | None = 1e-3  # None: logits may move (quantization), only top-1 is held
    min_top1_agreement: float = 0.999


def compare(reference: np.ndarray, candidate: np.ndarray) -> Agreement:
    return Agreement(
        max_abs_diff=float(np.abs(reference - candidate).max()),
        top1_agreement=float((reference.argmax(1) == candidate.argmax(1)).mean()),
        images=len(reference),
    )


def verify(name: str, reference: np.ndarray, candidate: np.ndarray, tol: Tolerance) -> Agreement:
    """Fail the build when a variant drifts from its source beyond tolerance."""
    agreement = compare(reference, candidate)
    drifted = tol.max_abs_diff is not None and agreement.max_abs_diff > tol.max_abs_diff
    if drifted or agreement.top1_agreement < tol.min_top1_agreement:
        raise VariantRejected(
            f"verification failed for {name}: max |logit diff| {agreement.max_abs_diff:.2e} "
            f"(limit {tol.max_abs_diff}), top-1 agreement {agreement.top1_agreement:.4f} "
            f"(limit {tol.min_top1_agreement}) on {agreement.images} test images"
        )
    return agreement
