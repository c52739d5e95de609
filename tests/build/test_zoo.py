from __future__ import annotations

from pathlib import Path

import pytest

from build.data import load_dataset
from build.errors import ZooError
from build.models import build_classifier, save_weights
from build.pipeline import BuildOptions
from build.repository.model_config import from_pbtxt
from build.repository.publish import read_manifest
from build.zoo import build_zoo

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
