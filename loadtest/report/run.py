"""Markdown summary of one load run's results (loadtest.json -> loadtest.md)."""

from __future__ import annotations

from pathlib import Path

from loadtest.report.fmt import ms as _ms
from loadtest.report.fmt import num as _num
from loadtest.report.fmt import provenance
from loadtest.report.fmt import us_as_ms as _us_as_ms
from loadtest.report.page import write_page


def markdown(results: dict) -> str:
    spec, window = results["spec"], results["window"]
    lines = [f"# Load test: {spec['target']}, {spec['shape']} shape", ""]
    if results.get("partial"):
        lines += [f"**PARTIAL RESULTS** — the run was cut short ({results['partial']}).", ""]
    lines += [f"{window['seconds']:.1f} s of load on models {', '.join(spec['models']) or 'all'}, "
              f"{spec['processes']} Locust process(es); every figure below was read back from Prometheus.", ""]
    if provenance(results):
        lines += [provenance(results), ""]
    lines += _locust_table(results) + _triton_table(results) + _gateway_table(results) + _steps_table(results)
    lines += capacity_lines(results)
    if results.get("locust_log_tail"):
        lines += ["## Locust log (tail)", "", "```", results["locust_log_tail"], "```", ""]
    return "\n".join(lines)


def _locust_table(results: dict) -> list[str]:
    seconds = results["window"]["seconds"]
    rows = ["## Client side (Locust, sub-ms histogram; failures included in every figure)", "",
            "| request | requests | failures | success/s | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|---|---|"]
    latency = results["locust"]["latency_s"]
    for name, counts in sorted(results["locust"]["requests"].items()):
        q = latency.get(name, {})
        total = counts["success"] + counts["failure"]
        rows.append(f"| {name} | {total:.0f} | {counts['failure']:.0f} | {counts['success'] / seconds:.1f} | "
                    f"{_ms(q.get('0.5'))} | {_ms(q.get('0.95'))} | {_ms(q.get('0.99'))} |")
    return rows + [""]


def _triton_table(results: dict) -> list[str]:
    rows = ["## Server side (Triton counters and summaries)", "",
            "| model | requests | failures | req/s | avg batch | queue ms/req | compute ms/req | p50 ms | p99 ms |",
            "|---|---|---|---|---|---|---|---|---|"]
    for model, f in sorted(results["triton"].items()):
        mean, summary = f["mean_us"], f["summary_us"]["request"]
        compute = sum(mean[k] or 0.0 for k in ("compute_input", "compute_infer", "compute_output"))
        rows.append(f"| {model} | {f['requests']:.0f} | {f['failures']:.0f} | {f['rps']:.1f} | "
                    f"{_num(f['avg_batch_size'], '.2f')} | {_us_as_ms(mean['queue'])} | "
                    f"{_us_as_ms(compute if mean['queue'] is not None else None)} | "
                    f"{_us_as_ms(summary.get('0.5'))} | {_us_as_ms(summary.get('0.99'))} |")
    return rows + [""]


def _gateway_table(results: dict) -> list[str]:
    if not results.get("gateway"):
        return []
    rows = ["## Gateway", "", "| experiment/model | requests by status | p50 ms | p95 ms | p99 ms |",
            "|---|---|---|---|---|"]
    for key, f in sorted(results["gateway"].items()):
        q = f["latency_s"]
        codes = ", ".join(f"{c}: {n}" for c, n in sorted(f["codes"].items()))
        rows.append(f"| {key} | {codes} | {_ms(q.get('0.5'))} | {_ms(q.get('0.95'))} | {_ms(q.get('0.99'))} |")
    return rows + [""]


def _steps_table(results: dict) -> list[str]:
    steps = results.get("steps") or {}
    if not steps.get("steps"):
        return []
    plan = steps["plan"]
    pace = plan.get("user_rps") or 0
    rows = [f"## Steps (SLO: p{plan['slo_quantile'] * 100:g} <= {plan['slo_ms']:g} ms; "
            f"stopped: {steps.get('stop_reason') or 'bound reached'})", "",
            "| users | offered/s | success/s | error rate | p50 ms | p95 ms | p99 ms | verdict |",
            "|---|---|---|---|---|---|---|---|"]
    for s in steps["steps"]:
        q = s.get("latency_s", {})
        offered = f"{s['users'] * pace:.1f}" if pace > 0 else "closed loop"
        rows.append(f"| {s['users']} | {offered} | {s['rps']:.1f} | {s['error_rate']:.2%} | {_ms(q.get('0.5'))} | "
                    f"{_ms(q.get('0.95'))} | {_ms(q.get('0.99'))} | {s['verdict']} |")
    return rows + [""]


def capacity_lines(results: dict) -> list[str]:
    cap = results.get("capacity")
    if not cap:
        return []
    slo, best, bend, plan = cap["slo"], cap["max_sustainable"], cap["knee"], cap["plan"]
    rows = [f"## Capacity (SLO: p{slo['quantile'] * 100:g} <= {slo['latency_s'] * 1e3:g} ms, "
            f"errors <= {slo['max_error_rate']:.1%})", ""]
    rows.append("- knee of the latency-throughput curve: " + (
        f"{bend['rps']:.1f} req/s at {bend['users']} users" if bend else "not found (too few or flat points)"))
    if best is None:
        return rows + ["- no step met the SLO: no sustainable throughput, no plan", ""]
    rows.append(f"- max sustainable throughput per replica: {best['rps']:.1f} req/s "
                f"({best['users']} users, p{slo['quantile'] * 100:g} {_ms(best['latency_s'])} ms)")
    planned = cap.get("planned_from") or best
    if planned != best:
        rows.append(f"- planned from the next lower step, {planned['rps']:.1f} req/s ({planned['users']} users): the "
                    "confirmation at the max sustainable step missed")
    rows.append(f"- per instance: {plan['instance_rps']:.1f} req/s ({plan['instances_per_replica']} per replica)")
    if plan["target_rps"] > 0:
        rows.append(f"- for {plan['target_rps']:g} req/s with {plan['headroom']:.0%} headroom: "
                    f"**{plan['replicas']} replica(s)**, {_num(plan['cost_per_million'], '.3f')} per million "
                    f"inferences at {plan['price_per_instance_hour']:g} per instance-hour")
    attempts = results.get("confirmations") or ([results["confirmation"]] if results.get("confirmation") else [])
    if attempts:
        q = f"p{slo['quantile'] * 100:g}"
        rows += ["", f"| confirmation at the planned load per replica | predicted req/s (step less headroom) | "
                     f"measured req/s | {q} ms (SLO {_ms(slo['latency_s'])}) | errors | SLO |",
                 "|---|---|---|---|---|---|"]
        for n, conf in enumerate(attempts, 1):
            rows.append(f"| {n}: {conf['seconds']:g} s, {conf['users']} users | {conf['predicted_rps']:.1f} | "
                        f"{conf['measured_rps']:.1f} | {_ms(conf['measured_latency_s'])} | {conf['error_rate']:.2%} "
                        f"| {'met' if conf['met'] else 'MISSED'} |")
    return rows + [""]


def write(results_json: Path) -> Path:
    return write_page(results_json, markdown)
