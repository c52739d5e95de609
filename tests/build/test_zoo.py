from __future__ import annotations

import dataclasses
from pathlib import Path

import onnx
import pytest

from build.data import load_dataset
from build.errors import ZooError
from build.models import build_classifier, save_weights
from build.pipeline import BuildOptions
from build.repository.model_config import from_pbtxt
from build.repository.publish import read_manifest
from build.steps.quantize import Int8Config, QuantizeStatic
from build.steps.source import FromVariant
from build.variants import VARIANTS
from build.zoo import build_order, build_zoo

FAST = BuildOptions(arch="tiny", verify_images=100, measure_speed=False, threads=1)


@pytest.fixture
def teacher(tmp_path: Path, tiny_arch: str, mini_archive: Path) -> Path:
    classes = load_dataset(str(mini_archive)).classes
    path = tmp_path / "teacher.pt"
    save_weights(build_classifier(tiny_arch), path, {"arch": tiny_arch, "num_classes": 10, "classes": classes,
                                                      "test_accuracy": 0.1})
    return path


def test_fp32_build_publishes_a_complete_triton_model(tmp_path: Path, teacher: Path, mini_archive: Path) -> None:
    repo = tmp_path / "repo"
    data = load_dataset(str(mini_archive))
    (state,) = build_zoo(data, teacher, repo, ["fp32"], ["onnxruntime"], FAST, log=lambda _: None)
    assert state.published == ["tiny_fp32"] and state.recipe == ["from_teacher", "export_onnx", "publish:onnxruntime"]
    folder = repo / "tiny_fp32"
    assert (folder / "1" / "model.onnx").exists()
    assert (folder / "labels.txt").read_text().split() == data.classes
    assert from_pbtxt((folder / "config.pbtxt").read_text()).name == "tiny_fp32"
    entry = read_manifest(repo)["models"]["tiny_fp32"]
    assert entry["variant"] == "fp32" and entry["runtime"] == "onnxruntime" and entry["parent"] == "teacher"
    assert entry["dataset"]["checksum"] == data.checksum and entry["code_version"]
    assert entry["accuracy"]["images"] == len(data.test) and 0 <= entry["accuracy"]["top1"] <= 1
    assert entry["verification"]["top1_agreement"] == 1.0 and entry["verification"]["max_abs_logit_diff"] < 1e-3
    assert entry["size_mb"] > 0 and entry["metrics"]["params"] > 0
    # A rebuild is the next version of the same model.
    build_zoo(data, teacher, repo, ["fp32"], ["onnxruntime"], FAST, log=lambda _: None)
    assert read_manifest(repo)["models"]["tiny_fp32"]["version"] == 2
    assert sorted(p.name for p in folder.iterdir()) == ["2", "config.pbtxt", "labels.txt"]


def test_failing_step_publishes_nothing(tmp_path: Path, teacher: Path, mini_archive: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    data = load_dataset(str(mini_archive))
    build_zoo(data, teacher, repo, ["fp32"], ["onnxruntime"], FAST, log=lambda _: None)
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}

    def broken_verify(*args, **kwargs):
        raise ZooError("verification failed for tiny_fp32: injected")

    monkeypatch.setattr("build.steps.publish.verify", broken_verify)
    with pytest.raises(ZooError, match="injected"):
        build_zoo(data, teacher, repo, ["fp32"], ["onnxruntime"], FAST, log=lambda _: None)
    assert {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()} == before


def test_teacher_for_other_classes_is_refused(tmp_path: Path, tiny_arch: str, mini_archive: Path) -> None:
    path = tmp_path / "t.pt"
    save_weights(build_classifier(tiny_arch), path, {"arch": tiny_arch, "classes": ["a", "b"]})
    with pytest.raises(ZooError, match="trained on classes"):
        build_zoo(load_dataset(str(mini_archive)), path, tmp_path / "repo", ["fp32"], ["onnxruntime"], FAST)
    assert not (tmp_path / "repo").exists()


def test_unknown_variant_or_runtime(tmp_path: Path, teacher: Path, mini_archive: Path) -> None:
    with pytest.raises(ZooError, match="unknown variant or runtime \\['fp64', 'tvm'\\]"):
        build_zoo(load_dataset(str(mini_archive)), teacher, tmp_path / "repo", ["fp64"], ["tvm"], FAST)


def test_build_order_puts_parents_first_and_publishes_only_what_was_asked() -> None:
    assert build_order(["int8"]) == [("fp32", False), ("int8", True)]
    assert build_order(["int8", "fp32", "fp16"]) == [("fp32", True), ("int8", True), ("fp16", True)]


def test_int8_and_fp16_are_verified_and_published(tmp_path: Path, teacher: Path, mini_archive: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    mini = load_dataset(str(mini_archive))
    data = dataclasses.replace(mini, val=mini.test)  # 300 images to calibrate on
    calibrate_on_100 = [FromVariant("fp32"), QuantizeStatic(Int8Config(calibration_images=100))]
    monkeypatch.setitem(VARIANTS, "int8", dataclasses.replace(VARIANTS["int8"], steps=lambda: calibrate_on_100))
    options = BuildOptions(arch="tiny", verify_images=100, measure_speed=False, threads=1)
    states = build_zoo(data, teacher, repo, ["int8", "fp16"], ["onnxruntime"], options, log=lambda _: None)
    assert [s.published for s in states] == [["tiny_int8"], ["tiny_fp16"]]
    manifest = read_manifest(repo)["models"]
    assert "tiny_fp32" not in manifest, "a parent built only as a source is not published"
    int8 = manifest["tiny_int8"]
    assert int8["parent"] == "fp32" and int8["recipe"][:2] == ["from:fp32", "quantize_static_int8"]
    assert int8["metrics"]["quantization"]["format"] == "QDQ" and int8["verification"]["top1_agreement"] >= 0.97
    proto = onnx.load(str(repo / "tiny_int8" / "1" / "model.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    fp16 = onnx.load(str(repo / "tiny_fp16" / "1" / "model.onnx"))
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert fp16.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in fp16.graph.initializer)


def test_too_small_calibration_set_fails_before_any_step_runs(tmp_path: Path, teacher: Path,
                                                               mini_archive: Path) -> None:
    # The mini archive holds only 10 validation images: far below the calibration minimum.
    ran = []
    with pytest.raises(ZooError, match="calibration needs 64 to 10 validation images"):
        build_zoo(load_dataset(str(mini_archive)), teacher, tmp_path / "repo", ["fp32", "int8"], ["onnxruntime"],
                  FAST, log=ran.append)
    assert ran == [] and not (tmp_path / "repo" / "manifest.json").exists()
