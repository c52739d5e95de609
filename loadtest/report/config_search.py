"""`invoke tune-config`'s page (<model>.md) and its section in the combined report, from its results."""

from __future__ import annotations

from pathlib import Path

from loadtest.bench.config_search import Trial
from loadtest.report.fmt import num
from loadtest.report.page import Section, Table, Text, partial_text, to_markdown, write_page


def sections(results: dict) -> list[Section]:
    plan, cur, chosen = results["plan"], Trial(**results["current"]), results["chosen"]
    q = f"p{plan['slo_quantile'] * 100:g}"
    rows = [["max batch", "delay µs", "instances", "success/s", "p50 ms", "p95 ms", "p99 ms", "avg batch", "failures",
             "SLO", ""]]
    for r in results["trials"]:
        t = Trial(r["max_batch_size"], r["max_queue_delay_us"], r["instances"])
        mark = " ".join(m for m, on in (("current", t == cur), ("**chosen**", chosen and t == Trial(**chosen))) if on)
        if r.get("load_error"):
            mark = f"{mark} load failed: {r['load_error'][:80]}".strip()
        rows.append([str(t.max_batch_size), str(t.max_queue_delay_us), str(t.instances), f"{r['rps']:.1f}",
                     _ms(r["p50_ms"]), _ms(r["p95_ms"]), _ms(r["p99_ms"]), _ms(r["avg_batch"]), str(r["failures"]),
                     "met" if r["meets_slo"] else "missed", mark])
    written = f"Written to {results['repo']}/{results['model']}/config.pbtxt: {'yes' if results['written'] else 'no'}."
    if results["written"]:
        written += (f" The manifest's max_batch_size ({results['manifest_max_batch_size']}) was updated in the same "
                    "commit. A running Triton keeps the old config until the model is reloaded (or the server "
                    "restarted).")
    method = Text(f"{plan['concurrency']} batch-1 requests in flight over Triton's HTTP endpoint, {plan['seconds']:g} "
                  f"s per trial after {plan['warmup_s']:g} s of warm-up, median of {plan['rounds']} interleaved "
                  f"round(s). SLO: {q} <= {plan['slo_ms']:g} ms and errors <= {plan['max_error_rate']:.1%}. "
                  "Failures count in every figure.")
    return [Section(f"Config search: {results['model']}",
                    [*partial_text(results, "search"), method, Table(rows), Text(f"Decision: {results['decision']}."),
                     Text(written)], " (PARTIAL)" if results.get("partial") else "")]


def markdown(results: dict) -> str:
    return to_markdown(sections(results), "Config search")


def write(results_json: Path) -> Path:
    return write_page(results_json, markdown)


def _ms(value: float | None) -> str:
    return num(value, ".2f")
