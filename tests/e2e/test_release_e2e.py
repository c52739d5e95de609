"""`invoke verify-release` on a quick build, in the pinned release's own runtime wheels (CI runs it: `invoke test
--all`). The release's environment is built once per machine under $TRITONZOO_RELEASES, else
~/.cache/tritonzoo/releases (about 20 s and 250 MB of wheels the first time), and reused after."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from build.data import load_dataset
from build.hardware import detect
from build.models import build_classifier, save_weights
from build.pipeline import BuildOptions
from build.runtimes import make_runtime
from build.steps.quantize import Int8Config
from serving.manifest import read_manifest
from serving.release import DEFAULT
from tests.conftest import CIFAR, MINI_ARCHIVE, PRE, ROOT, build_one

pytestmark = pytest.mark.e2e
ENVS = Path(os.environ.get("TRITONZOO_RELEASES") or Path.home() / ".cache" / "tritonzoo" / "releases")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ResNet-20 (fresh weights) as fp32 and static INT8 (QDQ, written by this project's ONNX Runtime quantizer)
    on every CPU runtime this machine runs. The mini archive's validation split is too small to calibrate on, so
    its test split stands in, as in the other INT8 tests."""
    root = tmp_path_factory.mktemp("release")
    mini = load_dataset(str(MINI_ARCHIVE), CIFAR, root / "cache")
    data = dataclasses.replace(mini, val=mini.test)
    teacher = root / "resnet20.pt"
    save_weights(build_classifier("resnet20", 10, PRE), teacher, {"arch": "resnet20", "classes": data.classes})
    runtimes = [n for n in ("onnxruntime", "openvino", "openvino_bf16")
                if not make_runtime(n).unavailable_reason(detect())]
    options = BuildOptions(verify_images=100, eval_images=200, measure_speed=False, threads=1,
                           configs=(Int8Config(calibration_images=100, check_images=100),))
    build_one(data, teacher, root / "repo", ["fp32", "int8"], runtimes, options, name="resnet20")
    return root / "repo"


def verify(repo: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRITONZOO_RELEASES": str(ENVS)}
    return subprocess.run([sys.executable, "-m", "invoke", "verify-release", "--repo", str(repo), "--data",
                           str(MINI_ARCHIVE)], cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)


def rows(stdout: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in stdout.splitlines() if line.startswith("resnet20_")}


def test_the_build_records_the_release_and_the_release_loads_every_model(built: Path) -> None:
    assert read_manifest(built).release_name == DEFAULT
    proc = verify(built)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    table = rows(proc.stdout)
    assert set(table) == set(read_manifest(built).models) and {"resnet20_fp32", "resnet20_int8"} <= set(table)
    assert all(row[2] == "PASS" and row[3] == "yes" and row[6] == "ok" for row in table.values()), proc.stdout


def test_a_model_newer_than_the_releases_onnx_runtime_fails(built: Path, tmp_path: Path) -> None:
    """The same graph stamped with ONNX IR version 14: this project's ONNX Runtime (1.32) loads it, the pinned
    release's (1.27) reads IR 13 at most, so the check fails on that model and says to export lower."""
    repo = tmp_path / "repo"
    shutil.copytree(built, repo)
    path = repo / "resnet20_fp32" / "1" / "model.onnx"
    model = onnx.load(str(path))
    model.ir_version = 14
    onnx.save(model, str(path))
    proc = verify(repo)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    table = rows(proc.stdout)
    assert table["resnet20_fp32"][2:4] == ["FAIL", "no"], proc.stdout
    assert all(row[2] == "PASS" for name, row in table.items() if name != "resnet20_fp32"), proc.stdout
    assert "-> export at a lower IR version" in proc.stdout
