from __future__ import annotations

import json
from pathlib import Path

from loadtest.report.run import markdown, write
from loadtest.runs.collect import write_results

PARTIAL = {"spec": {"target": "http", "shape": "constant", "models": [], "processes": 1}, "partial": "interrupted",
           "window": {"seconds": 2.0}, "locust": {"requests": {"m": {"success": 10.0, "failure": 2.0}},
                                                  "latency_s": {"m": {"0.5": 0.0012}}}, "triton": {}}


def test_results_are_written_as_json_and_rendered_beside_it(tmp_path: Path) -> None:
    json_path = write_results(PARTIAL, tmp_path / "out")
    written = json.loads(json_path.read_text())
    assert json_path.name == "loadtest.json" and written["provenance"]["report"] == "loadtest"
    assert {k: v for k, v in written.items() if k != "provenance"} == PARTIAL
    md_path = write(json_path)
    assert md_path.name == "loadtest.md" and md_path.read_text() == markdown(written)
