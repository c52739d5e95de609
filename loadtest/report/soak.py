"""The soak's report: goals met or missed first, then the figures behind them, with charts over time; Markdown
and HTML from one page (loadtest/report/page.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server
import matplotlib.pyplot as plt  # noqa: E402

from loadtest.report.fmt import DASH, num  # noqa: E402
from loadtest.report.page import Block, Image, Section, Table, Text, to_html, to_markdown  # noqa: E402

TITLE = "Soak test under faults"


def write(results: dict, out: Path, command: str = "") -> Path:
    """soak.md, soak.html and their charts into `out`; returns the Markdown's path."""
    charts = [chart_traffic(results, out / "soak-traffic.png"), chart_latency(results, out / "soak-latency.png")]
    sections = page(results, command, [c.name for c in charts])
    (out / "soak.html").write_text(to_html(sections, TITLE))
    path = out / "soak.md"
    path.write_text(to_markdown(sections, TITLE))
    return path


def page(results: dict, command: str, charts: list[str]) -> list[Section]:
    return [goals_section(results), run_section(results, command), requests_section(results),
            in_flight_section(results), recovery_section(results), minutes_section(results),
            counts_section(results), usage_section(results), sticky_section(results),
            Section("Charts", [Image(c) for c in charts]), not_yet_section()]


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def goals_section(results: dict) -> Section:
    rows = [["goal", "result", "detail"]] + [[g["goal"], "met" if g["met"] else "MISSED", g["detail"]]
                                             for g in results["goals"]]
    missed = sum(not g["met"] for g in results["goals"])
    return Section("Goals", [Table(rows)], f" — {missed} missed" if missed else " — all met")


def run_section(results: dict, command: str) -> Section:
    run, s = results["run"], results["schedule"]
    text = (f"{s['duration_s']:g} s at {s['rate']:g} requests/s from {s['users']} clients, through the gateway to "
            f"{run['replicas']} Triton replicas; A/B experiment over {', '.join(run['arms'])}; p99 SLO "
            f"{s['slo_p99_ms']:g} ms. CPU: {run['cpu']}. Started {stamp(run['t0'])} UTC.")
    rows = [["#", "at (s)", "fault", "began", "outcome"]]
    for i, f in enumerate(results["faults"]):
        rows.append([str(i + 1), f"{f['at_s']:g}", f["kind"], f"{f['started'] - run['t0']:.1f} s",
                     f"ERROR {f['error']}" if f["error"] else outcome(f)])
    blocks: list[Block] = [Text(f"Command: `{command}`")] if command else []
    return Section("Run", blocks + [Text(text), Table(rows)])


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
    text = (f"Sent {s['sent']}, answered {s['answered']} ({s['answered_after_retry']} of them after client "
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
    rows = [["counter", "count", "minus the clients' answered"], ["clients (answered)", str(c["clients_answered"]), ""]]
    rows += [[name, f"{c[name]:.0f}", f"{c['diff'][name]:+d}"] for name in ("triton", "gateway")]
    text = Text("Prometheus counted exactly from raw samples (resets of restarted processes included). The soak's "
                "clients stand in for Locust here: see loadtest/soak/client.py for why. What a killed process "
                "answered after its last scrape is lost to Prometheus with it.")
    return Section("Clients against Prometheus", [text, Table(rows)], "" if c["exact"] else " — not exact")


def usage_section(results: dict) -> Section:
    rows = [["process", "pid start/end", "RSS MiB start", "RSS MiB end", "growth", "fds start", "fds end"]]
    for u in results["usage"]:
        a, b = u["start"], u["end"]
        rows.append([u["role"], f"{a.get('pid', DASH)}/{b.get('pid', DASH)}", mib(a), mib(b),
                     DASH if u["rss_growth"] is None else f"{u['rss_growth']:+.1%}",
                     str(a.get("fds", DASH)), str(b.get("fds", DASH))])
    note = Text("A process restarted by a fault has another pid at the end: its figures are shown, not compared.")
    return Section("Memory and descriptors", [note, Table(rows)])


def mib(usage: dict) -> str:
    return DASH if not usage.get("rss_kib") else f"{usage['rss_kib'] / 1024:.1f}"


def sticky_section(results: dict) -> Section:
    s = results["summary"]["stickiness"]
    text = (f"{s['keys']} assignment keys; {s['keys_across_restarts']} of them answered both before and after "
            f"one of {s['gateway_restarts']} gateway restarts; keys that changed arm: {s['moved'] or 'none'}.")
    return Section("A/B stickiness across gateway restarts", [Text(text)], "" if s["sticky"] else " — NOT sticky")


def not_yet_section() -> Section:
    return Section("Not yet done", [Text("The rate is the schedule's or `--rate`'s, not yet derived from the "
                                         "capacity plan measured for the model (the issue's 70% of capacity).")])


def fault_lines(ax, results: dict) -> None:
    for i, f in enumerate(results["faults"]):
        x = f["started"] - results["run"]["t0"]
        ax.axvline(x, color="red", lw=0.8, ls=":")
        ax.annotate(f"#{i + 1} {f['kind']}", (x, 1), xycoords=("data", "axes fraction"), rotation=90, fontsize=6,
                    va="top", ha="right")


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


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
