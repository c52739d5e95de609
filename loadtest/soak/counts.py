"""The clients' count of answered requests against Prometheus's: Triton's and the gateway's counters.

Counted exactly, not with increase() (which extrapolates to the window's edges): each series' raw samples from
the last one before the soak began to the last one after it ended, adding every rise and, after a counter reset
(a restarted process), the new process's whole count. What a killed process counted after its last scrape is
lost to Prometheus with it: at most one scrape interval's requests per kill, reported as such.
"""

from __future__ import annotations

from loadtest.metrics.prometheus import PromClient

SERIES = {
    "triton": 'nv_inference_request_success{job="triton"}',
    "gateway": 'tritonzoo_gateway_requests_total{job="gateway",code="200"}',
}


def counted(samples: list[tuple[float, float]], t0: float) -> float:
    """A counter's increase from its last sample at or before t0 to its last sample, resets included."""
    before = [v for t, v in samples if t <= t0]
    prev = before[-1] if before else 0.0  # a series first seen after t0 started from zero
    total = 0.0
    for _, v in ((t, v) for t, v in samples if t > t0):
        total += v - prev if v >= prev else v
        prev = v
    return total


def prometheus_count(prom: PromClient, expr: str, t0: float, end: float) -> float:
    seconds = int(end - t0) + 30  # reaches back past t0 to the sample before it
    result = prom.query(f"{expr}[{seconds}s]", at=end)
    return sum(counted([(float(t), float(v)) for t, v in series["values"]], t0) for series in result)


def compare(prom: PromClient, answered: int, t0: float, end: float, kills: dict[str, int],
            scrape_s: float, rate: float) -> dict:
    """Counts from both sides and whether they agree; a difference is bounded by what kills can lose."""
    out: dict = {"clients_answered": answered}
    for name, expr in SERIES.items():
        out[name] = prometheus_count(prom, expr, t0, end)
    # Per Triton kill, the requests it answered after its last scrape; per gateway kill the same for the gateway.
    bound = {"triton": kills.get("triton_kill", 0), "gateway": kills.get("gateway_kill", 0)}
    out["diff"] = {n: int(out[n] - answered) for n in SERIES}
    out["explained_bound"] = {n: int(bound[n] * rate * scrape_s) + bound[n] for n in SERIES}
    out["exact"] = all(d == 0 for d in out["diff"].values())
    # Less: answered after the last scrape before a kill. More: answered by a process killed before its reply
    # reached the client, which retried and was answered again. Either way, no more than a kill's scrape interval.
    out["within_bound"] = all(abs(out["diff"][n]) <= out["explained_bound"][n] for n in SERIES)
    out["detail"] = ", ".join(f"{n} {int(out[n])} vs clients {answered} ({out['diff'][n]:+d}; a kill can lose up to "
                              f"{out['explained_bound'][n]} of its counts)" for n in SERIES)
    return out
