"""TensorRT for real: engines built by the zoo from its fp32, fp16 and INT8 ONNX files on this machine's GPU, verified
in process, then served by NVIDIA's Triton container from the same repository.

Runs only where `tensorrt` imports and torch sees a CUDA device, and skips elsewhere with that reason. No machine of
this project has both, so this test has never run. Serving needs docker with GPU access and the Triton image that
matches the TensorRT version (see docs/runtimes.md#tensorrt); without them only the serving test skips.

The INT8 variant is quantized here as TensorRT needs it (signed symmetric activations, FP32 biases): the zoo's
default INT8 is made for ONNX Runtime's CPU kernels (UINT8 activations, INT32 biases), which TensorRT refuses.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

import build.steps.quantize as quantize_step
from build.data import load_dataset
from build.hardware import detect
from build.models import build_classifier, save_weights
from build.pipeline import BuildOptions
from build.repository.model_config import from_pbtxt
from build.runtimes import RUNTIMES, make_runtime
from build.runtimes.tensorrt import TensorRTRuntime, plan_filename, triton_container
from build.steps.quantize import METHODS, BatchReader, Int8Config
from serving.client import TritonClassifier
from serving.triton import TritonConfig, is_ready
from tests.conftest import CIFAR, MINI_ARCHIVE, PRE, build_one, full_data_spec, models_of
from tests.e2e.stack import SHIPPED_TEACHER

WHY_NOT = make_runtime("tensorrt").unavailable_reason(detect())
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(WHY_NOT is not None, reason=f"TensorRT cannot run here: {WHY_NOT}")]
VARIANTS = ("fp32", "fp16", "int8")
IMAGES = 500


def gpu_int8(prepared, out, input_name, calibration, cfg, types, exclude) -> None:
    """build.steps.quantize.quantize as TensorRT needs it: QInt8 symmetric activations and weights, FP32 biases,
    and FP32 weights between a Q/DQ pair (the placement TensorRT's explicit-quantization guide shows)."""
    quantize_static(str(prepared), str(out), BatchReader(input_name, calibration), quant_format=QuantFormat.QDQ,
                    per_channel=cfg.per_channel, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=METHODS[cfg.method], nodes_to_exclude=exclude,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                                   "AddQDQPairToWeight": True, "CalibPercentile": cfg.percentile})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory):
    """The shipped teacher (random weights if it is absent) built for ONNX Runtime and TensorRT."""
    root = tmp_path_factory.mktemp("tensorrt")
    data = load_dataset(full_data_spec() or str(MINI_ARCHIVE), CIFAR, root / "cache")
    if len(data.val) < 100:  # the mini archive: calibrate on its test split, as tests/build/test_zoo.py does
        data = dataclasses.replace(data, val=data.test)
    teacher = SHIPPED_TEACHER
    if not teacher.exists():
        teacher = root / "teacher.pt"
        save_weights(build_classifier("resnet18", 10, PRE), teacher, {"arch": "resnet18", "classes": data.classes})
    options = BuildOptions(verify_images=200, eval_images=IMAGES, measure_speed=False,
                           configs=(Int8Config(calibration_images=100, check_images=100),))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(quantize_step, "quantize", gpu_int8)
        patch.setitem(RUNTIMES, "tensorrt", functools.partial(TensorRTRuntime, cache_dir=root / "timing-caches"))
        result = build_one(data, teacher, root / "repo", list(VARIANTS), ["onnxruntime", "tensorrt"], options,
                           name="resnet18")
    return data, root / "repo", result


def test_every_precision_variant_gets_a_verified_plan(workspace) -> None:
    import tensorrt
    import torch

    _, repo, result = workspace
    assert result.rejected == {} and not any(m.endswith("_tensorrt") for m in result.not_applicable)
    manifest = models_of(repo)
    capability = torch.cuda.get_device_capability()
    for variant in VARIANTS:
        entry = manifest[f"resnet18_{variant}_tensorrt"]
        info = entry["runtime_info"]
        assert info["version"] == tensorrt.__version__ and info["compute_capability"] == "{}.{}".format(*capability)
        assert info["precision_ran"] == variant and info["tf32"] is False
        assert info["profile"] == {"min": 1, "opt": 64, "max": entry["max_batch_size"]}
        assert list(entry["files"]) == [plan_filename(capability)]
        assert info["timing_cache"]["reused"] == (variant != "fp32"), "fp32 builds first and saves the timings"
        config = from_pbtxt((repo / entry["model"] / "config.pbtxt").read_text())
        assert config.platform == "tensorrt_plan"
        assert dict(config.cc_model_filenames) == {"{}.{}".format(*capability): plan_filename(capability)}


