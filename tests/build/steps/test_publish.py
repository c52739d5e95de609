from __future__ import annotations

from build.steps.publish import points_lost


def test_a_loss_of_exactly_the_budget_is_within_it() -> None:
    assert (0.358 - 0.356) * 100 > 0.2, "the float difference that rejected a model losing one image of 500"
    assert points_lost(0.358, 0.356) == 0.2 and not points_lost(0.358, 0.356) > 0.2
    assert points_lost(0.358, 0.354) > 0.2 and points_lost(0.5, 0.6) < 0
