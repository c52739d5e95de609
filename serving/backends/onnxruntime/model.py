"""A Python-based Triton backend named `onnxruntime`.

The pip-installed tritonserver has no native ONNX Runtime backend. Placed at
`<backend-directory>/onnxruntime/model.py`, this file serves a standard `platform: "onnxruntime_onnx"`
model unchanged, so the same repository runs on NVIDIA's container with the native C++ backend.
It honours the native backend's thread, memory and graph-optimization settings (`ort_session.py`, beside it).
"""

from __future__ import annotations

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils
from ort_session import ort_session


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        filename = config.get("default_model_filename") or "model.onnx"
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        self.session = ort_session(path, config)
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
