from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from build.card import ModelCard
from build.pipeline import DEFAULT_TRAIN_BUDGET_TMACS, BuildOptions, Outcome, Status
from build.report import budget_line, markdown, pareto_front, report_data, write_report
from build.variants import VARIANTS
from build.zoo import ZooBuild
from serving.manifest import ModelEntry
from tests.conftest import CIFAR, PRE

PROVENANCE = {"hardware": {"machine": "x86_64", "cores": 2, "isa": ["avx512_vnni"], "gpu": None},
              "teacher": {"sha256": "ab" * 32}, "code_version": "abc123", "dataset": {"checksum": "c"}}


def _entry(variant: str, top1: float, b1_ms: float, b64_ips: float, base_b1: float = 8.0,
           base_b64: float = 160.0, runtime: str = "onnxruntime", ran: str | None = None) -> dict:
    suffix = "" if runtime == "onnxruntime" else f"_{runtime}"
    return {"runtime_info": {"precision_ran": ran} if ran else {},
        "model": f"r18_{variant}{suffix}", "variant": variant, "runtime": runtime, "parent": "fp32", "family": "r18",
        "version": 1, "io": {"input": "images", "input_dims": list(CIFAR), "output": "logits"}, "max_batch_size": 64,
        "baseline": "r18_fp32", "precision": VARIANTS[variant].precision if variant in VARIANTS else "fp32",
        "recipe": ["x", "publish:onnxruntime"], "accuracy": {"top1": top1, "images": 10000},
        "size_mb": 10.0, "compressed_mb": 9.0, "metrics": {"params": 1000, "macs": 5_000_000}, "flags": {},
        "memory": {"model_peak_mb": 50.0},
        "speed": {"latency_b1_p50_ms": b1_ms, "latency_b1_p99_ms": b1_ms * 2, "throughput_b64_ips": b64_ips,
                  "speedup_b1": round(base_b1 / b1_ms, 3), "speedup_b64": round(b64_ips / base_b64, 3)},
    }


def _build(*entries: dict, rejected: dict | None = None, profile: str = "default",
           not_applicable: dict | None = None) -> ZooBuild:
    card = ModelCard("r18", "builtin:resnet18", CIFAR, PRE.mean, PRE.std)
    # the entries as the build makes them: typed, through the manifest's reader
    outcomes = [Outcome(e["variant"], Status.OK, model=e["model"], runtime=e["runtime"],
                        entry=ModelEntry.from_dict(e, e["model"])) for e in entries]
    outcomes += [Outcome(k, Status.FAIL, why) for k, why in (rejected or {}).items()]
    outcomes += [Outcome(k, Status.SKIPPED, why) for k, why in (not_applicable or {}).items()]
    return ZooBuild(card, [f"c{i}" for i in range(10)], BuildOptions(profile=profile), PROVENANCE, outcomes)


def test_runtimes_form_a_matrix_with_their_own_targets_and_recommendations() -> None:
    fp32 = _entry("fp32", 0.87, 8.0, 160.0)
    ov_int8 = _entry("int8", 0.869, 1.0, 1760.0, runtime="openvino")
    ov_int8["metrics"]["macs"] = 557_000_000
    bf16 = _entry("fp32", 0.866, 2.0, 900.0, runtime="openvino_bf16")
    data = report_data(_build(fp32, ov_int8, bf16, rejected={"r18_pruned_openvino": "could not convert"},
                              not_applicable={"r18_int8_openvino_bf16": "INT8 runs on openvino"}))
    targets = {t["target"]: t for t in data["targets"]}
    assert targets["INT8 efficiency parity"]["status"] == "no peak", "targets follow peaks, and none was measured"
    assert data["efficiency"] is None, "no peak was measured"
    text = markdown(data, charts=False)
    assert "| int8 | – | 11.00x, 86.90% | n/a |" in text
    best = [r for r in data["recommendations"] if r["budget_points"] == 0.5 and r["goal"] == "throughput"]
    assert best[0]["model"] == "r18_int8_openvino" and "11.00x fp32 at batch 64" in best[0]["reason"]


def _with_peaks(build: ZooBuild, gmacs: dict[str, float]) -> ZooBuild:
    build.provenance = {**PROVENANCE, "peaks": {"gmacs_per_s": gmacs, "runs": {k: [v] for k, v in gmacs.items()},
                                                "unmeasured": {"bf16_avx512": "this CPU lacks avx512_bf16"}}}
    return build


AMX = {"fp32_avx512": 200.0, "fp32_avx2": 100.0, "int8_amx": 2000.0, "int8_avx512_vnni": 800.0, "bf16_amx": 1000.0}


