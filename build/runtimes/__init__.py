"""Runtimes execute a variant's model file; a variant never knows which runtime serves it.

A runtime turns an exported ONNX model into what it publishes, runs it in process for verification
and measurement, and fills in its part of the Triton config. Adding one is a module plus a line here.
The registry holds factories, not instances: each build makes its own (`make_runtime`), so nothing one build
learns (a tuning, a device, its plans) outlives it or leaks into the next.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from build.runtimes.base import Runner, Runtime
from build.runtimes.onnxruntime import OnnxRuntime
from build.runtimes.openvino import OpenVinoRuntime
from build.runtimes.tensorrt import TensorRTRuntime

REFERENCE_RUNTIME = "onnxruntime"  # runs each variant's own ONNX file: the variant's accuracy is its model's
RUNTIMES: dict[str, Callable[[], Runtime]] = {
    "onnxruntime": OnnxRuntime,
    "openvino": partial(OpenVinoRuntime, "openvino", "f32"),
    "openvino_bf16": partial(OpenVinoRuntime, "openvino_bf16", "bf16", max_drop_points=0.2),
    "tensorrt": TensorRTRuntime,  # NVIDIA GPUs; written for TensorRT 10/11, not run here (no GPU + TensorRT)
}


def make_runtime(name: str) -> Runtime:
    """A fresh instance of the named runtime, for one build (or one measuring process)."""
    return RUNTIMES[name]()


__all__ = ["REFERENCE_RUNTIME", "RUNTIMES", "Runner", "Runtime", "make_runtime"]
