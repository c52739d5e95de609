"""A Grafana dashboard for the same PromQL a load run is read back with (loadtest/metrics/promql.py's series queries).

Generated, not hand-written, so the dashboard and the report cannot drift apart: every panel's expression is one of
`series_queries`, with Grafana's `$__rate_interval` as the rate window. Import the JSON into Grafana and pick the
Prometheus data source that scrapes Triton, the gateway and Locust's exporter (jobs triton, gateway, locust).
"""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.metrics.promql import series_queries

RATE = "$__rate_interval"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PANELS = {  # query name -> (title, unit, legend)
    "triton_inferences_per_s": ("Triton inferences/s", "ops", "{{model}}"),
    "locust_requests_per_s": ("Locust requests/s by outcome", "reqps", "{{outcome}}"),
    "locust_p95_s": ("Locust p95 latency (failures included)", "s", "p95"),
    "triton_queue_us_per_request": ("Triton queue time per request", "µs", "{{model}}"),
    "triton_compute_us_per_request": ("Triton compute time per request", "µs", "{{model}}"),
    "triton_avg_batch_size": ("Triton average batch size", "none", "{{model}}"),
}


def panel(index: int, name: str, expr: str) -> dict:
    title, unit, legend = PANELS.get(name, (name, "none", ""))
    return {"id": index + 1, "type": "timeseries", "title": title, "datasource": DATASOURCE,
            "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": "A", "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}]}


def dashboard() -> dict:
    queries = series_queries(RATE)
    return {
        "title": "tritonzoo load test", "uid": "tritonzoo-load", "schemaVersion": 39, "version": 1,
        "time": {"from": "now-15m", "to": "now"}, "refresh": "5s", "tags": ["tritonzoo", "triton", "locust"],
        "templating": {"list": [{"name": "datasource", "label": "Prometheus", "type": "datasource",
                                 "query": "prometheus"}]},
        "panels": [panel(i, name, expr) for i, (name, expr) in enumerate(queries.items())],
    }


def write_dashboard(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n")
    return path
