from __future__ import annotations

import json
from pathlib import Path

from loadtest.metrics.grafana import RATE, write_dashboard
from loadtest.metrics.promql import series_queries


def test_dashboard_panels_are_the_reports_queries(tmp_path: Path) -> None:
    board = json.loads(write_dashboard(tmp_path / "d.json").read_text())
    exprs = [p["targets"][0]["expr"] for p in board["panels"]]
    assert exprs == list(series_queries(RATE).values())
    assert all("$__rate_interval" in e for e in exprs)
    assert len({p["id"] for p in board["panels"]}) == len(exprs)
    assert board["templating"]["list"][0]["type"] == "datasource"
    assert len({(p["gridPos"]["x"], p["gridPos"]["y"]) for p in board["panels"]}) == len(exprs)  # no overlap


def test_series_queries_take_the_rate_window() -> None:
    queries = series_queries("4s")
    assert "[4s]" in queries["locust_p95_s"] and "compute_infer" in queries["triton_compute_us_per_request"]
