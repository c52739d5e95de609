"""Runtimes execute a variant's model file; a variant never knows which runtime serves it.

A runtime turns an exported ONNX model into what it publishes, runs it in process for verification
and measurement, and fills in its part of the Triton config. Adding one is a module plus a line here.
"""

from __future__ import annotations

from build.runtimes.base import Runner, Runtime
from build.runtimes.onnxruntime import OnnxRuntime

RUNTIMES: dict[str, Runtime] = {
    "onnxruntime": OnnxRuntime(),
}

__all__ = ["RUNTIMES", "Runner", "Runtime"]
