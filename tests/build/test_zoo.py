from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import onnx
import pytest

import build.steps.publish
from build.data import load_dataset
from build.errors import ModelRejected, VariantRejected, ZooError
from build.hardware import detect
from build.models import build_classifier, save_weights
from build.pipeline import BuildOptions, Outcome, Status
from build.profiles import options_for
from build.report import report_data, write_report
from build.repository.model_config import from_pbtxt
from build.runtimes import make_runtime
from build.runtimes.openvino import OpenVinoRuntime
from build.steps.distill import DistillConfig
from build.steps.prune import PruneConfig
from build.steps.quantize import Int8Config
from build.steps.sparsify import SparsityConfig
from build.zoo import build_order, check_published, student_config
from tests.conftest import CIFAR, PRE, build_one, models_of

FAST = BuildOptions(verify_images=100, measure_speed=False, threads=1, train_runs=True)


def test_fp32_build_publishes_a_complete_triton_model(tmp_path: Path, teacher: Path, mini_archive: Path) -> None:
    repo = tmp_path / "repo"
    data = load_dataset(str(mini_archive), CIFAR)
    result = build_one(data, teacher, repo, ["fp32"], ["onnxruntime"], FAST, log=lambda _: None)
    assert result.outcomes == [Outcome("fp32", Status.OK, model="tiny_fp32", runtime="onnxruntime",
                                       entry=result.entries["tiny_fp32"]), Outcome("fp32", Status.OK)]
    assert result.states["fp32"].recipe == ("from_teacher", "export_onnx", "optimize_graph", "publish:onnxruntime")
    folder = repo / "tiny_fp32"
    assert (folder / "1" / "model.onnx").exists()
    assert (folder / "labels.txt").read_text().split() == data.classes
    assert from_pbtxt((folder / "config.pbtxt").read_text()).name == "tiny_fp32"
    entry = models_of(repo)["tiny_fp32"]
    assert entry["variant"] == "fp32" and entry["runtime"] == "onnxruntime" and entry["parent"] == "teacher"
    assert entry["dataset"]["checksum"] == data.checksum and entry["code_version"]
    assert entry["accuracy"]["images"] == len(data.test) and 0 <= entry["accuracy"]["top1"] <= 1
    assert entry["accuracy"]["prefix"]["images"] == len(data.test), "the prefix is capped at the test set"
    nodes = entry["metrics"]["graph"]["nodes"]
    assert nodes["exported"] > nodes["exporter_optimized"] >= nodes["published"] > 0
    assert entry["verification"]["top1_agreement"] == 1.0 and entry["verification"]["max_abs_logit_diff"] < 1e-3
    assert entry["size_mb"] > 0 and entry["metrics"]["params"] > 0
    # A rebuild is the next version of the same model.
    build_one(data, teacher, repo, ["fp32"], ["onnxruntime"], FAST, log=lambda _: None)
    assert models_of(repo)["tiny_fp32"]["version"] == 2
    assert sorted(p.name for p in folder.iterdir()) == ["2", "config.pbtxt", "labels.txt"]


def test_failing_step_publishes_nothing(tmp_path: Path, teacher: Path, mini_archive: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    data = load_dataset(str(mini_archive), CIFAR)
    build_one(data, teacher, repo, ["fp32"], ["onnxruntime"], FAST, log=lambda _: None)
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}

    def broken_verify(*args, **kwargs):
        raise ZooError("verification failed for tiny_fp32: injected")

    monkeypatch.setattr("build.steps.publish.verify", broken_verify)
    with pytest.raises(ZooError, match="injected"):
        build_one(data, teacher, repo, ["fp32"], ["onnxruntime"], FAST, log=lambda _: None)
    assert {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()} == before


def test_teacher_for_other_classes_is_refused(tmp_path: Path, tiny_arch: str, mini_archive: Path) -> None:
    path = tmp_path / "t.pt"
    save_weights(build_classifier(tiny_arch, 10, PRE), path, {"arch": tiny_arch, "classes": ["a", "b"]})
    with pytest.raises(ZooError, match="trained on classes"):
        build_one(load_dataset(str(mini_archive), CIFAR), path, tmp_path / "repo", ["fp32"], ["onnxruntime"], FAST)
    assert not (tmp_path / "repo").exists()


def test_unknown_variant_or_runtime(tmp_path: Path, teacher: Path, mini_archive: Path) -> None:
    with pytest.raises(ZooError, match="unknown variant or runtime \\['fp64', 'tvm'\\]"):
        build_one(load_dataset(str(mini_archive), CIFAR), teacher, tmp_path / "repo", ["fp64"], ["tvm"], FAST)