def test_each_model_is_a_share_of_the_peak_of_the_precision_it_ran_in() -> None:
    fp32 = _entry("fp32", 0.87, 8.0, 160.0, ran="fp32")
    ort_int8 = _entry("int8", 0.87, 2.0, 560.0)  # no kernel record: judged by its variant
    ov_int8 = _entry("int8", 0.87, 1.0, 1760.0, runtime="openvino", ran="int8")
    bf16 = _entry("fp32", 0.87, 2.0, 720.0, runtime="openvino_bf16", ran="bf16")
    ov_fp32 = _entry("fp32", 0.87, 8.0, 150.0, runtime="openvino", ran="f32")
    pruned = _entry("pruned", 0.86, 4.0, 400.0, ran="fp32")
    for entry in (fp32, ort_int8, ov_int8, bf16, ov_fp32, pruned):
        entry["metrics"]["macs"] = 557_000_000
    eff = report_data(_with_peaks(_build(fp32, ort_int8, ov_int8, bf16, ov_fp32, pruned), AMX))["efficiency"]
    # 557 MMACs x 160 img/s = 89 GMAC/s of the 200 FP32 peak; x 1760 = 980 of the 2000 AMX-INT8 peak; ...
    shares = {m["model"]: (m["precision"], m["kernel"], m["share"]) for m in eff["models"]}
    assert shares == {"r18_fp32": ("fp32", "fp32_avx512", 0.445), "r18_int8": ("int8", "int8_amx", 0.156),
                      "r18_int8_openvino": ("int8", "int8_amx", 0.49),
                      "r18_fp32_openvino_bf16": ("bf16", "bf16_amx", 0.401),
                      "r18_fp32_openvino": ("fp32", "fp32_avx512", 0.417)}, "pruned is no reference model"
    how = {m["model"]: m["determined_by"] for m in eff["models"]}
    assert how["r18_int8"] == "the variant's declared precision (no kernel record)"
    assert how["r18_fp32"] == "ONNX Runtime's profiled convolution ops"
    assert eff["peak_ratios"] == {"int8": 10.0, "bf16": 5.0}
    text = markdown(report_data(_with_peaks(_build(fp32, ov_int8), AMX)), charts=False)
    assert "| r18_int8_openvino | int8 | OpenVINO's convolution kernels | 980 | int8_amx | 2000 | 49.0% |" in text
    assert "The INT8 peak (int8_amx) is 10.0x the FP32 peak (fp32_avx512)" in text
    assert "(GMAC/s: fp32_avx512 200; fp32_avx2 100; int8_amx 2000; int8_avx512_vnni 800; bf16_amx 1000)" in text
    assert "Not measured: bf16_avx512: this CPU lacks avx512_bf16." in text


def test_parity_targets_follow_the_measured_peak_ratio() -> None:
    """INT8:FP32 peaks 2000:200 = 10, so INT8 must reach 0.8 x 10 = 8x fp32; BF16 1000:200 = 5, so 4x."""
    fp32 = _entry("fp32", 0.870, 8.0, 160.0, ran="fp32")
    fast_int8 = _entry("int8", 0.869, 1.0, 1360.0, runtime="openvino", ran="int8")  # 8.5x
    slow_int8 = _entry("int8", 0.870, 2.0, 560.0, ran="int8")  # 3.5x
    bf16 = _entry("fp32", 0.867, 2.0, 720.0, runtime="openvino_bf16", ran="bf16")  # 4.5x, 0.3 points lost
    data = report_data(_with_peaks(_build(fp32, fast_int8, slow_int8, bf16), AMX))
    targets = {t["target"]: t for t in data["targets"]}
    int8, bf = targets["INT8 efficiency parity"], targets["BF16 efficiency parity"]
    assert (int8["model"], int8["min_speedup_b64"], int8["speedup_b64"], int8["status"]) == \
        ("r18_int8_openvino", 8.0, 8.5, "met")
    assert int8["basis"] == "0.8 x the INT8:FP32 peak ratio 10.00 (int8_amx / fp32_avx512)"
    assert (bf["min_speedup_b64"], bf["speedup_b64"], bf["status"]) == (4.0, 4.5, "missed"), "0.3 > 0.2 points"
    # On a CPU without AMX the INT8 peak is VNNI's: 800:200 = 4, so 3.2x is enough for the slow model.
    vnni = {"fp32_avx512": 200.0, "int8_avx512_vnni": 800.0}
    targets = {t["target"]: t for t in report_data(_with_peaks(_build(fp32, slow_int8), vnni))["targets"]}
    assert (targets["INT8 efficiency parity"]["min_speedup_b64"], targets["INT8 efficiency parity"]["status"]) == \
        (3.2, "met")
    assert targets["BF16 efficiency parity"] == {"target": "BF16 efficiency parity", "status": "no peak",
                                                 "why": "no BF16 peak was measured on this CPU"}
    text = markdown(report_data(_with_peaks(_build(fp32, slow_int8), vnni)), charts=False)
    assert "| BF16 efficiency parity | – | – | – | – | no peak: no BF16 peak was measured on this CPU |" in text
    assert "INT8 efficiency parity: the minimum speed-up is 0.8 x the INT8:FP32 peak ratio 4.00" in text


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


