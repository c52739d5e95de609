from __future__ import annotations

import json
from pathlib import Path

from build.card import ModelCard
from build.pipeline import BuildOptions
from build.report import markdown, pareto_front, report_data, write_report
from build.zoo import ZooBuild
from tests.conftest import CIFAR, PRE

PROVENANCE = {"hardware": {"machine": "x86_64", "cores": 2, "isa": ["avx512_vnni"], "gpu": None},
              "teacher": {"sha256": "ab" * 32}, "code_version": "abc123", "dataset": {"checksum": "c"}}


def _entry(variant: str, top1: float, b1_ms: float, b64_ips: float, base_b1: float = 8.0,
           base_b64: float = 160.0, runtime: str = "onnxruntime") -> dict:
    suffix = "" if runtime == "onnxruntime" else f"_{runtime}"
    return {
        "model": f"r18_{variant}{suffix}", "variant": variant, "runtime": runtime, "parent": "fp32",
        "recipe": ["x", "publish:onnxruntime"], "accuracy": {"top1": top1, "images": 10000},
        "size_mb": 10.0, "compressed_mb": 9.0, "metrics": {"params": 1000, "macs": 5_000_000}, "flags": {},
        "memory": {"model_peak_mb": 50.0},
        "speed": {"latency_b1_p50_ms": b1_ms, "latency_b1_p99_ms": b1_ms * 2, "throughput_b64_ips": b64_ips,
                  "speedup_b1": round(base_b1 / b1_ms, 3), "speedup_b64": round(b64_ips / base_b64, 3)},
    }


def _build(*entries: dict, rejected: dict | None = None, profile: str = "default",
           not_applicable: dict | None = None) -> ZooBuild:
    card = ModelCard("r18", "builtin:resnet18", CIFAR, PRE.mean, PRE.std)
    return ZooBuild({}, rejected or {}, {e["model"]: e for e in entries}, BuildOptions(profile=profile),
                    PROVENANCE, not_applicable or {}, card, [f"c{i}" for i in range(10)])


def test_runtimes_form_a_matrix_with_their_own_targets_and_recommendations() -> None:
    fp32 = _entry("fp32", 0.87, 8.0, 160.0)
    ov_int8 = _entry("int8", 0.869, 1.0, 1760.0, runtime="openvino")
    ov_int8["metrics"]["macs"] = 557_000_000
    bf16 = _entry("fp32", 0.866, 2.0, 900.0, runtime="openvino_bf16")
    data = report_data(_build(fp32, ov_int8, bf16, rejected={"r18_pruned_openvino": "could not convert"},
                              not_applicable={"r18_int8_openvino_bf16": "INT8 runs on openvino"}))
    targets = {t["target"]: t for t in data["targets"]}
    assert targets["OpenVINO int8"]["status"] == "met" and targets["OpenVINO int8"]["speedup_b64"] == 11.0
    assert targets["OpenVINO bf16"]["status"] == "missed", "0.4 points lost is over the 0.2-point budget"
    assert data["efficiency"] is None, "no peak was measured"
    text = markdown(data, charts=False)
    assert "| int8 | – | 11.00x, 86.90% | n/a |" in text
    best = [r for r in data["recommendations"] if r["budget_points"] == 0.5 and r["goal"] == "throughput"]
    assert best[0]["model"] == "r18_int8_openvino" and "11.00x fp32 at batch 64" in best[0]["reason"]


def test_efficiency_is_a_share_of_the_measured_peaks() -> None:
    ov_int8 = _entry("int8", 0.87, 1.0, 1760.0, runtime="openvino")
    fp32 = _entry("fp32", 0.87, 8.0, 160.0)
    for entry in (ov_int8, fp32):
        entry["metrics"]["macs"] = 557_000_000
    build = _build(fp32, ov_int8)
    build.provenance = {**PROVENANCE, "peaks": {"gmacs_per_s": {"fp32_avx512": 200.0, "int8_amx": 2000.0},
                                                "runs": {"fp32_avx512": [200.0], "int8_amx": [1900.0, 2000.0, 4000.0]}}}
    eff = report_data(build)["efficiency"]
    # 557 MMACs x 1760 img/s = 980 GMAC/s on AMX; x 160 img/s = 89 GMAC/s on AVX-512.
    assert [(m["model"], m["share"]) for m in eff["models"]] == [("r18_fp32", 0.445), ("r18_int8_openvino", 0.49)]
    assert eff["target"] == {"model": "r18_int8_openvino", "share": 0.49, "min_share": 0.35, "status": "met"}
    assert eff["int8_amx_over_fp32_peak"] == 10.0
    text = markdown(report_data(build), charts=False)
    assert "| r18_int8_openvino | int8_amx | 980 | 2000 | 49.0% |" in text
    assert "The AMX-INT8 peak is 10.0x the AVX-512 FP32 peak" in text
    assert "(GMAC/s: fp32_avx512 200; int8_amx 1900, 2000, 4000)" in text, "every peak run is shown"


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
    assert "| r18_int8 | onnxruntime | – | 10.00% | +0.00 |" in text


def test_report_without_speed_measurements_has_no_charts(tmp_path: Path) -> None:
    entry = _entry("fp32", 0.87, 8.0, 160.0)
    del entry["speed"]
    paths = write_report(_build(entry), tmp_path)
    assert [p.name for p in paths] == ["zoo_report.json", "zoo_report.md"]


def test_qat_settings_are_described() -> None:
    from build.report import _details

    text = _details({"qat": {"steps": 300, "lr": 0.01, "layers_fake_quantized": 22, "batchnorm_folded": 19,
                             "weights": "QInt8 per-channel symmetric", "inputs": "QUInt8 per-tensor affine"}})
    assert text.startswith("Quantization-aware fine-tuning: 300 steps at lr 0.01, 22 layers")
    assert "19 BatchNorms folded" in text


def test_student_families_are_compared_side_by_side() -> None:
    fp32 = _entry("fp32", 0.87, 8.0, 160.0)
    students = []
    families = (("distilled", "resnet20", 41_000_000), ("distilled_mobilenetv2", "mobilenetv2", 29_000_000))
    for variant, arch, macs in families:
        e = _entry(variant, 0.85, 1.0, 2000.0)
        e["metrics"] = {"params": 500_000, "macs": macs, "distillation": {
            "student": arch, "macs_reduction_vs_teacher": None, "temperature": 4.0, "alpha": 0.5, "epochs": 60}}
        students.append(e)
    text = markdown(report_data(_build(fp32, *students)), charts=False)
    section = text.split("## Student families")[1].split("\n## ")[0]
    assert "| distilled | resnet20 | 41.0 |" in section and "| distilled_mobilenetv2 | mobilenetv2 | 29.0 |" in section
    assert "+2.00" in section
