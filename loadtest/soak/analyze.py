"""From the soak's raw records to its figures: counts, failures by cause and fault, requests in flight at each
kill and their fate, latency over time, recovery after each fault, stickiness, and the goals met or missed."""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict

from loadtest.soak.client import Record
from loadtest.soak.schedule import Schedule
from loadtest.soak.stack import SOAK_ROLE

KILLS = ("triton_kill", "gateway_kill")
# The measuring side: Prometheus's RSS grows with the samples it keeps, the soak's own process with the records of
# the faults' traffic. Shown in the report, but the growth goals are about the serving processes.
INSTRUMENTS = ("prometheus", SOAK_ROLE)
STABLE_S = 5  # recovered: this many consecutive seconds with p99 within the SLO and nothing failed


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (no interpolation: a reported p99 is a latency some request really had)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def latency_ms(r: Record) -> float:
    return (r.end - r.start) * 1000


def fault_of(r: Record, faults: list[dict], window_s: float) -> str:
    """The fault a failure belongs to: the latest one begun before the request, if it was still running or ended
    less than `window_s` earlier; else "none" (a failure no fault explains)."""
    for i, f in reversed(list(enumerate(faults))):
        if f["started"] <= r.end and r.start <= f["ended"] + window_s:
            return f"#{i + 1} {f['kind']}"
    return "none"


def failures(good: list[Record], faults: list[dict], window_s: float) -> list[dict]:
    counts = Counter((r.error, fault_of(r, faults, window_s)) for r in good if r.status != 200)
    return [{"cause": c, "fault": f, "count": n} for (c, f), n in sorted(counts.items())]


def in_flight(good: list[Record], faults: list[dict]) -> list[dict]:
    """Each kill: the requests sent before it and not yet answered, and what became of each."""
    out = []
    for i, f in enumerate(faults):
        if f["kind"] not in KILLS or "killed_at" not in f:
            continue
        at = f["killed_at"]
        caught = [r for r in good if r.start <= at < r.end]
        fate = Counter("lost" if r.status != 200 else "retried" if r.retries > 0 else "answered" for r in caught)
        out.append({"fault": f"#{i + 1} {f['kind']}", "at": at, "in_flight": len(caught),
                    "answered": fate["answered"], "retried": fate["retried"], "lost": fate["lost"],
                    "lost_causes": dict(Counter(r.error for r in caught if r.status != 200))})
    return out


def per_bin(good: list[Record], t0: float, bin_s: float) -> list[dict]:
    bins: dict[int, list[Record]] = defaultdict(list)
    for r in good:
        bins[int((r.start - t0) // bin_s)].append(r)
    out = []
    for b in range(max(bins) + 1 if bins else 0):
        rs = bins.get(b, [])
        lat = [latency_ms(r) for r in rs]
        out.append({"t_s": b * bin_s, "sent": len(rs), "failed": sum(r.status != 200 for r in rs),
                    "p50_ms": percentile(lat, 0.5), "p95_ms": percentile(lat, 0.95), "p99_ms": percentile(lat, 0.99)})
    return out


def recovery(seconds: list[dict], t0: float, faults: list[dict], slo_ms: float) -> list[dict]:
    """Seconds from each fault's start until STABLE_S seconds in a row have p99 within the SLO and no failure."""
    def good_second(s: dict) -> bool:
        return s["failed"] == 0 and (s["p99_ms"] is None or s["p99_ms"] <= slo_ms)

    out = []
    for i, f in enumerate(faults):
        first = int(f["started"] - t0)
        found = next((s for s in range(first, len(seconds) - STABLE_S + 1)
                      if all(good_second(x) for x in seconds[s:s + STABLE_S])), None)
        during = [x["p99_ms"] for x in seconds[first:first + 30] if x["p99_ms"] is not None]
        out.append({"fault": f"#{i + 1} {f['kind']}", "at_s": f["at_s"],
                    "recovered_s": None if found is None else max(0.0, found - (f["started"] - t0)),
                    "worst_p99_ms_30s": max(during) if during else None})
    return out


def stickiness(good: list[Record], faults: list[dict]) -> dict:
    """Each key's arm before and after every gateway restart: sticky when no key ever changed arm."""
    restarts = sorted(f["back_at"] for f in faults if f["kind"] == "gateway_kill" and "back_at" in f)
    arms: dict[str, set[str]] = defaultdict(set)
    across: dict[str, set[int]] = defaultdict(set)  # the gateway lifetimes in which each key was answered
    for r in good:
        if r.status == 200 and r.arm:
            arms[r.key].add(r.arm)
            across[r.key].add(sum(r.start >= b for b in restarts))
    moved = sorted(k for k, a in arms.items() if len(a) > 1)
    spanning = sum(len(v) > 1 for v in across.values())
    return {"keys": len(arms), "keys_across_restarts": spanning, "gateway_restarts": len(restarts),
            "moved": moved, "sticky": not moved and (spanning > 0 or not restarts)}


def summarize(records: list[Record], faults: list[dict], schedule: Schedule, t0: float) -> dict:
    good = [r for r in records if r.kind == "good"]
    bad = [r for r in records if r.kind.startswith("malformed")]
    canary = [r for r in records if r.kind == "canary"]
    window = schedule.recovery_goal_s
    seconds = per_bin(good, t0, 1.0)
    return {
        "sent": len(good), "answered": sum(r.status == 200 for r in good),
        "answered_after_retry": sum(r.status == 200 and r.retries > 0 for r in good),
        "failed": sum(r.status != 200 for r in good),
        "failures": failures(good, faults, window),
        "malformed": {"sent": len(bad), "codes": dict(Counter(str(r.status) for r in bad))},
        "canary_traffic": {"sent": len(canary), "answered": sum(r.status == 200 for r in canary),
                           "failed": sum(r.status != 200 for r in canary)},
        "in_flight": in_flight(good, faults),
        "per_minute": per_bin(good, t0, 60.0),
        "per_second": seconds,
        "recovery": recovery(seconds, t0, faults, schedule.slo_p99_ms),
        "stickiness": stickiness(good, faults),
        "latency_ms": {q: percentile([latency_ms(r) for r in good if r.status == 200], p)
                       for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))},
    }


