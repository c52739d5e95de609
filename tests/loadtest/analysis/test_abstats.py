from __future__ import annotations

import numpy as np
import pytest

from loadtest.analysis.abstats import (
    Interval,
    arm_rows,
    differences,
    mean_ci,
    median_ci,
    newcombe_difference,
    value_at_rank,
    wilson,
)
from tests.conftest import present


def hist(samples: list[float], bounds: list[float]) -> dict:
    """A cumulative Prometheus-style histogram of `samples` (seconds)."""
    a = np.asarray(samples)
    buckets = [[str(b), float((a <= b).sum())] for b in bounds] + [["+Inf", float(len(a))]]
    return {"buckets": buckets, "sum": float(a.sum()), "count": float(len(a))}


def test_wilson_matches_the_textbook_values() -> None:
    ci = present(wilson(50, 100))
    assert ci.value == 0.5 and ci.low == pytest.approx(0.4038, abs=1e-4) and ci.high == pytest.approx(0.5962, abs=1e-4)
    zero = present(wilson(0, 20))
    assert zero.low == 0.0 and zero.high == pytest.approx(0.1611, abs=1e-4)  # never a zero-width interval
    assert wilson(0, 0) is None


def test_newcombe_difference_holds_the_point_estimate() -> None:
    d = newcombe_difference(present(wilson(90, 100)), present(wilson(80, 100)))
    assert d.value == pytest.approx(0.1) and d.low < 0.1 < d.high and d.low == pytest.approx(0.0006, abs=2e-3)


def test_median_and_mean_from_buckets_bracket_the_truth() -> None:
    rng = np.random.default_rng(0)
    samples = list(rng.uniform(0.0, 0.010, 4000))
    bounds = [i / 1000 for i in range(1, 11)]
    h = hist(samples, bounds)
    med = present(median_ci(h["buckets"]))
    assert med.low <= np.median(samples) <= med.high and med.high - med.low < 0.001
    mean = present(mean_ci(h["buckets"], h["sum"], h["count"]))
    assert mean.value == pytest.approx(np.mean(samples))
    sd = (mean.high - mean.low) / 2 / 1.959964 * np.sqrt(4000)
    assert sd == pytest.approx(np.std(samples), rel=0.02)  # bucket midpoints: close to the true spread
    assert mean_ci(h["buckets"], 1.0, 1) is None and median_ci([]) is None


def test_value_at_rank_interpolates_and_caps_at_the_last_bound() -> None:
    buckets = [(0.001, 10.0), (0.002, 30.0), (float("inf"), 40.0)]
    assert value_at_rank(buckets, 5) == pytest.approx(0.0005)
    assert value_at_rank(buckets, 20) == pytest.approx(0.0015)
    assert value_at_rank(buckets, 35) == 0.002


def test_arm_rows_count_failures_and_unassigned_requests() -> None:
    run = {"locust": {"requests": {"ab:a": {"success": 95.0, "failure": 5.0}, "ab:b": {"success": 100.0,
                                                                                       "failure": 0.0},
                                   "ab:unassigned": {"success": 0.0, "failure": 2.0}},
                      "latency_buckets": {"ab:a": hist([0.001] * 50 + [0.003] * 50, [0.002, 0.004]),
                                          "ab:b": hist([0.001] * 100, [0.002, 0.004])}}}
    rows = {r["arm"]: r for r in arm_rows(run)}
    assert rows["a"]["share"].value == pytest.approx(100 / 202) and rows["a"]["success_rate"].value == 0.95
    assert rows["unassigned"]["failures"] == 2 and rows["unassigned"]["mean_s"] is None
    assert rows["a"]["mean_s"].value == pytest.approx(0.002)
    diff = {d["arm"]: d for d in differences(list(rows.values()), "b")}
    assert set(diff) == {"a"} and diff["a"]["success_rate"].value == pytest.approx(-0.05)
    assert diff["a"]["mean_s"].value == pytest.approx(0.001) and diff["a"]["mean_s"].low > 0
    assert differences(list(rows.values()), "missing") == []
    assert isinstance(diff["a"]["mean_s"], Interval)