def _runner(repo: Path, variant: str):
    model = f"resnet18_{variant}_tensorrt"
    return make_runtime("tensorrt").runner(repo / model / str(models_of(repo)[model]["version"]), threads=1)


def _onnx_logits(repo: Path, variant: str, images: np.ndarray) -> np.ndarray:
    path = next((repo / f"resnet18_{variant}").glob("*/model.onnx"))
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": images})[0]


@pytest.mark.parametrize("variant,max_diff,min_agreement", [("fp32", 1e-3, 0.999), ("fp16", 0.05, 0.99),
                                                            ("int8", None, 0.97)])
def test_engines_follow_their_onnx_files(workspace, variant: str, max_diff: float | None,
                                         min_agreement: float) -> None:
    """fp32 within 1e-3 holds only with TF32 off; fp16 and INT8 run the precision their files declare."""
    data, repo, _ = workspace
    images = data.test.images[:IMAGES]
    engine, reference = _runner(repo, variant)(images), _onnx_logits(repo, variant, images)
    assert (engine.argmax(1) == reference.argmax(1)).mean() >= min_agreement
    if max_diff is not None:
        assert np.abs(engine - reference).max() < max_diff


def test_device_timing_and_gpu_memory(workspace) -> None:
    data, repo, _ = workspace
    run = _runner(repo, "fp16")
    for _ in range(20):
        run(data.test.images[:1])
        run(data.test.images[:64])
    speed, memory = run.device_speed(), run.device_memory()
    assert speed["device_throughput_b64_ips"] > 1e3 / speed["device_latency_b1_p50_ms"], "batching pays on a GPU"
    assert memory["gpu_peak_mb"] >= memory["gpu_io_buffers_mb"] > 0


def _docker_run(repo: Path, cfg: TritonConfig, image: str) -> str:
    """The command docs/runtimes.md#tensorrt gives, on free ports and detached. Returns the container id."""
    ports = ["-p", f"{cfg.http_port}:8000", "-p", f"{cfg.grpc_port}:8001", "-p", f"{cfg.metrics_port}:8002"]
    proc = subprocess.run(["docker", "run", "--rm", "-d", "--gpus", "all", "--shm-size=1g", *ports,
                           "-v", f"{repo}:/models:ro", image, "tritonserver", "--model-repository=/models"],
                          capture_output=True, text=True)
    if proc.returncode != 0 and "device driver" in proc.stderr:
        pytest.skip(f"docker cannot reach the GPU (install the NVIDIA Container Toolkit): {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _wait_ready(cfg: TritonConfig, container: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not is_ready(cfg.http_url):
        logs = subprocess.run(["docker", "logs", "--tail", "40", container], capture_output=True, text=True)
        assert time.monotonic() < deadline, f"Triton not ready after {timeout:.0f}s:\n{logs.stdout}{logs.stderr}"
        time.sleep(1)


def test_nvidias_triton_container_serves_the_plans_and_the_onnx_models(workspace) -> None:
    import tensorrt

    data, repo, _ = workspace
    image = os.environ.get("TRITONZOO_TRITON_IMAGE") or triton_container(tensorrt.__version__)
    if image is None:
        pytest.skip(f"no Triton container is known here for TensorRT {tensorrt.__version__}: set "
                    "TRITONZOO_TRITON_IMAGE to the release whose notes list it")
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed: the pip-installed tritonserver has no TensorRT backend")
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
        pytest.skip(f"{image} is not here (docker pull {image})")
    cfg = TritonConfig.on_free_ports(repo)
    container = _docker_run(repo, cfg, image)
    try:
        _wait_ready(cfg, container)
        client = TritonClassifier(cfg.grpc_url)
        images = data.test.images[:IMAGES]
        for variant in VARIANTS:
            served = client.predict_all(f"resnet18_{variant}_tensorrt", images)
            in_process = _runner(repo, variant)(images)
            assert (served.argmax(1) == in_process.argmax(1)).mean() >= 0.99, variant
            assert np.abs(served - in_process).max() < 0.05, variant
        served = client.predict_all("resnet18_fp32", images)  # the native ONNX Runtime backend, same repository
        assert np.abs(served - _onnx_logits(repo, "fp32", images)).max() < 1e-3
        client.close()
    finally:
        subprocess.run(["docker", "stop", container], capture_output=True)
