"""End to end on the real tritonserver: publish, serve, and compare with the in-process model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from build.data import load_dataset
from build.evaluate import torch_logits
from build.hardware import detect
from build.models import build_classifier, load_weights, save_weights
from build.pipeline import BuildOptions
from build.runtimes import make_runtime
from build.variants import VARIANTS
from serving.client import TritonClassifier
from serving.manifest import load_manifest
from serving.triton import TritonConfig, TritonServer, is_ready
from tests.conftest import CIFAR, MINI_ARCHIVE, PRE, ROOT, build_one, full_data_spec
from tests.e2e.stack import SHIPPED_TEACHER, Stack

pytestmark = pytest.mark.e2e
IMAGES = 500
MODEL = "resnet18_fp32"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory):
    """The shipped teacher (random weights if it is absent) built into a fresh repository."""
    root = tmp_path_factory.mktemp("e2e")
    data = load_dataset(full_data_spec() or str(MINI_ARCHIVE), CIFAR, root / "cache")
    teacher = SHIPPED_TEACHER
    if not teacher.exists():
        teacher = root / "teacher.pt"
        save_weights(build_classifier("resnet18", 10, PRE), teacher, {"arch": "resnet18", "classes": data.classes})
    repo = root / "repo"
    build_one(data, teacher, repo, ["fp32"], ["onnxruntime"],
              BuildOptions(verify_images=200, eval_images=IMAGES, measure_speed=False), log=lambda _: None,
              name="resnet18")
    return data, teacher, repo


@pytest.fixture(scope="module")
def server(workspace):
    _, _, repo = workspace
    with TritonServer(TritonConfig.on_free_ports(repo)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    c = TritonClassifier(server.cfg.grpc_url)
    yield c
    c.close()


def test_served_logits_match_in_process_models(workspace, client) -> None:
    data, teacher, repo = workspace
    images = data.test.images[:IMAGES]
    served = client.predict_all(MODEL, images)
    session = ort.InferenceSession(str(next((repo / MODEL).glob("*/model.onnx"))), providers=["CPUExecutionProvider"])
    in_process = session.run(None, {"images": images})[0]
    assert np.abs(served - in_process).max() < 1e-4
    model, _ = load_weights(teacher, PRE)
    torch_ref = torch_logits(model, images)
    assert np.abs(served - torch_ref).max() < 1e-2
    assert (served.argmax(1) == torch_ref.argmax(1)).mean() >= 0.998


def test_served_accuracy_equals_build_accuracy(workspace, client) -> None:
    data, _, repo = workspace
    test = data.test.head(IMAGES)
    served = (client.predict_all(MODEL, test.images).argmax(1) == test.labels).mean()
    assert abs(served - load_manifest(repo)[MODEL].top1) <= 0.001


def test_classification_extension_returns_labels(workspace, client) -> None:
    data, _, _ = workspace
    images = data.test.images[:4]
    top = client.top_k(MODEL, images, k=3)
    logits = client.logits(MODEL, images)
    for row, expected in zip(top, logits.argmax(1)):
        score, index, label = row[0].split(":")
        assert int(index) == expected and label == data.classes[expected] and len(row) == 3


@pytest.mark.parametrize("shape,dtype,message", [
    ((1, 3, 28, 28), np.uint8, "shape"),
    ((1, 3, 32, 32), np.float32, "data-type"),
    ((65, 3, 32, 32), np.uint8, "batch"),
])
def test_bad_requests_get_triton_errors_and_server_keeps_serving(workspace, server, client, shape, dtype, message):
    data, _, _ = workspace
    raw = grpcclient.InferenceServerClient(server.cfg.grpc_url)
    inp = grpcclient.InferInput("images", list(shape), "UINT8" if dtype == np.uint8 else "FP32")
    inp.set_data_from_numpy(np.zeros(shape, dtype))
    with pytest.raises(InferenceServerException, match=message):
        raw.infer(MODEL, [inp])
    assert is_ready(server.cfg.http_url)
    assert client.logits(MODEL, data.test.images[:2]).shape == (2, 10)


def server_processes(repo: Path) -> str:
    """tritonserver and its Python backend stubs (their command lines name the model folder)."""
    pattern = f"(bin/tritonserver|triton_python_backend_stub).*{repo}"
    return subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout


def test_invoke_serve_stops_cleanly_on_ctrl_c(workspace, tmp_path: Path) -> None:
    repo = shutil.copytree(workspace[2], tmp_path / "repo")  # its own path, to tell its processes apart
    stack = Stack(repo, tmp_path / "experiments.json")
    assert "triton_python_backend_stub" in server_processes(repo)
    stack.stop()
    time.sleep(0.5)
    assert stack.process is not None and stack.process.returncode is not None
    assert not server_processes(repo), "processes left behind"


def test_zoo_main_job_end_to_end(workspace, tmp_path: Path) -> None:
    """The README's main command in its quick profile: build and report, serve, check every model, shut down."""
    _, teacher, _ = workspace
    repo, report = tmp_path / "repo", tmp_path / "report"
    # int8 calibrates on 512 validation images: the full dataset has them, the 400-image slice does not.
    variants = "all" if full_data_spec() else "fp32,fp16,pruned,sparse,distilled"
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "zoo", "--profile", "quick", "--teacher", str(teacher), "--repo", str(repo),
         "--report", str(report), "--variants", variants, "--data", full_data_spec() or str(MINI_ARCHIVE)],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((report / "zoo_report.json").read_text())
    published = {r["variant"] for r in data["models"]}
    wanted = set(VARIANTS) if full_data_spec() else set(variants.split(","))
    assert published | set(data["rejected"]) == wanted, "every variant is published, or the report says why not"
    assert {"fp32", "pruned", "distilled"} <= published and not data["accuracy_meaningful"]
    hardware = detect()
    usable = {n for n in ("onnxruntime", "openvino", "openvino_bf16")
              if not make_runtime(n).unavailable_reason(hardware)}
    assert {r["runtime"] for r in data["models"]} == usable, "every runtime this CPU can run (BF16 needs its kernels)"
    assert all(r["speedup_b64"] > 0 and r["peak_memory_mb"] > 0 for r in data["models"])
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("resnet18_")]
    assert sorted(row[0] for row in rows) == sorted(r["model"] for r in data["models"])
    for row in rows:  # served accuracy equals the build's on the same images
        assert row[3] == row[4], row
    summary = proc.stdout.splitlines()[-1]  # where the time went: the total, then the longest phases
    assert summary.startswith("time: ") and summary.count(" s") >= 4, summary
    assert not server_processes(repo), "processes left behind"
