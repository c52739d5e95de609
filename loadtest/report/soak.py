"""The soak's report: goals met or missed first, then the figures behind them, with charts over time; Markdown
and HTML from one page (loadtest/report/page.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server
import matplotlib.pyplot as plt  # noqa: E402

from loadtest.report.fmt import DASH, num, provenance  # noqa: E402
from loadtest.report.page import Block, Image, Section, Table, Text, to_html, to_markdown  # noqa: E402

TITLE = "Soak test under faults"
RESOURCES_CHART = "soak-resources.png"


def write(results: dict, out: Path, command: str = "") -> Path:
    """soak.md, soak.html and their charts into `out`; returns the Markdown's path."""
    charts = [chart_traffic(results, out / "soak-traffic.png"), chart_latency(results, out / "soak-latency.png")]
    chart_resources(results, out / RESOURCES_CHART)  # shown beside the table of memory and descriptors
    sections = page(results, command, [c.name for c in charts])
    (out / "soak.html").write_text(to_html(sections, TITLE))
    path = out / "soak.md"
    path.write_text(to_markdown(sections, TITLE))
    return path


def page(results: dict, command: str, charts: list[str]) -> list[Section]:
    cut = [interrupted_section(results)] if "interrupted" in results else []
    return [*cut, goals_section(results), run_section(results, command), requests_section(results),
            in_flight_section(results), recovery_section(results), minutes_section(results),
            counts_section(results), usage_section(results), sticky_section(results),
            Section("Charts", [Image(c) for c in charts]), not_yet_section()]


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def interrupted_section(results: dict) -> Section:
    """First on the page: a report of a soak cut short must say so before any figure."""
    cut = results["interrupted"]
    rows = [["at (s)", "fault", "state"]] + [[f"{f['at_s']:g}", f["kind"], "cut short" if f["cut_short"] else "not run"]
                                             for f in cut["not_run"]]
    text = Text(f"Interrupted (Ctrl-C or SIGTERM) at {stamp(cut['at'])} UTC, {cut['reached_s']:.0f} s into the "
                f"{results['schedule']['duration_s']:g} s schedule. Every figure below covers the time reached; "
                "every process the soak started was stopped.")
    blocks: list[Block] = [text, Table(rows) if cut["not_run"] else Text("Every fault had run.")]
    return Section("PARTIAL: interrupted", blocks)


def goals_section(results: dict) -> Section:
    rows = [["goal", "result", "detail"]] + [[g["goal"], "met" if g["met"] else "MISSED", g["detail"]]
                                             for g in results["goals"]]
    missed = sum(not g["met"] for g in results["goals"])
    return Section("Goals", [Table(rows)], f" — {missed} missed" if missed else " — all met")


def run_section(results: dict, command: str) -> Section:
    run, s = results["run"], results["schedule"]
    text = (f"{s['duration_s']:g} s at {s['rate']:g} requests/s ({run.get('rate_source') or 'given'}) from "
            f"{s['users']} Locust users (SoakUser, each paced open loop at its share), through the gateway to "
            f"{run['replicas']} Triton replicas; A/B experiment over {', '.join(run['arms'])}; p99 SLO "
            f"{s['slo_p99_ms']:g} ms. CPU: {run['cpu']}. Started {stamp(run['t0'])} UTC.")
    policy = (results.get("locust") or {}).get("retry_policy")
    rows = [["#", "at (s)", "fault", "began", "outcome"]]
    for i, f in enumerate(results["faults"]):
        rows.append([str(i + 1), f"{f['at_s']:g}", f["kind"], f"{f['started'] - run['t0']:.1f} s",
                     f"ERROR {f['error']}" if f["error"] else outcome(f)])
    blocks: list[Block] = [Text(f"Command: `{command}`")] if command else []
    blocks += [Text(line) for line in [provenance(results)] if line]
    if results.get("judged_by"):
        blocks.append(Text(f"Goals judged again from this run's soak.json by code {results['judged_by']} "
                           f"(`invoke soak --rejudge`)."))
    blocks += [Text(text), *([Text(f"Client library and retries: {policy}")] if policy else []), Table(rows)]
    return Section("Run", blocks)


def outcome(f: dict) -> str:
    if f["kind"] == "triton_kill":
        return f"replica {f['replica']} killed; supervisor had it ready again after {f['down_s']:.1f} s"
    if f["kind"] == "gateway_kill":
        return f"gateway killed and restarted; ready again after {f['down_s']:.1f} s"
    if f["kind"] == "malformed_burst":
        return f"{f['sent']} sent, answers {f['codes']}" + ("" if f["all_400"] else " (NOT all 400)")
    if f["kind"] == "bad_experiments_file":
        held = "held" if f["last_good_held"] else "did NOT hold"
        saw = "the gateway logged a reload error" if f.get("gateway_saw_bad_file") else "NO reload error seen"
        return f"invalid file for {f['restored_at'] - f['written_at']:.0f} s ({saw}); the last good experiments {held}"
    if f["kind"] == "publish_version":
        ready = "ready on every replica" if f["ready_on_every_replica"] else "NOT ready on every replica"
        return (f"{f['model']} version {f['version']} published and loaded in "
                f"{f['loaded_at'] - f['published_at']:.1f} s; {ready}")
    if f["kind"] == "canary_error_rollback":
        after = "never" if f["rolled_back_after_s"] is None else f"after {f['rolled_back_after_s']:.1f} s"
        return (f"failing candidate {f['candidate']} rolled back {after} ({f['reason'] or 'no reason given'}); "
                f"its own traffic {f['requests']} requests, {f['failed']} failed after retries")
    if f["kind"] == "canary":
        promoted = "never" if f["promoted_after_s"] is None else f"after {f['promoted_after_s']:.1f} s"
        return (f"canary to {f['candidate']} promoted {promoted}; the next one rolled back to {f['rolled_back_to']}; "
                f"its own traffic {f['requests']} requests, {f['failed']} failed")
    return json.dumps(f)


