"""A thin synchronous Triton client for classification over gRPC, with binary tensors."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import tritonclient.grpc as grpcclient


class TritonClassifier:
    """`names` gives a model's (input, output) tensor names where they are not the defaults: models of other
    families (an ONNX model brought as it is) may name them otherwise."""

    def __init__(self, url: str, input_name: str = "images", output_name: str = "logits",
                 names: Mapping[str, tuple[str, str]] | None = None) -> None:
        self.client = grpcclient.InferenceServerClient(url)
        self.input_name, self.output_name = input_name, output_name
        self.names = dict(names or {})

    def _infer(self, model: str, images: np.ndarray, class_count: int = 0) -> np.ndarray:
        input_name, output_name = self.names.get(model, (self.input_name, self.output_name))
        inp = grpcclient.InferInput(input_name, list(images.shape), "UINT8")
        inp.set_data_from_numpy(np.ascontiguousarray(images))
        out = grpcclient.InferRequestedOutput(output_name, class_count=class_count)
        return self.client.infer(model, [inp], outputs=[out]).as_numpy(output_name)

    def logits(self, model: str, images: np.ndarray) -> np.ndarray:
        return self._infer(model, images)

    def top_k(self, model: str, images: np.ndarray, k: int = 1) -> list[list[str]]:
        """Triton's classification extension: 'score:index:label' strings, best first."""
        rows = self._infer(model, images, class_count=k)
        return [[s.decode() if isinstance(s, bytes) else str(s) for s in row] for row in rows]

    def predict_all(self, model: str, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        return np.concatenate([self.logits(model, images[i:i + batch_size]) for i in range(0, len(images), batch_size)])

    def latencies_ms(self, model: str, images: np.ndarray, requests: int = 200, warmup: int = 20) -> np.ndarray:
        """Batch-1 round trips from one client, after warm-up."""
        for i in range(warmup):
            self.logits(model, images[i % len(images)][None])
        out = []
        for i in range(requests):
            start = time.perf_counter()
            self.logits(model, images[i % len(images)][None])
            out.append((time.perf_counter() - start) * 1e3)
        return np.array(out)

    def close(self) -> None:
        self.client.close()
