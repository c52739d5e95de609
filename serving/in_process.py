"""Run a repository model in this process, as its Triton backend would: the same runtime session, built from the
same config.pbtxt. Benchmarks set served throughput against it, in the same run, to measure what serving costs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as pb

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


def in_process_runner(model_dir: Path) -> Runner:
    """A callable from a batch of inputs to the first output, on the runtime the model's config names."""
    config = model_config(model_dir)
    runtime = config.get("backend") or config.get("platform", "")
    filename = config.get("default_model_filename")
    if runtime == "openvino":
        from serving.backends.openvino.ov_session import OvSession, OvSettings

        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        return OvSession(latest_version(model_dir) / (filename or "model.xml"), OvSettings.from_parameters(params))
    if runtime in ("onnxruntime", "onnxruntime_onnx"):
        from serving.backends.onnxruntime.ort_session import ort_session

        session = ort_session(str(latest_version(model_dir) / (filename or "model.onnx")), config)
        name = session.get_inputs()[0].name
        return lambda images: session.run(None, {name: images})[0]
    raise ValueError(f"{model_dir.name} runs on '{runtime}', which has no in-process runner here")
