"""The release registry and `invoke verify-release`'s parts, without building a release's environment (the e2e test
tests/e2e/test_release_e2e.py builds one and runs the whole check on a quick build)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2

from serving.deploy import verify_release as vr
from serving.manifest import read_manifest, write_manifest
from serving.release import DEFAULT, ENV, RELEASES, ReleaseError, release_named, target_release
from tests.serving.deploy.conftest import write_repository

PROTO = Path(model_config_pb2.__file__)


def test_the_default_release_is_known_and_every_release_names_all_its_versions() -> None:
    assert DEFAULT in RELEASES and release_named(DEFAULT).image == f"nvcr.io/nvidia/tritonserver:{DEFAULT}-py3"
    for release in RELEASES.values():
        assert all(getattr(release, f) for f in ("server", "tensorrt", "onnxruntime", "openvino", "cuda",
                                                 "min_driver", "tensorrt_wheel"))
        assert release.runtime_wheels() == [f"onnxruntime=={release.onnxruntime}", f"openvino=={release.openvino}"]


def test_the_target_release_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert target_release().name == DEFAULT
    monkeypatch.setenv(ENV, "24.10")
    assert target_release().server == "2.51.0"
    monkeypatch.setenv(ENV, "23.01")
    with pytest.raises(ReleaseError, match="unknown Triton release '23.01'; known: 24.10"):
        target_release()


def test_a_plan_matches_a_release_on_major_minor_patch() -> None:
    release = release_named("26.07")
    assert release.tensorrt_matches("10.14.1.48") and release.tensorrt_matches("10.14.1")
    assert not release.tensorrt_matches("10.14.0") and not release.tensorrt_matches("11.4.0.106")


def _with_trt_version(repo: Path, version: str | None) -> Path:
    manifest = read_manifest(repo)
    entry = manifest.models["m_fp16_tensorrt"]
    manifest.models["m_fp16_tensorrt"] = replace(entry, runtime_info={"version": version} if version else {})
    write_manifest(repo, manifest)
    return repo


@pytest.mark.parametrize("version, status, says", [
    (None, "FAIL", "does not say which TensorRT"),
    ("10.14.1.48", "SKIP", "= the release's"),
    ("11.4.0.106", "FAIL", "plan built by TensorRT 11.4.0.106; Triton 26.07 has TensorRT 10.14.1.48"),
])
def test_plans_are_not_run_but_their_tensorrt_version_is_checked(repo: Path, version, status, says) -> None:
    jobs, rows = vr.plan(_with_trt_version(repo, version), release_named("26.07"))
    assert sorted((j.model, j.runtime) for j in jobs) == [
        ("m_fp32", "onnxruntime"), ("m_int8_openvino", "openvino"), ("wide_fp32", "onnxruntime")]
    assert [(r.model, r.status) for r in rows] == [("m_fp16_tensorrt", status)] and says in rows[0].problem
    if version == "11.4.0.106":
        assert "tensorrt-cu13==10.14.1.48" in rows[0].action


def _relu(path: Path, ir_version: int = 10, opset: int = 18) -> Path:
    node = helper.make_node("Relu", ["images"], ["logits"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [None, 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _job(tmp: Path, name: str, ir_version: int = 10, config: str = 'name: "x"\n') -> vr.Job:
    (tmp / name).mkdir(parents=True, exist_ok=True)
    (tmp / name / "config.pbtxt").write_text(config)
    return vr.Job(name, "onnxruntime", _relu(tmp / name / "1" / "model.onnx", ir_version), "images",
                  tmp / name / "config.pbtxt", {})


def test_the_worker_runs_models_and_reports_load_and_config_errors(tmp_path: Path) -> None:
    """The worker in this interpreter: logits for a model it loads, the runtime's message for one it cannot, the
    proto's message for a config field the proto lacks."""
    jobs = [_job(tmp_path, "good"), _job(tmp_path, "future", ir_version=99),
            _job(tmp_path, "odd", config='name: "x"\nno_such_field: 1\n')]
    images = {j.model: np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4) for j in jobs}
    results, logits = vr.run_worker(Path(sys.executable), jobs, images, PROTO, tmp_path / "work")
    assert np.array_equal(logits["good"], np.maximum(images["good"], 0))
    assert results["good"]["load_error"] == "" and results["good"]["config_error"] == ""
    assert "future" not in logits and "version" in results["future"]["load_error"].lower()
    assert "no_such_field" in results["odd"]["config_error"]


RELEASE = release_named("26.07")
JOB = vr.Job("m", "onnxruntime", Path("m/1/model.onnx"), "images", Path("m/config.pbtxt"), {})
OK = {"version": "1.27.0", "load_error": "", "run_error": "", "config_error": ""}
REFERENCE = {**OK, "version": "1.32.0"}
LOGITS = np.array([[1.0, 2.0, 0.0], [3.0, 0.0, 1.0]], np.float32)


def test_a_model_that_agrees_passes() -> None:
    row = vr.compare(JOB, RELEASE, REFERENCE, LOGITS, OK, LOGITS + 1e-4)
    assert (row.status, row.loads, row.agree) == ("PASS", "yes", "2/2") and float(row.max_diff) == pytest.approx(1e-4)


