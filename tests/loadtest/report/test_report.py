from __future__ import annotations

import json
from pathlib import Path

from loadtest.analysis.capacity import Slo, plan_capacity
from loadtest.report.combined import write_report
from tests.loadtest.analysis.test_capacity import STEPS


def run(partial: str | None, capacity: bool) -> dict:
    results = {"spec": {"target": "http", "shape": "step", "models": ["m"], "processes": 1}, "partial": partial,
               "window": {"start": 100.0, "end": 110.0, "seconds": 10.0},
               "locust": {"requests": {"m": {"success": 90.0, "failure": 1.0}}, "latency_s": {}}, "triton": {},
               "series": {"triton_inferences_per_s": [{"labels": {"model": "m"}, "points": [[100, 5.0], [101, None]]}],
                          "locust_p95_s": [{"labels": {}, "points": [[100, 0.004], [101, 0.005]]}]}}
    if capacity:
        results["capacity"] = plan_capacity(STEPS, Slo(0.05), 1000, 0.2, 0.5, 1)
    return results


def test_report_has_capacity_table_charts_and_partial_marks(tmp_path: Path) -> None:
    for name, partial, capacity in (("step-m", None, True), ("step-n", None, True), ("cut", "interrupted", False)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "loadtest.json").write_text(json.dumps(run(partial, capacity)))
    md, page = write_report(tmp_path)
    text = md.read_text()
    assert "| step-m | m | 420.0 | 30.10 | 400.0 |" in text and "PARTIAL RESULTS" in text
    assert (tmp_path / "step-m-curve.png").stat().st_size > 0 and (tmp_path / "cut-series.png").exists()
    assert "(PARTIAL)" in page.read_text() and 'src="step-m-curve.png"' in page.read_text()
    assert "![curves](curves.png)" in text and (tmp_path / "curves.png").stat().st_size > 0  # the runs side by side


def experiment_run() -> dict:
    from tests.loadtest.analysis.test_abstats import hist

    results = run(None, False)
    results["spec"] = {"target": "experiment", "shape": "constant", "models": ["a", "b"], "processes": 1}
    results["locust"] = {"requests": {"ab:a": {"success": 95.0, "failure": 5.0},
                                      "ab:b": {"success": 100.0, "failure": 0.0}},
                         "latency_s": {}, "latency_buckets": {"ab:a": hist([0.001] * 50 + [0.003] * 50, [0.002, 0.004]),
                                                              "ab:b": hist([0.001] * 100, [0.002, 0.004])}}
    return results


def test_report_gathers_zoo_charts_saturation_ab_headroom_config_search_and_grafana(tmp_path: Path) -> None:
    root, reports = tmp_path / "loadtest", tmp_path
    (root / "ab-run").mkdir(parents=True)
    (root / "ab-run" / "loadtest.json").write_text(json.dumps(experiment_run()))
    (reports / "zoo").mkdir()
    (reports / "zoo" / "speedup.png").write_bytes(b"png")
    (reports / "served").mkdir()
    (reports / "served" / "saturation.json").write_text(json.dumps({
        "plan": {"batch": 64, "in_flight": 4, "rounds": 3, "seconds": 10.0}, "baseline": "a",
        "machine": {"cpu": "Some Xeon", "logical_cpus": 2, "amx": False},
        "models": {"a": {"served_ips": 300.0, "rounds_ips": [299.0, 300.0], "failed_requests": 0,
                         "speedup_vs_baseline": 1.0, "in_process_ips": 310, "served_over_in_process": 0.97,
                         "client_cores": 0.12, "served_over_in_process_taxed": 1.01}}}))
    write_headroom_and_search(reports)
    md, page = write_report(root)
    text = md.read_text()
    assert "## Load-generator headroom: trivial model" in text  # the sections of its own page, headroom.md
    assert "| locust-1p | 9000 | 0.69x | 0.69x | 0.90x | 0 / 0 |" in text
    assert "(target 0.8x: not met); against wrk beside Locust's extra CPU (wrk+tax): **0.90x**." in text
    assert "## Load-generator headroom: m (loadgen/variants/headroom.json)" in text
    assert "locust-1p: NOT within 10% of wrk; locust-1p: within 10% of wrk+tax." in text
    assert "## Config search: m" in text and "| 8 | 0 | 2 | 150.0 |" in text
    assert (root / "zoo-speedup.png").read_bytes() == b"png" and "![zoo-speedup](zoo-speedup.png)" in text
    assert "| a | 300 | 299, 300 | 1.00x | 310 | 0.97x | 0.12 | 1.01x | 0 |" in text and "on Some Xeon" in text
    assert "## A/B results: ab-run" in text and "| a | 100 | 5 | 50.00% [" in text and "95.00% [" in text
    assert "Against the control arm `a`" in text and "| b | 5.00 pts [" in text
    assert json.loads((root / "grafana-dashboard.json").read_text())["panels"]
    assert "<table>" in page.read_text() and 'src="zoo-speedup.png"' in page.read_text()


def write_headroom_and_search(reports: Path) -> None:
    from dataclasses import asdict

    from loadtest.bench.config_search import SearchPlan, Trial
    from loadtest.bench.headroom import HeadroomPlan, summarize, verdict
    from tests.loadtest.bench.test_headroom import sample

    summary = summarize([sample("wrk", 0, 13000, 110, 20), sample("locust-1p", 0, 9000, 110, 100),
                         sample("wrk+tax", 0, 10000, 110, 20)], 2)
    (reports / "loadgen" / "variants").mkdir(parents=True)
    (reports / "loadgen" / "headroom.json").write_text(json.dumps({
        "plan": asdict(HeadroomPlan()), "cpu_count": 2, "partial": None,
        "trivial": {"summary": summary, "verdict": verdict(summary, 2)}}))
    (reports / "loadgen" / "variants" / "headroom.json").write_text(json.dumps({
        "plan": asdict(HeadroomPlan()), "cpu_count": 2, "partial": None,
        "trivial": {"summary": {"wrk": summary["wrk"]}, "verdict": {}},
        "variants": {"m": {"summary": summary, "within_10pct": {"locust-1p": False},
                           "within_10pct_taxed": {"locust-1p": True}}}}))
    (reports / "config_search").mkdir()
    trial = {"max_batch_size": 8, "max_queue_delay_us": 0, "instances": 2, "rps": 150.0, "p50_ms": 2.0,
             "p95_ms": 4.0, "p99_ms": None, "avg_batch": 1.5, "failures": 0, "meets_slo": True}
    (reports / "config_search" / "m.json").write_text(json.dumps({
        "model": "m", "repo": "r", "partial": None, "plan": asdict(SearchPlan()), "current": asdict(Trial(64, 200, 1)),
        "chosen": asdict(Trial(8, 0, 2)), "decision": "best", "written": True,
        "manifest_max_batch_size": 8, "trials": [trial]}))
