"""`invoke bench-loadgen`'s page (headroom.md) and its sections in the combined report, from its results."""

from __future__ import annotations

from pathlib import Path

from loadtest.bench.headroom import OTHER_WARNING, TAXED
from loadtest.report.fmt import num
from loadtest.report.fmt import times as _x
from loadtest.report.page import Block, Section, Table, Text, partial_text, to_markdown, write_page

TITLE = "Load-generator headroom: Locust against wrk"


def _f(value: float | None, fmt: str = ".0f") -> str:
    return num(value, fmt)


def _table(summary: dict[str, dict]) -> Table:
    rows = [["generator", "success/s (Triton)", "vs wrk", "per round vs wrk", "vs wrk+tax",
             "failures (Triton / client)", "Triton cores", "generator cores", "other cores", "machine busy",
             "Triton µs/req", "generator µs/req", "shared-CPU ceiling/s"]]
    for name, r in summary.items():
        c, us = r["cores"], r["us_per_request"]
        rows.append([name, _f(r["rps"]), _x(r["vs_wrk"]), ", ".join(_x(v) for v in r.get("rounds_vs_wrk", [])),
                     _x(r.get("vs_taxed")), f"{r['server_failures']} / {_f(r['client_failures'])}",
                     _f(c["triton"], ".2f"), _f(c["generator"], ".2f"), _f(c["other"], ".2f"),
                     _f(c["machine_busy"], ".2f"), _f(us["triton"]), _f(us["generator"]),
                     _f(r["shared_cpu_ceiling_rps"])])
    return Table(rows)


def _verdict(v: dict, cpus: int) -> list[Block]:
    if not v:
        return []
    blocks: list[Block] = [] if v.get("other_cores", 0) < OTHER_WARNING else [Text(
        f"**Shared machine**: other processes took up to {v['other_cores']:.2f} cores during a window; every figure "
        "here is lower than on an idle machine, the ratios less so (rounds are interleaved).")]
    blocks.append(Text(f"Best Locust configuration: **{v['best']}** at **{_x(v['vs_wrk'])} wrk** "
                       f"(target {v['target']:.1f}x: {'met' if v['met'] else 'not met'})"
                       + (f"; against wrk beside Locust's extra CPU ({TAXED}): **{_x(v['vs_taxed'])}**"
                          if v.get("vs_taxed") else "") + "."))
    if not v["met"]:
        blocks.append(Text(
            f"While it ran, the machine's {cpus} cores were {_f(100 * (v['machine_busy_fraction'] or 0))}% busy; "
            f"at the CPU Triton and Locust each spend per request, {cpus} cores allow at most "
            f"{_f(v['shared_cpu_ceiling_rps'])} requests/s when they share them, and the run reached "
            f"{_f(100 * (v['measured_over_ceiling'] or 0))}% of that: {_x(v.get('ceiling_vs_wrk'))} wrk at best "
            "with this generator's CPU cost. "
            + ("The gap to wrk is the CPU they share: Locust spends more CPU per request than wrk, and every "
               "such microsecond is taken from Triton." if v["cpu_bound"] else
               "The run stayed below that ceiling (or the machine was not saturated): the shared CPU does not "
               "explain the whole gap; the rest is time the generator's users spend waiting (more users may "
               "help).")))
    return blocks


def _method(results: dict) -> Text:
    plan, cpus = results["plan"], results["cpu_count"]
    return Text(
        f"Same Triton HTTP endpoint, same pre-encoded KServe v2 binary body (one real test image), "
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
        "is what the machine's cores allow at Triton's and the generator's CPU per request.")


def sections(results: dict) -> list[Section]:
    flag = " (PARTIAL)" if results.get("partial") else ""
    found = [Section("Load-generator headroom: how it was measured", [*partial_text(results), _method(results)], flag)]
    if "trivial" in results:
        t = results["trivial"]
        dims = "x".join(map(str, t["input_dims"])) + " " if t.get("input_dims") else ""  # older runs: unrecorded
        found.append(Section("Load-generator headroom: trivial model (the generator is the bottleneck, if anything is)",
                             [Text(f"Input {dims}uint8, the payload's shape."), _table(t["summary"]),
                              *_verdict(t["verdict"], results["cpu_count"])], flag))
    variants = results.get("variants") or {}
    if variants:
        found.append(Section("Load-generator headroom: zoo variants", _variant_overview(variants), flag))
    found += [Section(f"Load-generator headroom: {model}",
                      [_table(v["summary"]), Text(f"Locust on this variant: {_within(v)}.")], flag)
              for model, v in variants.items()]
    return found


def markdown(results: dict) -> str:
    return to_markdown(sections(results), TITLE)


def write(results_json: Path) -> Path:
    return write_page(results_json, markdown)


def _within(v: dict) -> str:
    def word(ok: bool) -> str:
        return "within 10%" if ok else "NOT within 10%"

    parts = [f"{n}: {word(ok)} of wrk" for n, ok in v["within_10pct"].items()]
    parts += [f"{n}: {word(ok)} of {TAXED}" for n, ok in v.get("within_10pct_taxed", {}).items()]
    return "; ".join(parts)


def _variant_overview(variants: dict[str, dict]) -> list[Block]:
    """One row per variant and Locust configuration, under the count that meets the 10% bar."""
    rows = [["variant", "generator", "wrk/s", "Locust/s", "vs wrk", "vs wrk+tax"]]
    for model, v in variants.items():
        summary = v["summary"]
        rows += [[model, name, _f(summary["wrk"]["rps"]), _f(summary[name]["rps"]), _x(summary[name]["vs_wrk"]),
                  _x(summary[name].get("vs_taxed"))] for name in v["within_10pct"]]
    met = []
    for key, against in (("within_10pct", "wrk"), ("within_10pct_taxed", TAXED)):
        oks = [ok for v in variants.values() for ok in v.get(key, {}).values()]
        if oks:
            met.append(f"within 10% of {against}: **{sum(oks)} of {len(oks)}**")
    return [Text(f"Locust at saturation, {'; '.join(met)}."), Table(rows)]