def test_a_model_the_release_cannot_load_fails_and_says_what_to_do() -> None:
    refused = {**OK, "load_error": "Unsupported model IR version: 14, max supported IR version: 13"}
    row = vr.compare(JOB, RELEASE, REFERENCE, LOGITS, refused, None)
    assert (row.status, row.loads) == ("FAIL", "no") and "IR version: 14" in row.problem
    assert row.action.startswith("export at a lower IR version (ONNX Runtime 1.27.0")
    ov_job = vr.Job("o", "openvino", Path("o/1/model.xml"), "images", Path("o/config.pbtxt"), {})
    row = vr.compare(ov_job, RELEASE, REFERENCE, LOGITS, {**refused, "version": "2026.2.0"}, None)
    assert "write the IR with OpenVINO 2026.2.0" in row.action


def test_outputs_that_differ_fail_with_both_measures() -> None:
    flipped = LOGITS[:, ::-1].copy()
    row = vr.compare(JOB, RELEASE, REFERENCE, LOGITS, OK, flipped)
    assert row.status == "FAIL" and row.agree == "1/2" and "outputs differ" in row.problem


def test_a_config_the_release_refuses_fails_even_when_outputs_agree() -> None:
    row = vr.compare(JOB, RELEASE, REFERENCE, LOGITS, {**OK, "config_error": "unknown field x"}, LOGITS)
    assert row.status == "FAIL" and row.config == "unknown field x" and "model_config.proto" in row.problem


def test_a_wrong_runtime_version_in_the_environment_fails() -> None:
    row = vr.compare(JOB, RELEASE, REFERENCE, LOGITS, {**OK, "version": "1.26.0"}, LOGITS)
    assert row.status == "FAIL" and "not 1.27.0" in row.problem


def test_the_table_has_a_row_per_model_and_a_line_per_failure() -> None:
    rows = [vr.Row("a", "onnxruntime", "PASS", "yes", "32/32", "0.00e+00"),
            vr.Row("b", "openvino", "FAIL", "no", problem="cannot read", action="write the IR again"),
            vr.Row("c", "tensorrt", "SKIP", problem="not run here")]
    text = vr.table(rows, RELEASE).splitlines()
    assert text[0].startswith("Triton 26.07 (2.71.0): ONNX Runtime 1.27.0, OpenVINO 2026.2.0")
    assert text[1].split() == list(vr.COLUMNS) and [line.split()[0] for line in text[2:5]] == ["a", "b", "c"]
    assert "FAIL b: cannot read -> write the IR again" in text and text[-1] == "1 passed, 1 failed, 1 not run"


def test_a_built_environment_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / RELEASE.name
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").touch()
    (env / vr.MARKER).write_text(json.dumps({"requirements": vr.requirements(RELEASE),
                                             "tritonclient": RELEASE.server}))
    monkeypatch.setattr(vr.subprocess, "run", lambda *a, **k: pytest.fail("rebuilt a cached environment"))
    assert vr.release_env(RELEASE, tmp_path, log=lambda _: None) == env


def test_pip_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Done:
        returncode, stderr = 1, "WARNING: x\nERROR: No matching distribution found for openvino==2026.2.0\n"

    monkeypatch.setattr(vr.subprocess, "run", lambda *a, **k: Done())
    with pytest.raises(vr.VerifyError, match="could not create the virtual environment .*No matching distribution"):
        vr.release_env(RELEASE, tmp_path, log=lambda _: None)


def test_the_sample_is_fixed_noise_without_data(repo: Path) -> None:
    jobs, _ = vr.plan(write_repository(repo), RELEASE)
    first, again = vr.sample(repo, jobs, None), vr.sample(repo, jobs, None)
    assert all(np.array_equal(first[m], again[m]) for m in first)
    assert first["wide_fp32"].shape == (vr.SAMPLE, 3, 48, 48) and first["m_fp32"].dtype == np.uint8


@pytest.mark.parametrize("args, words", [
    (["--release", "9.9"], ["unknown Triton release '9.9'", "known: 24.10"]),
    (["--repo", "/nonexistent"], ["manifest.json not found"]),
])
def test_invoke_verify_release_reports_a_user_error_in_one_line(repo: Path, args: list[str], words: list[str]) -> None:
    from tests.test_tasks import assert_one_line_error, invoke

    args = args if "--repo" in args else [*args, "--repo", str(repo)]
    assert_one_line_error(invoke("verify-release", *args), *words)


def test_a_build_for_an_unknown_release_fails_in_one_line(tmp_path: Path) -> None:
    import os

    from tests.conftest import MINI_ARCHIVE
    from tests.test_tasks import invoke

    env = {**os.environ, ENV: "23.01", "TRITONZOO_CACHE": str(tmp_path / "cache")}
    proc = invoke("build", "--profile", "quick", "--variants", "fp32", "--runtimes", "onnxruntime", "--data",
                  str(MINI_ARCHIVE), "--repo", str(tmp_path / "repo"), "--report", str(tmp_path / "report"), env=env)
    # The decoding progress bar comes first: the release is read where the build publishes.
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "unknown Triton release '23.01'" in errors[0], proc.stderr
    assert not (tmp_path / "repo" / "manifest.json").exists()
