"""Per-arm A/B figures with confidence intervals, from what a load run keeps of each arm.

Counts give Wilson score intervals (share of traffic, success rate) and Newcombe's interval for a difference of two
rates. Latencies come as the Locust exporter's histogram (cumulative bucket counts, exact sum and count, failures
included): the mean is exact, its interval a normal approximation with the spread estimated from bucket midpoints;
the median's interval is distribution-free (the order statistics n/2 -/+ z*sqrt(n)/2), located within the buckets by
linear interpolation, as Prometheus's histogram_quantile does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959964


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def wilson(successes: float, n: float, z: float = Z95) -> Interval | None:
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def newcombe_difference(a: Interval, b: Interval) -> Interval:
    """a - b for two independent proportions, from their Wilson intervals (Newcombe's hybrid score method)."""
    d = a.value - b.value
    return Interval(d, d - math.hypot(a.value - a.low, b.high - b.value), d + math.hypot(a.high - a.value,
                                                                                      b.value - b.low))


def _buckets(raw: list[list]) -> list[tuple[float, float]]:
    """[[le, cumulative count], ...] (le as Prometheus writes it, '+Inf' included) -> sorted floats."""
    return sorted((float(le), float(n)) for le, n in raw)


def value_at_rank(buckets: list[tuple[float, float]], rank: float) -> float:
    """The latency at a (1-based, fractional) rank, interpolated linearly inside its bucket; the first bucket starts
    at 0 and a rank in the +Inf bucket answers the largest finite bound, as histogram_quantile does."""
    finite = [b for b in buckets if math.isfinite(b[0])]
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank and n > prev_n:
            if not math.isfinite(le):
                return finite[-1][0] if finite else prev_le
            return prev_le + (le - prev_le) * (rank - prev_n) / (n - prev_n)
        prev_le, prev_n = (le, n) if math.isfinite(le) else (prev_le, n)
    return finite[-1][0] if finite else 0.0


def median_ci(raw: list[list], z: float = Z95) -> Interval | None:
    buckets = _buckets(raw)
    n = buckets[-1][1] if buckets else 0
    if n < 1:
        return None
    half = z * math.sqrt(n) / 2
    return Interval(value_at_rank(buckets, n / 2), value_at_rank(buckets, max(1.0, n / 2 - half)),
                    value_at_rank(buckets, min(n, n / 2 + half + 1)))


def mean_ci(raw: list[list], total: float, count: float, z: float = Z95) -> Interval | None:
    if count < 2:
        return None
    mean = total / count
    buckets = _buckets(raw)
    prev_le, prev_n, squares = 0.0, 0.0, 0.0
    for le, n in buckets:
        mid = (prev_le + le) / 2 if math.isfinite(le) else prev_le
        squares += (n - prev_n) * (mid - mean) ** 2
        prev_le, prev_n = (le if math.isfinite(le) else prev_le), n
    half = z * math.sqrt(squares / (count - 1)) / math.sqrt(count)
    return Interval(mean, mean - half, mean + half)


def arm_rows(run: dict) -> list[dict]:
    """One row per arm of an experiment run (Locust request names '<experiment>:<arm>'), plus requests that failed
    before an arm was known ('<experiment>:unassigned'): they count in every share's denominator."""
    requests = run["locust"]["requests"]
    hists = run["locust"].get("latency_buckets") or {}
    total = sum(c["success"] + c["failure"] for c in requests.values())
    rows = []
    for name, counts in sorted(requests.items()):
        n = counts["success"] + counts["failure"]
        hist = hists.get(name)
        rows.append({"name": name, "arm": name.split(":", 1)[-1], "requests": n, "failures": counts["failure"],
                     "share": wilson(n, total), "success_rate": wilson(counts["success"], n),
                     "mean_s": mean_ci(hist["buckets"], hist["sum"], hist["count"]) if hist else None,
                     "median_s": median_ci(hist["buckets"]) if hist else None})
    return rows


def differences(rows: list[dict], control: str) -> list[dict]:
    """Each arm against the control arm: success rate (Newcombe) and mean latency (normal, independent arms)."""
    base = next((r for r in rows if r["arm"] == control), None)
    if base is None:
        return []
    out = []
    for r in rows:
        if r is base or r["arm"] == "unassigned":
            continue
        rate = newcombe_difference(r["success_rate"], base["success_rate"]) \
            if r["success_rate"] and base["success_rate"] else None
        out.append({"arm": r["arm"], "control": control, "success_rate": rate,
                    "mean_s": _mean_difference(r["mean_s"], base["mean_s"])})
    return out


def _mean_difference(a: Interval | None, b: Interval | None) -> Interval | None:
    if a is None or b is None:
        return None
    d = a.value - b.value
    half = math.hypot((a.high - a.low) / 2, (b.high - b.low) / 2)
    return Interval(d, d - half, d + half)
