from __future__ import annotations

import json
from pathlib import Path

from build.pipeline import BuildOptions
from build.report import markdown, pareto_front, report_data, write_report
from build.zoo import ZooBuild

PROVENANCE = {"hardware": {"machine": "x86_64", "cores": 2, "isa": ["avx512_vnni"], "gpu": None},
              "teacher": {"sha256": "ab" * 32}, "code_version": "abc123", "dataset": {"checksum": "c"}}


def _entry(variant: str, top1: float, b1_ms: float, b64_ips: float, base_b1: float = 8.0,
           base_b64: float = 160.0) -> dict:
    return {
        "model": f"r18_{variant}", "variant": variant, "runtime": "onnxruntime", "parent": "fp32",
        "recipe": ["x", "publish:onnxruntime"], "accuracy": {"top1": top1, "images": 10000},
        "size_mb": 10.0, "compressed_mb": 9.0, "metrics": {"params": 1000, "macs": 5_000_000}, "flags": {},
        "memory": {"model_peak_mb": 50.0},
        "speed": {"latency_b1_p50_ms": b1_ms, "latency_b1_p99_ms": b1_ms * 2, "throughput_b64_ips": b64_ips,
                  "speedup_b1": round(base_b1 / b1_ms, 3), "speedup_b64": round(b64_ips / base_b64, 3)},
    }


def _build(*entries: dict, rejected: dict | None = None, profile: str = "default") -> ZooBuild:
    return ZooBuild({}, rejected or {}, {e["model"]: e for e in entries}, BuildOptions(profile=profile), PROVENANCE)


def test_drops_are_points_against_fp32_and_targets_are_judged() -> None:
    data = report_data(_build(
        _entry("fp32", 0.87, 8.0, 160.0), _entry("int8", 0.868, 2.0, 650.0), _entry("pruned", 0.85, 4.0, 400.0),
        _entry("pruned_int8", 0.866, 1.0, 1700.0), _entry("distilled_int8", 0.80, 0.5, 5000.0),
    ))
    rows = {r["variant"]: r for r in data["models"]}
    assert rows["int8"]["drop_points"] == 0.2 and rows["pruned"]["drop_points"] == 2.0
    targets = {t["target"]: t for t in data["targets"]}
    assert targets["int8"]["status"] == "met"
    assert targets["pruned"]["status"] == "missed", "2 points lost is over the 1-point budget"
    assert targets["distilled"]["status"] == "not built"
    # The fastest combination loses 7 points, so the best one within budget is judged.
    assert targets["best combination"]["model"] == "r18_pruned_int8"
    assert targets["best combination"]["status"] == "met"


def test_pareto_front_keeps_only_undominated_models() -> None:
    rows = [{"model": m, "latency_b1_p50_ms": lat, "top1": acc}
            for m, lat, acc in [("a", 1.0, 0.80), ("b", 2.0, 0.85), ("c", 3.0, 0.84), ("d", 4.0, 0.87)]]
    assert [r["model"] for r in pareto_front(rows)] == ["a", "b", "d"]


def test_report_files_and_quick_profile_warning(tmp_path: Path) -> None:
    build = _build(_entry("fp32", 0.1, 8.0, 160.0), _entry("int8", 0.1, 2.0, 650.0),
                   rejected={"pruned": "verification failed"}, profile="quick")
    paths = write_report(build, tmp_path)
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert (tmp_path / "speedup.png").read_bytes()[:4] == b"\x89PNG"
    data = json.loads((tmp_path / "zoo_report.json").read_text())
    assert data["rejected"] == {"pruned": "verification failed"} and data["accuracy_meaningful"] is False
    text = markdown(data, charts=True)
    assert "accuracies are meaningless" in text and "**pruned**: verification failed" in text
    assert "| r18_int8 | 10.00% | +0.00 |" in text


def test_report_without_speed_measurements_has_no_charts(tmp_path: Path) -> None:
    entry = _entry("fp32", 0.87, 8.0, 160.0)
    del entry["speed"]
    paths = write_report(_build(entry), tmp_path)
    assert [p.name for p in paths] == ["zoo_report.json", "zoo_report.md"]
