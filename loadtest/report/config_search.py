"""`invoke tune-config`'s Markdown (<model>.md), from its results."""

from __future__ import annotations

from loadtest.bench.config_search import Trial
from loadtest.report.fmt import num


def markdown(results: dict) -> str:
    plan, cur, chosen = results["plan"], Trial(**results["current"]), results["chosen"]
    q = f"p{plan['slo_quantile'] * 100:g}"
    lines = [f"# Config search: {results['model']}", ""]
    if results.get("partial"):
        lines += [f"**PARTIAL RESULTS** — the search was cut short ({results['partial']}).", ""]
    lines += [f"{plan['concurrency']} batch-1 requests in flight over Triton's HTTP endpoint, {plan['seconds']:g} s "
              f"per trial after {plan['warmup_s']:g} s of warm-up, median of {plan['rounds']} interleaved round(s). "
              f"SLO: {q} <= {plan['slo_ms']:g} ms and errors <= {plan['max_error_rate']:.1%}. Failures count in "
              "every figure.", "",
              "| max batch | delay µs | instances | success/s | p50 ms | p95 ms | p99 ms | avg batch | failures | SLO "
              "| |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["trials"]:
        t = Trial(r["max_batch_size"], r["max_queue_delay_us"], r["instances"])
        mark = " ".join(m for m, on in (("current", t == cur), ("**chosen**", chosen and t == Trial(**chosen))) if on)
        if r.get("load_error"):
            mark = f"{mark} load failed: {r['load_error'][:80]}".strip()
        lines.append(f"| {t.max_batch_size} | {t.max_queue_delay_us} | {t.instances} | {r['rps']:.1f} | "
                     f"{_ms(r['p50_ms'])} | {_ms(r['p95_ms'])} | {_ms(r['p99_ms'])} | {_ms(r['avg_batch'])} | "
                     f"{r['failures']} | {'met' if r['meets_slo'] else 'missed'} | {mark} |")
    lines += ["", f"Decision: {results['decision']}.",
              f"Written to {results['repo']}/{results['model']}/config.pbtxt: {'yes' if results['written'] else 'no'}."]
    if results["written"]:
        lines.append(f"The manifest's max_batch_size ({results['manifest_max_batch_size']}) was updated in the same "
                     "commit.")
        lines.append("A running Triton keeps the old config until the model is reloaded (or the server restarted).")
    return "\n".join(lines) + "\n"


def _ms(value: float | None) -> str:
    return num(value, ".2f")
