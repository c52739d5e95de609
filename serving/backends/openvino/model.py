"""A Python-based Triton backend named `openvino`.

The pip-installed tritonserver has no native OpenVINO backend. Placed at
`<backend-directory>/openvino/model.py` with `ov_session.py` beside it, this file serves a standard
`backend: "openvino"` model (`1/model.xml` + `model.bin`) unchanged, so the same repository runs in
NVIDIA's container with the native C++ backend. It reads the native backend's parameters
(PERFORMANCE_HINT, NUM_STREAMS, INFERENCE_NUM_THREADS, HINT_BF16), plus INFERENCE_PRECISION_HINT.
Batches stay dynamic, so ENABLE_BATCH_PADDING, which the native backend needs, changes nothing here.

`execute` starts each batch on a free stream and returns at once; the stream answers its requests through
their response senders when it finishes. So every stream computes a batch of its own, without splitting one
batch across threads that wait for each other whenever the server's other work preempts one of them, and
Triton forms the next batch while the cores compute.
"""

from __future__ import annotations

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils
from ov_session import OvSession, OvSettings


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        filename = config.get("default_model_filename") or "model.xml"
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        self.session = OvSession(path, OvSettings.from_config(config))
        self.input = config["input"][0]["name"]
        self.output = config["output"][0]["name"]

    def execute(self, requests: list) -> None:
        """Dynamic batching hands over several requests: start them as one batch, answered when it finishes."""
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        senders = [r.get_response_sender() for r in requests]
        offsets = np.cumsum([0] + [a.shape[0] for a in arrays])
        try:  # waits here while every stream is busy: Triton queues the next batch meanwhile
            self.session.start(np.concatenate(arrays), lambda logits: self._answer(senders, offsets, logits))
        except Exception as exc:  # OpenVINO raises RuntimeError subtypes; report, keep serving
            _send(senders, [pb_utils.InferenceResponse(error=pb_utils.TritonError(f"openvino: {exc}"))] * len(senders))
        return None

    def _answer(self, senders: list, offsets: np.ndarray, logits: np.ndarray) -> None:
        try:
            _send(senders, [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(self.output, logits[lo:hi])])
                            for lo, hi in zip(offsets[:-1], offsets[1:])])
        except Exception as exc:  # raised on OpenVINO's thread it would abort the stub: log it, keep serving
            pb_utils.Logger.log_error(f"openvino: could not answer a batch of {len(senders)} request(s): {exc}")

    def finalize(self) -> None:
        self.session.wait()


def _send(senders: list, responses: list) -> None:
    for sender, response in zip(senders, responses):
        sender.send(response, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