def test_build_order_puts_parents_first_and_publishes_only_what_was_asked() -> None:
    assert build_order(["int8"]) == [("fp32", False), ("int8", True)]
    assert build_order(["int8", "fp32", "fp16"]) == [("fp32", True), ("int8", True), ("fp16", True)]


def test_int8_and_fp16_are_verified_and_published(tmp_path: Path, teacher: Path, mini_archive: Path) -> None:
    repo = tmp_path / "repo"
    mini = load_dataset(str(mini_archive), CIFAR)
    data = dataclasses.replace(mini, val=mini.test)  # 300 images to calibrate on
    options = dataclasses.replace(FAST, configs=(Int8Config(calibration_images=100, check_images=100),))
    result = build_one(data, teacher, repo, ["int8", "fp16"], ["onnxruntime"], options, log=lambda _: None)
    assert list(result.entries) == ["tiny_int8", "tiny_fp16"] and list(result.states) == ["int8", "fp16"]
    manifest = models_of(repo)
    assert "tiny_fp32" not in manifest, "a parent built only as a source is not published"
    int8 = manifest["tiny_int8"]
    assert int8["parent"] == "fp32" and int8["recipe"][:2] == ["from:fp32", "quantize_static_int8"]
    assert int8["metrics"]["quantization"]["format"] == "QDQ" and int8["verification"]["top1_agreement"] >= 0.95
    assert int8["metrics"]["quantization"]["validation"]["images"] == 100
    proto = onnx.load(str(repo / "tiny_int8" / "1" / "model.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    fp16 = onnx.load(str(repo / "tiny_fp16" / "1" / "model.onnx"))
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert fp16.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in fp16.graph.initializer)


def test_too_small_calibration_set_fails_before_any_step_runs(tmp_path: Path, teacher: Path,
                                                               mini_archive: Path) -> None:
    # The mini archive holds only 10 validation images: far below the calibration minimum.
    ran: list[str] = []
    with pytest.raises(ZooError, match="needs at least 64 validation images.*has 10"):
        build_one(load_dataset(str(mini_archive), CIFAR), teacher, tmp_path / "repo", ["fp32", "int8"], ["onnxruntime"],
                  FAST, log=ran.append)
    assert ran == [] and not (tmp_path / "repo" / "manifest.json").exists()


def test_every_technique_builds_measures_and_reports(tmp_path: Path, teacher: Path, mini_archive: Path,
                                                     micro_student: str) -> None:
    repo = tmp_path / "repo"
    mini = load_dataset(str(mini_archive), CIFAR)
    data = dataclasses.replace(mini, val=mini.test)
    options = dataclasses.replace(FAST, measure_speed=True, profile="quick", max_train_steps=2, configs=(
        Int8Config(calibration_images=100, check_images=100), DistillConfig(student=micro_student),
        PruneConfig(iterations=2)))
    wanted = ["fp32", "pruned", "sparse", "pruned_distilled_int8"]
    result = build_one(data, teacher, repo, wanted, ["onnxruntime"], options, log=lambda _: None)
    manifest = models_of(repo)
    assert sorted(manifest) == sorted(f"tiny_{v}" for v in wanted) and result.rejected == {}
    pruning = manifest["tiny_pruned"]["metrics"]["pruning"]
    assert pruning["macs_reduction"] >= 2.5 and manifest["tiny_pruned"]["metrics"]["macs"] == pruning["macs_after"]
    assert abs(manifest["tiny_sparse"]["metrics"]["sparsity"]["achieved"] - 0.8) < 0.01
    combo = manifest["tiny_pruned_distilled_int8"]
    assert combo["recipe"] == ["from:pruned_distilled", "quantize_static_int8", "publish:onnxruntime"]
    assert combo["parent"] == "pruned_distilled"
    assert {"distillation", "pruning", "quantization"} <= set(combo["metrics"]), "the lineage's metrics travel"
    for entry in manifest.values():
        assert entry["speed"]["throughput_b64_ips"] > 0 and entry["memory"]["model_peak_mb"] > 0
        assert entry["speed"]["speedup_b64"] > 0
    assert manifest["tiny_fp32"]["speed"]["speedup_b64"] == 1.0
    assert "dense runtimes" in manifest["tiny_sparse"]["flags"]["hardware"]

    paths = write_report(result, tmp_path / "report")
    assert {p.name for p in paths} == {"zoo_report.json", "zoo_report.md", "speedup.png", "accuracy_vs_latency.png"}
    report = json.loads((tmp_path / "report" / "zoo_report.json").read_text())
    assert report["baseline"] == "tiny_fp32" and not report["accuracy_meaningful"]
    assert {r["model"] for r in report["models"]} == set(manifest)
    assert "accuracies are meaningless" in (tmp_path / "report" / "zoo_report.md").read_text()


def _reject(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = build.steps.publish.verify

    def verify(name, *args):
        if name == model:
            raise VariantRejected(f"verification failed for {name}: injected")
        return real(name, *args)

    monkeypatch.setattr("build.steps.publish.verify", verify)


def test_every_runtime_publishes_where_it_applies(tmp_path: Path, teacher: Path, mini_archive: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    convert = OpenVinoRuntime.prepare

    def fail_on_int8(self: OpenVinoRuntime, onnx_path: Path, out_dir: Path) -> list[Path]:
        if "int8" in str(out_dir):
            raise ModelRejected("OpenVINO could not convert model.onnx: injected")
        return convert(self, onnx_path, out_dir)

    monkeypatch.setattr(OpenVinoRuntime, "prepare", fail_on_int8)
    mini = load_dataset(str(mini_archive), CIFAR)
    data = dataclasses.replace(mini, val=mini.test)
    options = dataclasses.replace(FAST, configs=(Int8Config(calibration_images=100, check_images=100),))
    runtimes = ["onnxruntime", "openvino", "openvino_bf16"]
    logged: list[str] = []
    result = build_one(data, teacher, tmp_path / "repo", ["fp32", "fp16", "int8"], runtimes, options,
                       log=logged.append)
    manifest = models_of(tmp_path / "repo")
    assert "injected" in result.rejected["tiny_int8_openvino"], "only that model is left out"
    assert manifest["tiny_fp32_openvino"]["runtime_info"]["precision_ran"] == "f32"
    assert from_pbtxt((tmp_path / "repo" / "tiny_fp32_openvino" / "config.pbtxt").read_text()).backend == "openvino"
    no_bf16 = make_runtime("openvino_bf16").unavailable_reason(detect())
    if no_bf16:  # a CPU without BF16 kernels: the runtime is skipped, with the reason, and the rest publish
        assert f"skipping runtime openvino_bf16: {no_bf16}" in logged
        assert sorted(manifest) == ["tiny_fp16", "tiny_fp32", "tiny_fp32_openvino", "tiny_int8"]
        assert sorted(result.not_applicable) == ["tiny_fp16_openvino"]
        return
    assert sorted(manifest) == ["tiny_fp16", "tiny_fp32", "tiny_fp32_openvino", "tiny_fp32_openvino_bf16",
                                "tiny_int8"]
    assert sorted(result.not_applicable) == ["tiny_fp16_openvino", "tiny_fp16_openvino_bf16",
                                             "tiny_int8_openvino_bf16"]
    bf16 = manifest["tiny_fp32_openvino_bf16"]["runtime_info"]
    assert bf16["precision_ran"] in ("bf16", "f32"), "f32 where the CPU has no BF16 kernels"
    assert bf16["settings"]["INFERENCE_PRECISION_HINT"] == "bf16"


def test_rejected_variant_is_left_out_and_the_others_publish(tmp_path: Path, teacher: Path, mini_archive: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _reject("tiny_fp16", monkeypatch)
    repo = tmp_path / "repo"
    mini = load_dataset(str(mini_archive), CIFAR)
    data = dataclasses.replace(mini, val=mini.test)
    options = dataclasses.replace(FAST, configs=(Int8Config(calibration_images=100, check_images=100),))
    result = build_one(data, teacher, repo, ["fp32", "fp16", "int8"], ["onnxruntime"], options, log=lambda _: None)
    assert sorted(models_of(repo)) == ["tiny_fp32", "tiny_int8"]
    assert not (repo / "tiny_fp16").exists()
    assert "injected" in result.rejected["fp16"]
    assert "injected" in report_data(result)["rejected"]["fp16"]


def test_a_rejected_parent_takes_its_descendants_with_it(tmp_path: Path, teacher: Path, mini_archive: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _reject("tiny_fp32", monkeypatch)
    data = load_dataset(str(mini_archive), CIFAR)
    result = build_one(data, teacher, tmp_path / "repo", ["fp32", "fp16"], ["onnxruntime"], FAST,
                       log=lambda _: None)
    assert result.entries == {} and result.rejected["fp16"] == "its parent fp32 was rejected"


def test_the_floor_refuses_a_broken_variant_never_the_users_own_model(tmp_path: Path, teacher: Path,
                                                                       mini_archive: Path) -> None:
    # A floor no model can meet (each would have to beat its parent by 100 points): the fp32, the user's own model,
    # is published all the same, and the derived fp16 is rejected with the reason.
    data = load_dataset(str(mini_archive), CIFAR)
    options = dataclasses.replace(FAST, max_drop_points=-100.0)
    result = build_one(data, teacher, tmp_path / "repo", ["fp32", "fp16"], ["onnxruntime"], options,
                       log=lambda _: None)
    assert "tiny_fp32" in result.entries and "fp32" not in result.rejected
    assert "points below its parent's" in result.rejected["fp16"]
    broken = dataclasses.replace(result, outcomes=[o for o in result.outcomes if o.model != "tiny_fp32"])
    with pytest.raises(ZooError, match="published no model for tiny \\(tiny: fp16: .* points below its parent"):
        check_published([broken])


def test_a_student_no_smaller_than_the_teacher_is_not_built_and_says_why(tmp_path: Path, teacher: Path,
                                                                          mini_archive: Path) -> None:
    """resnet20 is larger than the tiny test teacher: distilled and what derives from it are left out, not the
    build."""
    options = dataclasses.replace(FAST, configs=(DistillConfig(student="resnet20"),))
    result = build_one(load_dataset(str(mini_archive), CIFAR), teacher, tmp_path / "repo",
                       ["fp32", "distilled", "pruned_distilled"], ["onnxruntime"], options,
                       left_out={"sparse": "no dense runtime serves it faster"})
    assert "tiny_fp32" in result.entries and result.rejected == {}
    assert result.not_applicable["sparse"] == "no dense runtime serves it faster", "the default set says what it left"
    assert "no fewer than the teacher's" in result.not_applicable["distilled"]
    assert result.not_applicable["pruned_distilled"] == "its parent distilled was not built"


@pytest.mark.parametrize(("config", "message"), [
    (PruneConfig(ratio=1.5), "pruning ratio must lie in \\(0, 1\\)"),
    (PruneConfig(importance="random"), "unknown pruning importance"),
    (SparsityConfig(sparsity=0.0), "sparsity must lie in \\(0, 1\\)"),
    (DistillConfig(student="vgg"), "unknown student architecture"),
])
def test_bad_settings_fail_before_any_step_runs(tmp_path: Path, teacher: Path, mini_archive: Path,
                                                config: object, message: str) -> None:
    ran: list[str] = []
    options = dataclasses.replace(FAST, configs=(config,))
    with pytest.raises(ZooError, match=message):
        build_one(load_dataset(str(mini_archive), CIFAR), teacher, tmp_path / "repo", ["fp32", "pruned", "sparse",
                  "distilled"], ["onnxruntime"], options, log=ran.append)
    assert ran == []


@pytest.mark.parametrize(("overrides", "student", "epochs"), [
    ([], "widenet", None),  # None: the recipe's own
    (["distill.student=resnet20"], "resnet20", 60.0),
    (["distill.epochs=7"], "widenet", 7.0),
])
def test_invoke_distill_trains_the_ladders_recipe_with_what_set_names_on_top(overrides: list[str], student: str,
                                                                             epochs: float | None) -> None:
    from build.variants import distill_config

    cfg = student_config(options_for("default", overrides))
    assert (cfg.student, cfg.epochs) == (student, epochs or distill_config(student).epochs)


def test_a_card_that_ships_no_runs_leaves_the_ladder_students_out_of_the_default_set_unless_named() -> None:
    from build.variants import VARIANTS
    from build.zoo import _ladder_without_runs

    ladder = {n for n, v in VARIANTS.items() if v.ladder}
    assert ladder == {"distilled_resnet20", "distilled_mobilenetv2"}, "the default student is not a ladder rung"
    user, builtin = False, True  # whether the card ships its training runs
    by_default = frozenset(VARIANTS)
    why = _ladder_without_runs("distilled_resnet20", user, by_default)
    assert why and "--variants default,distilled_resnet20" in why, "it says how to build it"
    assert _ladder_without_runs("distilled", user, by_default) is None, "the default student is distilled"
    assert _ladder_without_runs("distilled_resnet20", builtin, by_default) is None, "shipped runs: the whole ladder"
    assert _ladder_without_runs("distilled_resnet20", user, frozenset()) is None, "named: built"
