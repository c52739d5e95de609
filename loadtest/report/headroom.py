"""`invoke bench-loadgen`'s Markdown (headroom.md), from its results."""

from __future__ import annotations

from loadtest.bench.headroom import OTHER_WARNING, TAXED
from loadtest.report.fmt import num
from loadtest.report.fmt import times as _x


def _f(value: float | None, fmt: str = ".0f") -> str:
    return num(value, fmt)


def _table(summary: dict[str, dict]) -> list[str]:
    rows = ["| generator | success/s (Triton) | vs wrk | per round vs wrk | vs wrk+tax | failures (Triton / client) | "
            "Triton cores | generator cores | other cores | machine busy | Triton µs/req | generator µs/req | "
            "shared-CPU ceiling/s |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in summary.items():
        c, us = r["cores"], r["us_per_request"]
        rounds = ", ".join(_x(v) for v in r.get("rounds_vs_wrk", []))
        rows.append(f"| {name} | {_f(r['rps'])} | {_x(r['vs_wrk'])} | {rounds} | {_x(r.get('vs_taxed'))} | "
                    f"{r['server_failures']} / "
                    f"{_f(r['client_failures'])} | {_f(c['triton'], '.2f')} | {_f(c['generator'], '.2f')} | "
                    f"{_f(c['other'], '.2f')} | {_f(c['machine_busy'], '.2f')} | {_f(us['triton'])} | "
                    f"{_f(us['generator'])} | {_f(r['shared_cpu_ceiling_rps'])} |")
    return rows


def _verdict_lines(v: dict, cpus: int) -> list[str]:
    if not v:
        return []
    lines = [] if v.get("other_cores", 0) < OTHER_WARNING else [
        f"**Shared machine**: other processes took up to {v['other_cores']:.2f} cores during a window; every figure "
        "here is lower than on an idle machine, the ratios less so (rounds are interleaved).", ""]
    lines += [f"Best Locust configuration: **{v['best']}** at **{_x(v['vs_wrk'])} wrk** "
             f"(target {v['target']:.1f}x: {'met' if v['met'] else 'not met'})"
             + (f"; against wrk beside Locust's extra CPU ({TAXED}): **{_x(v['vs_taxed'])}**" if v.get("vs_taxed")
                else "") + ".", ""]
    if not v["met"]:
        lines += [f"While it ran, the machine's {cpus} cores were {_f(100 * (v['machine_busy_fraction'] or 0))}% busy; "
                  f"at the CPU Triton and Locust each spend per request, {cpus} cores allow at most "
                  f"{_f(v['shared_cpu_ceiling_rps'])} requests/s when they share them, and the run reached "
                  f"{_f(100 * (v['measured_over_ceiling'] or 0))}% of that: {_x(v.get('ceiling_vs_wrk'))} wrk at best "
                  "with this generator's CPU cost. "
                  + ("The gap to wrk is the CPU they share: Locust spends more CPU per request than wrk, and every "
                     "such microsecond is taken from Triton." if v["cpu_bound"] else
                     "The run stayed below that ceiling (or the machine was not saturated): the shared CPU does not "
                     "explain the whole gap; the rest is time the generator's users spend waiting (more users may "
                     "help)."), ""]
    return lines


def markdown(results: dict) -> str:
    plan, cpus = results["plan"], results["cpu_count"]
    lines = ["# Load-generator headroom: Locust against wrk", ""]
    if results.get("partial"):
        lines += [f"**PARTIAL RESULTS** — the run was cut short ({results['partial']}).", ""]
    lines += [f"Same Triton HTTP endpoint, same pre-encoded KServe v2 binary body (one real test image), "
              f"{plan['connections']} connections (wrk: 1 thread; Locust: as many users), {plan['rounds']} "
              "interleaved rounds, medians ('vs wrk': the median of the per-round ratios). Throughput is Triton's own "
              "count of successful requests over a "
              f"{plan['measure_s']:g} s window that starts {plan['warmup_s']:g} s after the first answer; CPU from "
              f"/proc over the same window (cores = CPU seconds per second; {cpus} cores in all). "
              "`locust-*`: the project's TritonHttpUser, as `invoke loadtest` runs it (raw keep-alive socket, request "
              "bytes prepared once); "
              "`-Np`: N Locust processes (N > 1: Locust's distributed mode, N workers and a master). "
              f"`{TAXED}`: wrk beside a process that burns, per second, the CPU the same round's Locust window spent "
              "above wrk's: if Locust matches it, Locust loads Triton as well as wrk does with the same CPU left to "
              "Triton, and its gap to plain wrk is the CPU the two share. "
              + (f"Every generator ran at niceness {plan['nice']}, so Triton had the CPU first. " if plan.get("nice")
                 else "") +
              "'other cores': CPU of every other process (this benchmark's driver included); the shared-CPU ceiling "
              "is what the machine's cores allow at Triton's and the generator's CPU per request.", ""]
    if "trivial" in results:
        t = results["trivial"]
        dims = "x".join(map(str, t["input_dims"])) + " " if t.get("input_dims") else ""  # older runs: unrecorded
        lines += ["## Trivial model (the generator is the bottleneck, if anything is)", "",
                  f"Input {dims}uint8, the payload's shape.", "", *_table(t["summary"]), ""]
        lines += _verdict_lines(t["verdict"], cpus)
    variants = results.get("variants") or {}
    if variants:
        lines += ["## Zoo variants", "", *_variant_overview(variants), ""]
    for model, v in variants.items():
        lines += [f"### {model}", "", *(_table(v["summary"])), "", f"Locust on this variant: {_within(v)}.", ""]
    return "\n".join(lines) + "\n"


def _within(v: dict) -> str:
    def word(ok: bool) -> str:
        return "within 10%" if ok else "NOT within 10%"

    parts = [f"{n}: {word(ok)} of wrk" for n, ok in v["within_10pct"].items()]
    parts += [f"{n}: {word(ok)} of {TAXED}" for n, ok in v.get("within_10pct_taxed", {}).items()]
    return "; ".join(parts)


def _variant_overview(variants: dict[str, dict]) -> list[str]:
    """One line per variant and Locust configuration, under the count that meets the 10% bar."""
    rows = ["| variant | generator | wrk/s | Locust/s | vs wrk | vs wrk+tax |", "|---|---|---|---|---|---|"]
    for model, v in variants.items():
        summary = v["summary"]
        rows += [f"| {model} | {name} | {_f(summary['wrk']['rps'])} | {_f(summary[name]['rps'])} | "
                 f"{_x(summary[name]['vs_wrk'])} | {_x(summary[name].get('vs_taxed'))} |" for name in v["within_10pct"]]
    met = []
    for key, against in (("within_10pct", "wrk"), ("within_10pct_taxed", TAXED)):
        oks = [ok for v in variants.values() for ok in v.get(key, {}).values()]
        if oks:
            met.append(f"within 10% of {against}: **{sum(oks)} of {len(oks)}**")
    return [f"Locust at saturation, {'; '.join(met)}.", "", *rows]