def growth(start: dict, end: dict, samples: list[dict] | None = None, reached_s: float = 0.0) -> list[dict]:
    """RSS and descriptors per role: the start and end snapshots and, for a process that ran the whole soak, its
    samples (resources.since) over the load split at half of `reached_s`; a process restarted during the run
    (another pid) is shown, not compared."""
    rows = []
    for role in sorted(set(start) | set(end)):
        a, b = start.get(role, {}), end.get(role, {})
        same = a.get("pid") == b.get("pid") and a.get("rss_kib") and b.get("rss_kib")
        row = {"role": role, "start": a, "end": b, "same_process": bool(same),
               "rss_growth": (b["rss_kib"] / a["rss_kib"] - 1) if same else None,
               "fd_growth": (b["fds"] - a["fds"]) if same else None}
        if same:
            mine = [s for s in samples or [] if s["role"] == role and s["pid"] == a["pid"]]
            row.update(halves(mine, reached_s / 2, a, b))
        rows.append(row)
    return rows


def halves(samples: list[dict], middle_s: float, start: dict, end: dict) -> dict:
    """One process's trend: its peaks, and the second half's against the first's. The hour repeats the same faults
    in each quarter, so descriptors that end (the median of the run's last tenth) above the highest level of the
    first half are growth that goes on (a leak); one opened once in the first half ends no higher. A level is the
    median over the window before each sample (a minute, or a tenth of a shorter run): a model version loaded beside
    the serving one holds its stub's descriptors for seconds, a spike, not a level. Without samples in both halves,
    the end against the start."""
    first = [s for s in samples if s["t"] < middle_s]
    second = [s for s in samples if s["t"] >= middle_s]
    rss = [u["rss_kib"] for u in (start, *samples, end)]
    if not first or not second:
        return {"halves": False, "rss_peak_kib": max(rss), "fd_leak": end["fds"] > start["fds"],
                "rss_growth_loaded": end["rss_kib"] / start["rss_kib"] - 1}
    levels = fd_levels(samples, min(60.0, middle_s / 5))
    fd_first = max(level for level, s in zip(levels, samples, strict=True) if s["t"] < middle_s)
    fd_end = median_or([s["fds"] for s in second if s["t"] >= 1.8 * middle_s], end["fds"])
    # Under load the allocators grow at once to what the load needs (ONNX Runtime's arena to the largest batch the
    # dynamic batcher forms): growth is counted from the first tenth of the load, not from the idle start snapshot.
    loaded = median_or([s["rss_kib"] for s in first if 0 <= s["t"] < middle_s / 5], start["rss_kib"])
    return {"halves": True, "rss_peak_kib": max(rss), "fd_level_first": fd_first, "fd_level_end": fd_end,
            "fd_leak": fd_end > fd_first, "rss_loaded_kib": loaded,
            "rss_growth_loaded": end["rss_kib"] / loaded - 1,
            "rss_median_trend": statistics.median(s["rss_kib"] for s in second) /
            statistics.median(s["rss_kib"] for s in first) - 1}


def median_or(values: list[float], default: float) -> float:
    return statistics.median(values) if values else default


def fd_levels(samples: list[dict], window_s: float) -> list[float]:
    """Each sample's descriptor level: the median of the samples in the `window_s` before it, itself included."""
    return [statistics.median(u["fds"] for u in samples if s["t"] - window_s < u["t"] <= s["t"]) for s in samples]


