from __future__ import annotations

import numpy as np
import pytest

from build.errors import ZooError
from build.verification import QUANTIZED, Tolerance, compare, verify


def test_verification_fails_the_build_beyond_tolerance() -> None:
    ref = np.eye(10, dtype=np.float32)[np.arange(100) % 10] * 5
    drifted = ref.copy()
    drifted[0] = np.roll(drifted[0], 1)  # one prediction flips
    agreement = compare(ref, drifted)
    assert agreement.top1_agreement == 0.99 and agreement.max_abs_diff == 5.0 and agreement.max_rel_diff == 1.0
    with pytest.raises(ZooError, match="verification failed for m: max .*top-1 agreement 0.9900"):
        verify("m", ref, drifted, Tolerance())
    verify("m", ref, drifted, Tolerance(max_rel_diff=2.0, min_top1_agreement=0.98))


def test_logit_differences_are_judged_against_the_logit_range() -> None:
    rng = np.random.default_rng(0)
    small = rng.normal(size=(200, 10)).astype(np.float32)
    noise = rng.normal(scale=1e-4, size=small.shape).astype(np.float32)
    # the same network with 40x larger logits and errors: the same relative error, so the same verdict
    rel = [verify("m", small * scale, (small + noise) * scale, Tolerance(max_rel_diff=1e-3)).max_rel_diff
           for scale in (1.0, 40.0)]
    assert rel[0] == pytest.approx(rel[1], rel=1e-3) and rel[0] < 1e-3
    with pytest.raises(ZooError, match="of the logit range"):
        verify("m", small, small + noise * 100, Tolerance(max_rel_diff=1e-3))


def test_quantized_models_are_held_where_the_source_is_confident() -> None:
    ref = np.zeros((100, 10), dtype=np.float32)
    ref[:, 0] = 10.0  # a clear winner on 80 images...
    ref[80:, 1] = 9.9  # ...and a near-tie on 20, which INT8 noise may reorder at no cost in accuracy
    candidate = ref.copy()
    candidate[80:, 1] = 10.1
    agreement = verify("m", ref, candidate, QUANTIZED)
    assert agreement.top1_agreement == 0.8 and agreement.confident_agreement == 1.0
    assert agreement.confident_images == 80
    candidate[:10, 2] = 11.0  # ten confident images flip: the user loses those
    with pytest.raises(ZooError, match="0.8750.*on the 80 of 100 test images where the source leads by 10%"):
        verify("m", ref, candidate, QUANTIZED)
