from __future__ import annotations

import numpy as np
import pytest

from build.errors import ZooError
from build.verification import Tolerance, compare, verify


def test_verification_fails_the_build_beyond_tolerance() -> None:
    ref = np.eye(10, dtype=np.float32)[np.arange(100) % 10] * 5
    drifted = ref.copy()
    drifted[0] = np.roll(drifted[0], 1)  # one prediction flips
    agreement = compare(ref, drifted)
    assert agreement.top1_agreement == 0.99 and agreement.max_abs_diff == 5.0
    with pytest.raises(ZooError, match="verification failed for m: max .*top-1 agreement 0.9900"):
        verify("m", ref, drifted, Tolerance())
    verify("m", ref, drifted, Tolerance(max_abs_diff=10, min_top1_agreement=0.98))
