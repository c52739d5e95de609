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


def fds_over(role: str, pid: int, series: list[int], every_s: float = 5.0) -> list[dict]:
    return [{"t": i * every_s, "role": role, "pid": pid, "rss_kib": 1000 + i, "fds": n} for i, n in enumerate(series)]


def descriptor_goal(samples: list[dict], start_fds: int, end_fds: int, reached_s: float) -> tuple[dict, dict]:
    usage = growth({"triton-1": {"pid": 1, "rss_kib": 1000, "fds": start_fds}},
                   {"triton-1": {"pid": 1, "rss_kib": 1010, "fds": end_fds}}, samples, reached_s)
    return goal_named("no descriptor growth", usage, reached_s), usage[0]


def goal_named(name: str, usage: list[dict], duration_s: float) -> dict:
    schedule = Schedule(duration_s, 1, 1, 1000, ())
    summary = summarize([rec(0, 1)], [], schedule, t0=0.0)
    return next(g for g in goals(summary, {"exact": True, "diff": {}}, usage, [], schedule, True) if g["goal"] == name)


def test_descriptors_growing_in_each_half_are_a_leak() -> None:
    leak = [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51]  # t 0..55, halves split at 30 s
    goal_, row = descriptor_goal(fds_over("triton-1", 1, leak), 40, 51, 60.0)
    # a 60 s run's level: the median over its tenth (6 s), the sample and the one before; its last tenth: t 55
    assert (row["fd_level_first"], row["fd_level_end"]) == (44.5, 51) and row["halves"]
    assert not goal_["met"]
    assert ("triton-1: start 40, end 51; highest level in the first half 44.5, level over the last tenth 51"
            in goal_["detail"]) and "are growing" in goal_["detail"]


def test_a_connection_opened_once_early_is_no_growth() -> None:
    step = [40] + [41] * 11  # +1 at 5 s, flat after: the two-snapshot rule missed this
    goal_, row = descriptor_goal(fds_over("triton-1", 1, step), 40, 41, 60.0)
    assert row["fd_growth"] == 1 and (row["fd_level_first"], row["fd_level_end"]) == (41, 41)
    assert goal_["met"] and "highest level in the first half 41, level over the last tenth 41" in goal_["detail"]


def test_a_version_loaded_for_seconds_is_a_spike_not_a_level() -> None:
    # The hour's pattern: a step at a model's first new version (first half), then a plateau jittering by a few
    # connections, with a new version's stub beside the old one for one 5 s sample in each half, higher in the second
    hour = [83] * 200 + [150] * 160 + [162] + [150] * 150 + [191] + [156] * 100 + [146] * 108
    goal_, row = descriptor_goal(fds_over("triton-1", 1, hour), 83, 146, 3600.0)
    assert (row["fd_level_first"], row["fd_level_end"]) == (150, 146) and goal_["met"]


def test_a_run_too_short_for_both_halves_falls_back_to_start_against_end() -> None:
    early = fds_over("triton-1", 1, [40, 41])  # t 0 and 5: nothing in the second half of 60 s
    goal_, row = descriptor_goal(early, 40, 41, 60.0)
    assert not row["halves"] and "fd_level_first" not in row and not goal_["met"]
    assert "too short for samples in both halves: the end against the start" in goal_["detail"]
    assert "two snapshots cannot tell a leak" in goal_["detail"]
    assert descriptor_goal(early, 41, 41, 60.0)[0]["met"]  # the same count at both ends: met, and still said so


def test_the_halves_take_only_the_process_that_ran_throughout_and_rss_shows_peak_and_trend() -> None:
    samples = fds_over("gateway", 2, [9] * 12) + fds_over("gateway", 3, [9, 30]) + fds_over("triton-1", 1, [5] * 12)
    rows = {r["role"]: r for r in growth({"gateway": {"pid": 2, "rss_kib": 1000, "fds": 9},
                                          "triton-1": {"pid": 1, "rss_kib": 1000, "fds": 5}},
                                         {"gateway": {"pid": 3, "rss_kib": 1000, "fds": 9},
                                          "triton-1": {"pid": 1, "rss_kib": 1002, "fds": 5}}, samples, 60.0)}
    assert not rows["gateway"]["same_process"] and "halves" not in rows["gateway"]  # restarted: not compared
    t1 = rows["triton-1"]
    assert t1["fd_level_end"] == 5 and t1["rss_peak_kib"] == 1011  # samples' RSS 1000..1011 KiB
    assert abs(t1["rss_median_trend"] - (1008.5 / 1002.5 - 1)) < 1e-12  # medians of 1006..1011 and 1000..1005
    rss = goal_named("RSS growth under 5% (serving processes that ran the whole soak)", list(rows.values()), 60)
    assert rss["met"] and rss["detail"] == (  # the first tenth of 60 s: the samples at 0 and 5 s, median 1000.5
        "triton-1 +0.1% from the first tenth of the load's median (1.0 MiB; +0.2% from the idle start), peak 1.0 MiB; "
        "second half's median +0.6% on the first's")


def test_rss_is_counted_from_the_loaded_first_tenth_so_an_allocator_s_first_rise_is_no_growth() -> None:
    def rss_goal(series: list[int]) -> dict:
        samples = [{"t": i * 5.0, "role": "triton-1", "pid": 1, "rss_kib": kib, "fds": 5}
                   for i, kib in enumerate(series)]
        usage = growth({"triton-1": {"pid": 1, "rss_kib": 1000, "fds": 5}},
                       {"triton-1": {"pid": 1, "rss_kib": series[-1], "fds": 5}}, samples, 5.0 * len(series))
        return goal_named("RSS growth under 5% (serving processes that ran the whole soak)", usage, 60)

    assert rss_goal([1000, 1100] + [1100] * 38)["met"]  # +10% in the first seconds of load, flat after: met
    climbing = rss_goal([1000, 1100] + [1100 + 5 * i for i in range(38)])  # still climbing: +17% on 1100
    assert not climbing["met"] and "memory still climbing" in climbing["detail"]
