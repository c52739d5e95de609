"""ONNX Runtime session options from a Triton model config, read as the native onnxruntime backend reads them.

Shared by the Python-based `onnxruntime` Triton backend (imported there as a sibling module) and by benchmarks
that run a served model in process, so both run the same session.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

# optimization.graph.level as the native backend reads it: absent means all, -1 basic, 1 extended, 2 none.
GRAPH_LEVELS = {
    None: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    -1: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    1: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    2: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}


def session_options(config: dict) -> ort.SessionOptions:
    params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(params.get("intra_op_thread_count", 0))
    opts.inter_op_num_threads = int(params.get("inter_op_thread_count", 0))
    opts.enable_cpu_mem_arena = params.get("enable_mem_arena", "1") not in ("0", "false")
    opts.enable_mem_pattern = params.get("enable_mem_pattern", "1") not in ("0", "false")
    level = config.get("optimization", {}).get("graph", {}).get("level")
    opts.graph_optimization_level = GRAPH_LEVELS[int(level) if level is not None else None]
    return opts


def ort_session(path: str, config: dict) -> ort.InferenceSession:
    return ort.InferenceSession(path, session_options(config), providers=["CPUExecutionProvider"])


class OrtRunner:
    """A session built from a model's config, callable on a uint8 batch: what the build verifies and times, what the
    in-process benchmarks run, and what the backend serves are one session, configured by one config.pbtxt."""

    def __init__(self, path: str, config: dict) -> None:
        self.path, self.config = path, config
        self.session = ort_session(path, config)
        self.input = self.session.get_inputs()[0]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input.name: images})[0]
