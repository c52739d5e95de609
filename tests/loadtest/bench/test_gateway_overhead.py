from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from loadtest.bench.gateway_overhead import RunResult, Summary, summarize
from loadtest.protocol.payloads import kserve_request
from loadtest.report.gateway import format_report, render, text


def test_kserve_request_is_json_header_then_raw_pixels() -> None:
    image = np.arange(3 * 32 * 32, dtype=np.uint8).reshape(3, 32, 32)
    body, headers = kserve_request(image, "images", "logits")
    n = int(headers["Inference-Header-Content-Length"])
    header = json.loads(body[:n])
    assert header["inputs"][0]["shape"] == [1, 3, 32, 32] and header["inputs"][0]["datatype"] == "UINT8"
    assert header["outputs"][0]["parameters"]["binary_data"] is True
    assert body[n:] == image.tobytes()


def test_summary_takes_medians_over_runs() -> None:
    runs = [RunResult(100, 1.0, [1.0] * 100), RunResult(300, 1.0, [3.0] * 300), RunResult(200, 1.0, [2.0] * 200)]
    s = summarize("x", runs)
    assert s.rps == 200 and s.p50_ms == 2.0 and s.runs == 3


def test_report_gives_ratios_to_the_baseline() -> None:
    report = format_report([Summary("direct", 200, 5.0, 9.0, 3), Summary("gw", 180, 5.5, 9.9, 3)], "direct")
    assert "90.0%" in report.splitlines()[2] and "+0.50" in report.splitlines()[2]


def test_the_printed_tables_are_rendered_from_the_json(tmp_path: Path) -> None:
    levels = {1: [Summary("triton direct", 200, 5.0, 9.0, 3), Summary("gw", 180, 5.5, 9.9, 3)],
              16: [Summary("triton direct", 900, 15.0, 29.0, 3), Summary("gw", 850, 16.0, 30.0, 3)]}
    path = tmp_path / "gateway_overhead.json"
    path.write_text(json.dumps({"results": {str(c): [asdict(s) for s in ss] for c, ss in levels.items()},
                                "client_cpu_ms_per_call": {"triton direct": 0.2, "gw": 0.1}}))
    assert render(path) == text(levels, "triton direct", {"triton direct": 0.2, "gw": 0.1})
    assert "concurrency 16:" in render(path) and "94.4%" in render(path)