def goals(summary: dict, counts: dict, usage: list[dict], faults: list[dict], schedule: Schedule,
          healthy_at_end: bool) -> list[dict]:
    lost_in_flight = sum(k["lost"] for k in summary["in_flight"])
    other = summary["failed"] - lost_in_flight + summary.get("canary_traffic", {}).get("failed", 0)
    slow = [r for r in summary["recovery"] if r["recovered_s"] is None or r["recovered_s"] > schedule.recovery_goal_s]
    compared = [u for u in usage if u["same_process"] and u["role"] not in INSTRUMENTS]
    rss = [u for u in compared if u["rss_growth_loaded"] >= 0.05]
    fds = [u for u in compared if u["fd_leak"]]
    sticky = summary["stickiness"]
    failed_faults = [f"#{i + 1} {f['kind']}: {f['error']}" for i, f in enumerate(faults) if f.get("error")]
    failed_faults += [f"#{i + 1} {f.kind}: not run (the soak ended first)"
                      for i, f in enumerate(schedule.faults) if i >= len(faults)]
    stats = counts.get("locust_stats") or {}
    recorded = counts.get("locust_records", 0)
    return [
        goal("every fault ran", not failed_faults, "; ".join(failed_faults) or f"{len(faults)} faults ran"),
        goal("no request lost except those in flight at a kill, each accounted for", other == 0,
             f"{summary['failed']} failed: {lost_in_flight} in flight at a kill, {other} otherwise (the canary's own "
             "traffic included)"),
        goal(f"p99 back within {schedule.slo_p99_ms:g} ms within {schedule.recovery_goal_s:g} s of each fault",
             not slow, "; ".join(f"{r['fault']}: {fmt_s(r['recovered_s'])}" for r in slow) or "every fault"),
        goal("Locust's statistics and its per-request records agree", counts.get("records_match_stats", False),
             f"Locust counted {stats.get('requests')} requests, {stats.get('failures')} failed; its request hook "
             f"recorded {recorded}, {recorded - counts.get('locust_answered', 0)} failed"),
        goal("Locust and Prometheus agree exactly", counts.get("exact", False),
             counts.get("detail", ""), "a SIGKILLed process takes what it counted after its last scrape with it; "
             "exact agreement under kills would need the counts pushed per request (or scraped at the kill), so "
             "the next goal accounts for each difference instead"),
        goal("... or every difference accounted for by killed processes' unscraped counts",
             counts.get("accounted", False), ", ".join(f"{n} {d:+d} (unscraped {counts['unscraped'][n]})"
                                                       for n, d in counts.get("diff", {}).items())),
        goal("RSS growth under 5% (serving processes that ran the whole soak)", bool(compared) and not rss,
             "; ".join(rss_detail(u) for u in rss or compared) or "none ran the whole soak",
             "the end against the first tenth of the load; the second half's median against the first's tells "
             "memory still climbing (a leak) from a rise that stopped (caches, a new model version loaded)"),
        goal("no descriptor growth", bool(compared) and not fds,
             "; ".join(fd_detail(u) for u in compared) or "none ran the whole soak", fd_if_missed(fds)),
        goal("A/B assignment sticky across gateway restarts", sticky["sticky"],
             f"{sticky['keys_across_restarts']} keys answered on both sides of {sticky['gateway_restarts']} "
             f"restarts; moved: {sticky['moved'] or 'none'}"),
        goal("server healthy at the end", healthy_at_end, "gateway and every Triton replica ready"
             if healthy_at_end else "not ready at the end"),
    ]


def rss_detail(u: dict) -> str:
    if not u["halves"]:
        return f"{u['role']} {u['rss_growth']:+.1%} from the start (peak {u['rss_peak_kib'] / 1024:.1f} MiB)"
    return (f"{u['role']} {u['rss_growth_loaded']:+.1%} from the first tenth of the load's median "
            f"({u['rss_loaded_kib'] / 1024:.1f} MiB; {u['rss_growth']:+.1%} from the idle start), peak "
            f"{u['rss_peak_kib'] / 1024:.1f} MiB; second half's median {u['rss_median_trend']:+.1%} on the first's")


def fd_detail(u: dict) -> str:
    ends = f"{u['role']}: start {u['start']['fds']}, end {u['end']['fds']}"
    if not u["halves"]:
        return f"{ends} (too short for samples in both halves: the end against the start)"
    return (f"{ends}; highest level in the first half {u['fd_level_first']:g}, level over the last tenth "
            f"{u['fd_level_end']:g} (levels: medians over a minute, or a tenth of a shorter run)")


def fd_if_missed(grown: list[dict]) -> str:
    """Why the descriptor goal was missed: growth that went on, or too few samples to tell."""
    if any(not u["halves"] for u in grown):
        return ("the run was too short for samples in both halves, and two snapshots cannot tell a leak from a "
                "connection opened once; a longer run (or a shorter sample_s) can")
    return ("descriptors that end above anything the first half settled at, under the same faults (the hour repeats "
            "them each quarter), are growing: soak-resources.png shows when they grew; a schedule whose second half "
            "has faults the first has not (the short one) can raise them once")


def goal(name: str, met: bool, detail: str, if_missed: str = "") -> dict:
    """`if_missed`: why such a miss happens and what meeting it would take, shown only when it is missed."""
    return {"goal": name, "met": bool(met), "detail": detail + (f" — {if_missed}" if not met and if_missed else "")}


def fmt_s(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"
