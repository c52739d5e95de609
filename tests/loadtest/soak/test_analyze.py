from __future__ import annotations

from loadtest.soak.analyze import fault_of, goals, growth, in_flight, percentile, recovery, stickiness, summarize
from loadtest.soak.client import Record
from loadtest.soak.schedule import Schedule


def rec(start: float, end: float, status: int = 200, retries: int = 0, key: str = "k", arm: str = "a",
        kind: str = "good") -> Record:
    return Record(kind, start, end, status, "" if status == 200 else f"HTTP {status}", retries, "", key, arm)


def test_percentile_is_a_latency_some_request_had() -> None:
    assert percentile([], 0.99) is None
    assert percentile([1, 2, 3, 4], 0.5) == 2 and percentile(list(range(1, 101)), 0.99) == 99
    assert percentile([5], 0.99) == 5


def test_failures_belong_to_the_fault_running_or_just_ended() -> None:
    faults = [{"kind": "triton_kill", "started": 10, "ended": 12}, {"kind": "gateway_kill", "started": 50, "ended": 51}]
    assert fault_of(rec(11, 13, 503), faults, 30) == "#1 triton_kill"
    assert fault_of(rec(41, 42, 503), faults, 30) == "#1 triton_kill"
    assert fault_of(rec(45, 46, 503), faults, 30) == "none"
    assert fault_of(rec(49, 52, 503), faults, 30) == "#2 gateway_kill"


def test_requests_in_flight_at_a_kill_each_have_a_fate() -> None:
    faults = [{"kind": "gateway_kill", "started": 10, "ended": 11, "killed_at": 10.0}]
    good = [rec(9, 10.5), rec(9.5, 12, retries=2), rec(9.9, 30, status=0), rec(8, 9), rec(10.1, 10.2)]
    (k,) = in_flight(good, faults)
    assert (k["in_flight"], k["answered"], k["retried"], k["lost"]) == (3, 1, 1, 1)


def test_recovery_waits_for_five_clean_seconds() -> None:
    seconds = [{"failed": 0, "p99_ms": 5.0}] * 3 + [{"failed": 2, "p99_ms": 5.0}, {"failed": 0, "p99_ms": 2000.0}] \
        + [{"failed": 0, "p99_ms": 5.0}] * 6
    (r,) = recovery(seconds, 0.0, [{"kind": "triton_kill", "at_s": 3, "started": 3.0}], slo_ms=1000)
    assert r["recovered_s"] == 2 and r["worst_p99_ms_30s"] == 2000
    (never,) = recovery(seconds[:7], 0.0, [{"kind": "triton_kill", "at_s": 3, "started": 3.0}], slo_ms=1000)
    assert never["recovered_s"] is None


def test_stickiness_needs_keys_on_both_sides_of_a_restart() -> None:
    faults = [{"kind": "gateway_kill", "back_at": 10.0}]
    assert stickiness([rec(1, 2, key="u1", arm="a"), rec(11, 12, key="u1", arm="a")], faults)["sticky"]
    moved = stickiness([rec(1, 2, key="u1", arm="a"), rec(11, 12, key="u1", arm="b")], faults)
    assert moved["moved"] == ["u1"] and not moved["sticky"]
    assert not stickiness([rec(1, 2, key="u1")], faults)["sticky"]  # nothing answered after: not shown sticky


def test_growth_compares_only_a_process_that_ran_throughout() -> None:
    rows = {r["role"]: r for r in growth({"a": {"pid": 1, "rss_kib": 100, "fds": 5}, "b": {"pid": 2, "rss_kib": 100,
                                                                                                "fds": 5}},
                                         {"a": {"pid": 1, "rss_kib": 110, "fds": 6}, "b": {"pid": 3, "rss_kib": 100,
                                                                                           "fds": 5}})}
    assert abs(rows["a"]["rss_growth"] - 0.1) < 1e-9 and rows["a"]["fd_growth"] == 1
    assert rows["b"]["rss_growth"] is None and not rows["b"]["same_process"]


def test_goals_count_only_unexplained_losses_against_the_first_goal() -> None:
    schedule = Schedule(10, 1, 1, 1000, ())
    faults = [{"kind": "triton_kill", "at_s": 1, "started": 1.0, "ended": 2.0, "killed_at": 1.0, "error": ""}]
    records = [rec(0.5, 1.5, status=503), rec(3, 3.1), rec(5, 5.1, kind="malformed:x", status=400)]
    summary = summarize(records, faults, schedule, t0=0.0)
    assert (summary["sent"], summary["failed"], summary["malformed"]["sent"]) == (2, 1, 1)
    usage = growth({"triton-1": {"pid": 1, "rss_kib": 100, "fds": 5}}, {"triton-1": {"pid": 1, "rss_kib": 101,
                                                                                      "fds": 5}})
    met = {g["goal"]: g["met"] for g in goals(summary, {"exact": False, "diff": {}}, usage, faults, schedule, True)}
    assert met["no request lost except those in flight at a kill, each accounted for"]
    assert met["RSS growth under 5% (serving processes that ran the whole soak)"] and met["no descriptor growth"]
    assert not met["Locust and Prometheus agree exactly"]
