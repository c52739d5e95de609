"""A Python-based Triton backend named `onnxruntime`.

The pip-installed tritonserver has no native ONNX Runtime backend. Placed at
`<backend-directory>/onnxruntime/model.py`, this file serves a standard `platform: "onnxruntime_onnx"`
model unchanged, so the same repository runs on NVIDIA's container with the native C++ backend.
It honours the native backend's thread, memory and graph-optimization settings.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

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


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        filename = config.get("default_model_filename") or "model.onnx"
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        self.session = ort.InferenceSession(path, session_options(config), providers=["CPUExecutionProvider"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        self.batching = int(config.get("max_batch_size", 0)) > 0

    def execute(self, requests: list) -> list:
        if not self.batching:  # no batch axis to concatenate along: one request at a time
            return [self._run_batched([r])[0] for r in requests]
        return self._run_batched(requests)

    def _run_batched(self, requests: list) -> list:
        """Dynamic batching hands over several requests: run them as one batch, then split."""
        feeds = {n: [pb_utils.get_input_tensor_by_name(r, n).as_numpy() for r in requests] for n in self.inputs}
        offsets = np.cumsum([0] + [a.shape[0] for a in feeds[self.inputs[0]]])
        try:
            results = self.session.run(self.outputs, {n: np.concatenate(a) for n, a in feeds.items()})
        except Exception as exc:  # ORT raises its own exception types; report, keep serving
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(f"onnxruntime: {exc}"))] * len(requests)
        return [
            pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(n, np.ascontiguousarray(r[lo:hi])) for n, r in zip(self.outputs, results)
            ])
            for lo, hi in zip(offsets[:-1], offsets[1:])
        ]
