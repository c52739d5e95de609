from __future__ import annotations

import json
from pathlib import Path

from loadtest.capacity import Slo, plan_capacity
from loadtest.report import write_report
from tests.loadtest.test_capacity import STEPS


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
    for name, partial, capacity in (("step-m", None, True), ("cut", "interrupted", False)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "loadtest.json").write_text(json.dumps(run(partial, capacity)))
    md, page = write_report(tmp_path)
    text = md.read_text()
    assert "| step-m | m | 420.0 | 30.10 | 400.0 |" in text and "PARTIAL RESULTS" in text
    assert (tmp_path / "step-m-curve.png").stat().st_size > 0 and (tmp_path / "cut-series.png").exists()
    assert "(PARTIAL)" in page.read_text() and 'src="step-m-curve.png"' in page.read_text()
