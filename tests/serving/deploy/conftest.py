"""A published-looking repository (manifest, config.pbtxt, labels) with CPU and GPU-only models of two families."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from serving.deploy.generate import K8sOptions, generate
from serving.release import target_release
from tests.serving.manifests import card, entry, write

LABELS = [f"class{i}" for i in range(10)]
# name -> (family, dims, backend or platform, dynamic-batching delay in us, measured peak MiB or None)
MODELS = {
    "m_fp32": ("m", (3, 32, 32), "platform:onnxruntime_onnx", 200, 300.0),
    "m_int8_openvino": ("m", (3, 32, 32), "backend:openvino", 500, 120.0),
    "m_fp16_tensorrt": ("m", (3, 32, 32), "platform:tensorrt_plan", 100, None),
    "wide_fp32": ("wide", (3, 48, 48), "platform:onnxruntime_onnx", 0, None),
}


def write_repository(repo: Path, models: dict = MODELS, plans: tuple[str, ...] = ("9.0",)) -> Path:
    """TensorRT models have a plan for each of `plans` (compute capabilities), built by the release's TensorRT."""
    release = target_release()
    entries = []
    for name, (family, dims, runtime, delay, memory) in models.items():
        kind, value = runtime.split(":")
        config = pb.ModelConfig(name=name, max_batch_size=64, **{kind: value})
        if delay:
            config.dynamic_batching.max_queue_delay_microseconds = delay
        details: dict[str, Any] = {"memory": {"model_peak_mb": memory}} if memory else {}
        if value == "tensorrt_plan":
            config.cc_model_filenames.update({cc: f"model.sm{cc.replace('.', '')}.plan" for cc in plans})
            details["runtime_info"] = {"version": release.tensorrt}
        (repo / name / "1").mkdir(parents=True, exist_ok=True)
        (repo / name / "config.pbtxt").write_text(text_format.MessageToString(config))
        (repo / name / "labels.txt").write_text("\n".join(LABELS) + "\n")
        entries.append(entry(name, family, variant=name.split("_", 1)[1], dims=dims, max_batch_size=64, **details))
    return write(repo, entries, [card("m"), card("wide", dims=(3, 48, 48))], release.to_dict())


def fake_images(models: list[str], count: int) -> dict[str, np.ndarray]:
    """What loadtest.protocol.images.payloads_for returns: each model's images at its dims, shared within a family."""
    rng = np.random.default_rng(0)
    by_family = {}
    out = {}
    for m in models:
        family, dims = MODELS[m][0], MODELS[m][1]
        if (family, dims) not in by_family:
            by_family[family, dims] = rng.integers(0, 256, (count, *dims), dtype=np.uint8)
        out[m] = by_family[family, dims]
    return out


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return write_repository(tmp_path / "repo")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manifests for the repository, from S3 (once per module: the tests only read them)."""
    root = tmp_path_factory.mktemp("k8s")
    out = root / "k8s"
    options = K8sOptions("s3://zoo-bucket/repository", monitor_labels="release=kps")
    generate(write_repository(root / "repo"), out, options)
    return out
