"""Runtimes execute a variant's model file; a variant never knows which runtime serves it.

A runtime turns an exported ONNX model into what it publishes, runs it in process for verification
and measurement, and fills in its part of the Triton config. Adding one is a module plus a line here.
"""

from __future__ import annotations

from build.runtimes.base import Runner, Runtime
from build.runtimes.onnxruntime import OnnxRuntime
from build.runtimes.openvino import OpenVinoRuntime
from build.runtimes.tensorrt import TensorRTRuntime

REFERENCE_RUNTIME = "onnxruntime"  # runs each variant's own ONNX file: the variant's accuracy is its model's
RUNTIMES: dict[str, Runtime] = {
    "onnxruntime": OnnxRuntime(),
    "openvino": OpenVinoRuntime("openvino", "f32"),
    "openvino_bf16": OpenVinoRuntime("openvino_bf16", "bf16", max_drop_points=0.2),
    "tensorrt": TensorRTRuntime(),  # NVIDIA GPUs; written for TensorRT 10/11, not run here (no GPU + TensorRT)
}

__all__ = ["REFERENCE_RUNTIME", "RUNTIMES", "Runner", "Runtime"]