def requests_section(results: dict) -> Section:
    s = results["summary"]
    lat = s["latency_ms"]
    text = (f"Locust sent {s['sent']}, answered {s['answered']} ({s['answered_after_retry']} of them after client "
            f"retries), failed {s['failed']}. Latency of answered requests, retries included: p50 "
            f"{num(lat['p50'])} ms, p95 {num(lat['p95'])} ms, p99 {num(lat['p99'])} ms, max {num(lat['max'])} ms. "
            f"Malformed requests (not counted above): {s['malformed']['sent']}, answers {s['malformed']['codes']}. "
            f"The canary's own traffic (not counted above): {s['canary_traffic']['sent']} sent, "
            f"{s['canary_traffic']['failed']} failed.")
    rows = [["cause", "fault", "requests"]] + [[f["cause"], f["fault"], str(f["count"])] for f in s["failures"]]
    blocks: list[Block] = [Text(text), Table(rows) if s["failures"] else Text("No request failed.")]
    return Section("Requests", blocks)


def in_flight_section(results: dict) -> Section:
    rows = [["kill", "in flight", "answered", "answered after retry", "lost", "why lost"]]
    rows += [[k["fault"], str(k["in_flight"]), str(k["answered"]), str(k["retried"]), str(k["lost"]),
              ", ".join(f"{c}: {n}" for c, n in k["lost_causes"].items()) or DASH]
             for k in results["summary"]["in_flight"]]
    return Section("Requests in flight at each kill", [Table(rows)])


def recovery_section(results: dict) -> Section:
    goal = results["schedule"]["recovery_goal_s"]
    rows = [["fault", "at (s)", "worst p99 in the 30 s after (ms)", f"recovered (goal {goal:g} s)"]]
    rows += [[r["fault"], f"{r['at_s']:g}", num(r["worst_p99_ms_30s"]),
              "never" if r["recovered_s"] is None else f"{r['recovered_s']:.1f} s"]
             for r in results["summary"]["recovery"]]
    note = Text("Recovered: the first of 5 seconds in a row in which every request was answered and the p99 of "
                "the requests begun in each second was within the SLO.")
    return Section("Recovery after each fault", [note, Table(rows)])