def test_the_distilled_target_takes_the_fastest_student_of_the_ladder_within_budget() -> None:
    fp32 = _entry("fp32", 0.917, 8.0, 160.0)
    wide = _entry("distilled", 0.900, 1.2, 930.0)          # 5.8x, 1.7 points
    small = _entry("distilled_resnet20", 0.875, 0.5, 2000.0)  # 12.5x, but 4.2 points
    data = report_data(_build(fp32, wide, small))
    target = next(t for t in data["targets"] if t["target"] == "distilled")
    assert (target["model"], target["status"]) == ("r18_distilled", "met")
    text = markdown(data, charts=False)
    assert "| 2.0 pts | throughput | r18_distilled |" in text, "the fastest model within each budget is listed"
    front = text.split("The accuracy–latency Pareto front")[1].split("\n## ")[0]
    assert [line.split(" | ")[0] for line in front.splitlines() if line.startswith("| r18_")] == \
        ["| r18_distilled_resnet20", "| r18_distilled", "| r18_fp32"]


def test_each_training_run_is_listed_once_with_where_it_came_from_and_the_data_it_saw() -> None:
    run = {"student": "widenet", "temperature": 4.0, "alpha": 0.5, "epochs": 50, "run_key": "k1",
           "shipped": "widenet_distilled_k1.pt", "trained_on": "AMD EPYC x1 threads", "train_seconds": 600,
           "data_checksum": "other"}
    student, child = _entry("distilled", 0.89, 1.0, 1000.0), _entry("distilled_int8", 0.89, 0.5, 3000.0)
    student["metrics"] = {**student["metrics"], "distillation": run}
    qat = {"steps": 300, "lr": 0.001, "layers_fake_quantized": 8, "batchnorm_folded": 8, "weights": "QInt8",
           "inputs": "QUInt8", "run_key": "k2", "trained_in_build": True, "train_seconds": 90}
    child["metrics"] = {**child["metrics"], "distillation": run, "qat": qat}
    data = report_data(_build(_entry("fp32", 0.91, 8.0, 160.0), child, student))
    assert data["training_runs"] == [
        {"run_key": "k1", "variant": "distilled", "technique": "distillation", "shipped": "widenet_distilled_k1.pt",
         "trained_on": "AMD EPYC x1 threads", "train_seconds": 600, "budget": None, "data": "other bytes (other)"},
        {"run_key": "k2", "variant": "distilled_int8", "technique": "qat", "shipped": None, "trained_on": None,
         "train_seconds": 90, "budget": None, "data": "this build's"}]
    section = markdown(data, charts=False).split("## Training runs")[1]
    assert "| distilled | distillation | `widenet_distilled_k1.pt` | AMD EPYC x1 threads | 10.0 | other" in section
    assert "| distilled_int8 | qat | trained in this build | this machine | 1.5 | this build's |" in section


def test_a_run_the_budget_cut_says_so_and_how_to_lift_it() -> None:
    cut: dict[str, Any] = {"variant": "pruned", "technique": "pruning",
           "budget": {"tmacs": DEFAULT_TRAIN_BUDGET_TMACS, "recipe_steps": 1375, "steps": 212}}
    assert budget_line(cut) == (
        "- pruned (pruning): trained 212 of 1,375 recipe steps: the default budget of 8 TMAC for a card that ships "
        "no runs; `--train-budget none` or `--profile long` for the full recipe.")
    assert "a budget of 2.5 TMAC" in (budget_line({**cut, "budget": {**cut["budget"], "tmacs": 2.5}}) or "")
    assert budget_line({**cut, "budget": {"tmacs": 8.0, "recipe_steps": 40, "steps": 40}}) is None  # within it
    assert budget_line({**cut, "budget": None}) is None  # shipped, or no budget


def test_the_training_runs_section_lists_the_runs_the_budget_cut() -> None:
    qat = {"steps": 3, "lr": 0.001, "layers_fake_quantized": 8, "batchnorm_folded": 8, "weights": "QInt8",
           "inputs": "QUInt8", "run_key": "k2", "trained_in_build": True, "train_seconds": 60,
           "train_budget": {"tmacs": 8.0, "recipe_steps": 8, "steps": 3}}
    child = _entry("distilled_int8", 0.89, 0.5, 3000.0)
    child["metrics"] = {**child["metrics"], "qat": qat}
    data = report_data(_build(_entry("fp32", 0.91, 8.0, 160.0), child))
    assert data["training_runs"][0]["budget"] == qat["train_budget"]
    section = markdown(data, charts=False).split("## Training runs")[1]
    assert "- distilled_int8 (qat): trained 3 of 8 recipe steps: the default budget of 8 TMAC" in section
