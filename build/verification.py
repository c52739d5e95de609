"""Verification: how closely a model's logits follow its reference, and the tolerance it must hold.

Every rule is relative to the reference's own scale, so that it means the same for a CIFAR ResNet whose logits span
10 and for an ImageNet network whose logits span 40 (docs/variants.md, "Verification"):
- logit differences are measured against the reference's logit range (the median over the images of the largest
  minus the smallest logit), so 1e-3 means a thousandth of the spread the model uses to rank classes;
- top-1 agreement may be counted only where the reference is confident (its top-1 leads its runner-up by a given
  share of that range): a lossy precision that reorders two near-tied classes costs no accuracy, and the accuracy
  itself is measured and reported for every model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from build.errors import VariantRejected


@dataclass(frozen=True)
class Agreement:
    """How closely a candidate's logits follow a reference on the same images."""

    max_abs_diff: float
    logit_range: float  # the reference's median per-image logit range: the scale of every relative figure
    top1_agreement: float
    confident_agreement: float  # on the images where the reference leads by the tolerance's margin
    confident_images: int
    images: int

    @property
    def max_rel_diff(self) -> float:
        return self.max_abs_diff / self.logit_range

    def as_dict(self) -> dict[str, float | int]:
        return {"max_abs_logit_diff": self.max_abs_diff, "logit_range": self.logit_range,
                "max_rel_logit_diff": self.max_rel_diff, "top1_agreement": self.top1_agreement,
                "confident_top1_agreement": self.confident_agreement, "confident_images": self.confident_images,
                "images": self.images}


@dataclass(frozen=True)
class Tolerance:
    # the largest |logit difference| over the reference's logit range; None: logits may move (quantization)
    max_rel_diff: float | None = 1e-3
    min_top1_agreement: float = 0.999  # on the images where the reference is confident (all of them at margin 0)
    # an image counts for agreement when the reference's top-1 leads its runner-up by this share of the logit range
    confident_margin: float = 0.0


# Lossy precisions (INT8, QAT, BF16): logits move, so only top-1 is held, where the source is confident.
QUANTIZED = Tolerance(max_rel_diff=None, min_top1_agreement=0.97, confident_margin=0.1)


def compare(reference: np.ndarray, candidate: np.ndarray, confident_margin: float = 0.0) -> Agreement:
    spread = float(np.median(reference.max(1) - reference.min(1)))
    scale = spread if spread > 0 else 1.0  # constant logits: absolute differences
    top2 = np.sort(reference, 1)[:, -2:]
    confident = (top2[:, 1] - top2[:, 0]) >= confident_margin * scale
    agree = reference.argmax(1) == candidate.argmax(1)
    return Agreement(
        max_abs_diff=float(np.abs(reference - candidate).max()),
        logit_range=scale,
        top1_agreement=float(agree.mean()),
        confident_agreement=float(agree[confident].mean()) if confident.any() else 1.0,
        confident_images=int(confident.sum()),
        images=len(reference),
    )


def verify(name: str, reference: np.ndarray, candidate: np.ndarray, tol: Tolerance) -> Agreement:
    """Fail the build when a variant drifts from its source beyond tolerance."""
    agreement = compare(reference, candidate, tol.confident_margin)
    drifted = tol.max_rel_diff is not None and agreement.max_rel_diff > tol.max_rel_diff
    if drifted or agreement.confident_agreement < tol.min_top1_agreement:
        where = (f"on the {agreement.confident_images} of {agreement.images} test images where the source leads by "
                 f"{tol.confident_margin:.0%} of its logit range" if tol.confident_margin
                 else f"on {agreement.images} test images")
        raise VariantRejected(
            f"verification failed for {name}: max |logit diff| {agreement.max_abs_diff:.2e} = "
            f"{agreement.max_rel_diff:.2e} of the logit range {agreement.logit_range:.3g} (limit {tol.max_rel_diff}), "
            f"top-1 agreement {agreement.confident_agreement:.4f} (limit {tol.min_top1_agreement}) {where}"
        )
    return agreement
