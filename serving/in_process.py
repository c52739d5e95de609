"""Run a repository model in this process, as its Triton backend would: the same runtime session, built from the
same config.pbtxt. Benchmarks set served throughput against it, in the same run, to measure what serving costs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as pb

if TYPE_CHECKING:  # each session's runtime is imported when a model needs it
    from serving.backends.onnxruntime.ort_session import OrtRunner
    from serving.backends.openvino.ov_session import OvSession

Runner = Callable[[np.ndarray], np.ndarray]


def read_config(path: Path) -> pb.ModelConfig:
    """A config.pbtxt through Triton's own protobuf."""
    return text_format.Parse(path.read_text(), pb.ModelConfig())


def model_config(model_dir: Path) -> dict:
    """config.pbtxt as the JSON a Python backend receives (proto field names, e.g. `max_batch_size`)."""
    path = model_dir / "config.pbtxt"
    if not path.is_file():
        raise ValueError(f"{model_dir} has no config.pbtxt: not a Triton model folder")
    return json_format.MessageToDict(read_config(path), preserving_proto_field_name=True)


def latest_version(model_dir: Path) -> Path:
    versions = sorted((p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    if not versions:
        raise ValueError(f"{model_dir} has no numbered version folder")
    return versions[-1]


def in_process_runner(model_dir: Path, version_dir: Path | None = None) -> Runner:
    """A callable from a batch of inputs to the first output, on the runtime the model's config names, with the
    config's settings: the one factory of in-process runners (the build's verification and timing, the benchmarks).
    `version_dir`: the version to run, else the latest."""
    config = model_config(model_dir)
    runtime = config.get("backend") or config.get("platform", "")
    if runtime == "openvino":
        return ov_runner(model_dir, version_dir, config)
    if runtime in ("onnxruntime", "onnxruntime_onnx"):
        return ort_runner(model_dir, version_dir, config)
    raise ValueError(f"{model_dir.name} runs on '{runtime}', which has no in-process runner here")


def ort_runner(model_dir: Path, version_dir: Path | None = None, config: dict | None = None) -> OrtRunner:
    """The ONNX Runtime session the onnxruntime backend would create for this model."""
    from serving.backends.onnxruntime.ort_session import OrtRunner

    config = config or model_config(model_dir)
    version = version_dir or latest_version(model_dir)
    return OrtRunner(str(version / (config.get("default_model_filename") or "model.onnx")), config)


def ov_runner(model_dir: Path, version_dir: Path | None = None, config: dict | None = None) -> OvSession:
    """The OpenVINO session the openvino backend would create for this model."""
    from serving.backends.openvino.ov_session import OvSession, OvSettings

    config = config or model_config(model_dir)
    version = version_dir or latest_version(model_dir)
    return OvSession(version / (config.get("default_model_filename") or "model.xml"), OvSettings.from_config(config))