def minutes_section(results: dict) -> Section:
    rows = [["minute", "sent", "failed", "p50 ms", "p95 ms", "p99 ms"]]
    rows += [[str(int(m["t_s"] // 60)), str(m["sent"]), str(m["failed"]), num(m["p50_ms"]), num(m["p95_ms"]),
              num(m["p99_ms"])] for m in results["summary"]["per_minute"]]
    return Section("Latency per minute", [Table(rows)])


def counts_section(results: dict) -> Section:
    c = results["counts"]
    stats = c.get("locust_stats") or {}
    requests, failures = stats.get("requests"), stats.get("failures")
    locust = DASH if requests is None or failures is None else str(requests - failures)
    rows = [["counter", "answered (200)", "minus Locust's and the canaries' answered"],
            ["Locust (its own statistics)", locust, ""],
            ["Locust (its request hook's records)", str(c.get("locust_answered", DASH)), ""],
            ["the canary faults' own traffic", str(c.get("canary_answered", DASH)), ""],
            ["Locust and the canaries", str(c["answered"]), ""]]
    rows += [[f"{name} (Prometheus)", f"{c[name]:.0f}", f"{c['diff'][name]:+d}"] for name in ("triton", "gateway")]
    text = Text("Prometheus counted exactly from raw samples (resets of restarted processes included); Triton's "
                "nv_inference_request_success summed over both replicas and the models, the gateway's "
                "tritonzoo_gateway_requests_total with code 200. The canary faults send traffic of their own through "
                "the same gateway and Tritons, so it is added to Locust's. What a killed process answered after its "
                "last scrape is lost to Prometheus with it.")
    return Section("Locust against Prometheus", [text, Table(rows)], "" if c["exact"] else " — not exact")


def usage_section(results: dict) -> Section:
    rows = [["process", "pid start/end", "RSS MiB start", "RSS MiB loaded", "RSS MiB end", "RSS MiB peak",
             "growth from loaded", "RSS median 2nd half vs 1st", "fds start", "fds end", "fds level peak 1st half",
             "fds level last tenth"]]
    for u in results["usage"]:
        a, b = u["start"], u["end"]
        rows.append([u["role"], f"{a.get('pid', DASH)}/{b.get('pid', DASH)}", mib(a.get("rss_kib")),
                     mib(u.get("rss_loaded_kib")), mib(b.get("rss_kib")), mib(u.get("rss_peak_kib")),
                     pct(u.get("rss_growth_loaded")), pct(u.get("rss_median_trend")),
                     str(a.get("fds", DASH)), str(b.get("fds", DASH)),
                     level(u.get("fd_level_first")), level(u.get("fd_level_end"))])
    sampled = f"Sampled every {results['schedule']['sample_s']:g} s over the load" + (
        f" (a sample failed: {results['resources_error']})" if results.get("resources_error") else "")
    note = Text(f"{sampled}; peaks and halves are of a process that ran the whole soak (the same pid at the start "
                "and the end). A process restarted by a fault has another pid at the end: its figures are shown, "
                "not compared; on the chart its role's line goes on. Loaded: the median of the first tenth of the "
                "load, from which growth is counted (under load the allocators grow at once to what it needs).")
    return Section("Memory and descriptors", [note, Table(rows), Image(RESOURCES_CHART)])


def level(value: float | None) -> str:
    return DASH if value is None else f"{value:g}"


def pct(value: float | None) -> str:
    return DASH if value is None else f"{value:+.1%}"


def mib(kib: int | None) -> str:
    return DASH if not kib else f"{kib / 1024:.1f}"


def sticky_section(results: dict) -> Section:
    s = results["summary"]["stickiness"]
    text = (f"{s['keys']} assignment keys; {s['keys_across_restarts']} of them answered both before and after "
            f"one of {s['gateway_restarts']} gateway restarts; keys that changed arm: {s['moved'] or 'none'}.")
    return Section("A/B stickiness across gateway restarts", [Text(text)], "" if s["sticky"] else " — NOT sticky")


def not_yet_section() -> Section:
    return Section("Not yet done", [Text("One Locust process drives the load (no --processes): enough for the rates "
                                         "measured here, not for a model whose 70% exceeds what one process sends.")])


def fault_lines(ax, results: dict, labels: bool = True) -> None:
    for i, f in enumerate(results["faults"]):
        x = f["started"] - results["run"]["t0"]
        ax.axvline(x, color="red", lw=0.8, ls=":")
        if labels:
            ax.annotate(f"#{i + 1} {f['kind']}", (x, 1), xycoords=("data", "axes fraction"), rotation=90,
                        fontsize=6, va="top", ha="right")


def chart_traffic(results: dict, path: Path) -> Path:
    seconds = results["summary"]["per_second"]
    fig, ax = plt.subplots(figsize=(10, 3.2))
    t = [s["t_s"] for s in seconds]
    ax.plot(t, [s["sent"] for s in seconds], label="sent per s", lw=0.8)
    ax.plot(t, [s["failed"] for s in seconds], label="failed per s", lw=0.8, color="black")
    fault_lines(ax, results)
    ax.set(xlabel="seconds from start", ylabel="requests", title="Requests begun each second")
    ax.legend(fontsize=7)
    return save(fig, path)


def chart_latency(results: dict, path: Path) -> Path:
    seconds = results["summary"]["per_second"]
    fig, ax = plt.subplots(figsize=(10, 3.2))
    for key in ("p50_ms", "p99_ms"):
        points = [(s["t_s"], s[key]) for s in seconds if s[key] is not None]
        if points:
            ax.plot(*zip(*points), label=key.replace("_ms", ""), lw=0.8)
    ax.axhline(results["schedule"]["slo_p99_ms"], color="grey", ls="--", lw=0.8, label="p99 SLO")
    ax.set_yscale("log")
    fault_lines(ax, results)
    ax.set(xlabel="seconds from start", ylabel="ms", title="Latency of requests begun each second")
    ax.legend(fontsize=7)
    return save(fig, path)


def chart_resources(results: dict, path: Path) -> Path:
    """RSS and descriptors of each role over the load; a restarted process (another pid) goes on in its role's line."""
    samples = results["resources"]
    fig, (rss, fds) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    for role in sorted({s["role"] for s in samples}):
        mine = sorted((s for s in samples if s["role"] == role), key=lambda s: s["t"])
        t = [s["t"] for s in mine]
        rss.plot(t, [s["rss_kib"] / 1024 for s in mine], label=role, lw=0.8)
        fds.plot(t, [s["fds"] for s in mine], label=role, lw=0.8)
    fault_lines(rss, results)
    fault_lines(fds, results, labels=False)
    # The descriptor goal compares the first half's levels with the end: show where the halves meet.
    fds.axvline((results["run"]["end"] - results["run"]["t0"]) / 2, color="grey", ls="--", lw=0.8, label="half-way")
    rss.set(ylabel="RSS (MiB)", title=f"Memory and open descriptors, sampled every "
                                      f"{results['schedule']['sample_s']:g} s")
    fds.set(xlabel="seconds from start", ylabel="open descriptors")
    fds.legend(fontsize=7)  # one legend for both: a role has the same colour in each
    return save(fig, path)


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
