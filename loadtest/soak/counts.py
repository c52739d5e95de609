"""Locust's count of answered requests against Prometheus's: Triton's and the gateway's counters.

The requests counted on the client side are Locust's (each one's record, which must agree with Locust's own
statistics) plus the canary faults' own traffic, which goes through the same gateway and Tritons.

Counted exactly, not with increase() (which extrapolates to the window's edges): each series' raw samples from
the last one before the soak began to the last one after it ended, adding every rise and, after a counter reset
(a restarted process), the new process's whole count. What a killed process counted after its last scrape is
lost to Prometheus with it; the records say how many requests were answered in that gap, so each
difference is accounted for, not just bounded.
"""

from __future__ import annotations

from loadtest.metrics.prometheus import PromClient
from loadtest.soak.client import Record

SERIES = {
    "triton": ('nv_inference_request_success{job="triton"}', "triton_kill"),
    "gateway": ('tritonzoo_gateway_requests_total{job="gateway",code="200"}', "gateway_kill"),
}
Samples = list[tuple[float, float]]


def counted(samples: Samples, t0: float) -> float:
    """A counter's increase from its last sample at or before t0 to its last sample, resets included."""
    before = [v for t, v in samples if t <= t0]
    prev = before[-1] if before else 0.0  # a series first seen after t0 started from zero
    total = 0.0
    for _, v in ((t, v) for t, v in samples if t > t0):
        total += v - prev if v >= prev else v
        prev = v
    return total


def fetch(prom: PromClient, expr: str, t0: float, end: float) -> list[tuple[dict, Samples]]:
    seconds = int(end - t0) + 30  # reaches back past t0 to the sample before it
    return [(s["metric"], [(float(t), float(v)) for t, v in s["values"]])
            for s in prom.query(f"{expr}[{seconds}s]", at=end)]


def unscraped(series: list[tuple[dict, Samples]], kills: list[dict], answered: list[Record]) -> int:
    """Requests the client side saw answered between a killed process's last scrape and its kill: its count of them
    died with it. An upper bound for Triton (a client does not know which replica answered) and for a request
    recorded after the kill without a retry (it may have been sent late, to the new process)."""
    total = 0
    for kill in kills:
        instance = kill.get("instance")  # a Triton kill names its replica's; the gateway is the only one of its job
        times = [t for labels, samples in series if instance is None or labels.get("instance") == instance
                 for t, _ in samples if t <= kill["killed_at"]]
        last = max(times, default=kill["killed_at"])
        total += sum(last < r.end and answered_before(r, kill["killed_at"]) for r in answered)
    return total


def answered_before(record: Record, killed_at: float) -> bool:
    """Answered before the kill: ended by then, or begun before it and answered without a retry (its connection was
    the killed process's; a busy client records the end a little late)."""
    return record.end <= killed_at or (record.start <= killed_at and record.retries == 0)


def compare(prom: PromClient, answered: list[Record], t0: float, end: float, faults: list[dict]) -> dict:
    """Counts from both sides, whether they agree exactly, and whether every difference is accounted for.

    Prometheus may count fewer (answered after a killed process's last scrape) or more (answered while the
    gateway was being killed, the reply lost with it: the client retried and was answered again), by no more
    than the requests in flight at a gateway kill."""
    in_flight_gateway = sum(1 for f in faults if f["kind"] == "gateway_kill" and "killed_at" in f
                            for r in answered if r.start <= f["killed_at"] < r.end)
    out: dict = {"answered": len(answered), "diff": {}, "unscraped": {}}
    for name, (expr, kind) in SERIES.items():
        series = fetch(prom, expr, t0, end)
        out[name] = sum(counted(samples, t0) for _, samples in series)
        out["diff"][name] = int(out[name] - len(answered))
        kills = [f for f in faults if f["kind"] == kind and "killed_at" in f]
        out["unscraped"][name] = unscraped(series, kills, answered)
    out["exact"] = all(d == 0 for d in out["diff"].values())
    out["accounted"] = all(-out["unscraped"][n] <= out["diff"][n] <= in_flight_gateway
                           for n in SERIES)
    out["detail"] = ", ".join(f"{n} {int(out[n])} vs Locust and the canaries {len(answered)} ({out['diff'][n]:+d}; "
                              f"answered after a killed process's last scrape: {out['unscraped'][n]})" for n in SERIES)
    return out
