"""An OpenVINO CPU session configured from Triton-style string parameters.

Shared by the Python-based `openvino` Triton backend (imported there as a sibling module) and by the
build, which verifies and measures a model exactly as the server will run it.
"""

from __future__ import annotations

import contextlib
import functools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openvino as ov

# Triton's native OpenVINO backend reads these keys. INFERENCE_PRECISION_HINT is ours: the native
# backend (24.10) ignores it, and with no way to force FP32 runs FP32 models in BF16 on AMX CPUs.
HINT, STREAMS, THREADS, PRECISION, BF16 = (
    "PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT", "HINT_BF16")


@dataclass(frozen=True)
class OvSettings:
    hint: str = "LATENCY"  # LATENCY: one stream using every thread; THROUGHPUT: several streams
    streams: int = 1  # also the number of requests kept in flight: a batch is split across streams
    threads: int = 0  # 0: OpenVINO's choice
    precision: str = "f32"  # f32 or bf16 for the ops left unquantized

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> OvSettings:
        precision = params.get(PRECISION) or ("bf16" if params.get(BF16, "").upper() == "YES" else "f32")
        return cls(params.get(HINT, "LATENCY"), int(params.get(STREAMS, 1)), int(params.get(THREADS, 0)), precision)

    @classmethod
    def from_config(cls, config: dict) -> OvSettings:
        """From a model config as the backend receives it (JSON, proto field names): its string parameters."""
        return cls.from_parameters({k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()})

    def parameters(self) -> dict[str, str]:
        params = {HINT: self.hint, STREAMS: str(self.streams), THREADS: str(self.threads), PRECISION: self.precision}
        return {**params, BF16: "YES"} if self.precision == "bf16" else params

    def properties(self) -> dict[str, str]:
        props = {HINT: self.hint, STREAMS: str(self.streams), PRECISION: self.precision}
        return {**props, THREADS: str(self.threads)} if self.threads else props


class OvSession:
    """A compiled model with one infer request per stream.

    `start` runs a whole batch on the next free stream and hands its logits to a callback: the backend keeps
    every stream busy with its own batch. A call splits one batch across the streams and joins the logits.
    """

    def __init__(self, model_path: Path, settings: OvSettings, core: ov.Core | None = None) -> None:
        self.settings = settings
        self.compiled = (core or ov.Core()).compile_model(str(model_path), "CPU", settings.properties())
        self.input_shape = self.compiled.input(0).get_partial_shape()
        self.input_type = self.compiled.input(0).get_element_type().to_dtype()
        self._new_queue()

    def _new_queue(self) -> None:
        self.queue = ov.AsyncInferQueue(self.compiled, self.settings.streams)
        # The request's output buffer is reused by its next batch: hand over a copy.
        self.queue.set_callback(lambda request, done: done(request.get_output_tensor(0).data.copy()))

    def start(self, images: np.ndarray, done: Callable[[np.ndarray], None] = lambda logits: None) -> None:
        """Run `images` on the next free stream (waiting while all are busy); `done(logits)` is then called on
        OpenVINO's thread (by default nothing: a throughput measurement). Inputs are checked first: a request
        that fails inside OpenVINO never calls back."""
        if images.dtype != self.input_type or not self.input_shape.compatible(ov.PartialShape(list(images.shape))):
            raise ValueError(f"input {images.dtype}{list(images.shape)} does not fit the model's "
                             f"{self.input_type}{self.input_shape}")
        with self._fresh_queue_on_failure():
            self.queue.start_async({0: np.ascontiguousarray(images)}, userdata=done)

    def wait(self) -> None:
        """Until every started batch has called back."""
        with self._fresh_queue_on_failure():
            self.queue.wait_all()

    @contextlib.contextmanager
    def _fresh_queue_on_failure(self) -> Iterator[None]:
        try:
            yield
        except RuntimeError:
            self._new_queue()  # a failed request keeps its bad input bound: later calls would fail too
            raise

    def __call__(self, images: np.ndarray) -> np.ndarray:
        chunks = np.array_split(images, min(self.settings.streams, len(images)))
        results: dict[int, np.ndarray] = {}
        for i, chunk in enumerate(chunks):
            self.start(chunk, functools.partial(results.__setitem__, i))
        self.wait()
        return np.concatenate([results[i] for i in range(len(chunks))])

    def conv_kernels(self) -> dict[str, int]:
        """The convolution kernels that run: e.g. brgconv_avx512_amx_I8 is AMX INT8. The precision property
        of a quantized model says bf16 or f32, which covers only its unquantized ops."""
        kernels: Counter[str] = Counter()
        for op in self.compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            if info["layerType"].astype(str) == "Convolution":
                kernels[info["primitiveType"].astype(str)] += 1
        return dict(kernels.most_common())

    def precision(self) -> str:
        """What the convolutions really compute in: int8, bf16 or f32, the most common kernel's type."""
        kernels = self.conv_kernels()
        if not kernels:
            return str(self.compiled.get_property(PRECISION))
        top = next(iter(kernels)).lower()
        return "int8" if top.endswith("_i8") else "bf16" if "bf16" in top else "f32"
