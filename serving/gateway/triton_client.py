"""The gateway's view of Triton: inference over its HTTP endpoint (KServe v2 binary tensors, pooled
keep-alive connections), model control and readiness over gRPC. No per-request metadata lookups."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from serving.gateway.catalogue import ModelInfo
from serving.gateway.errors import ApiError, BadShape, Unavailable
from serving.gateway.http_pool import HttpPool, HttpResponse, UpstreamError

# Reconnect quickly once a restarted Triton is back, instead of gRPC's default backoff of up to 2 minutes.
CHANNEL_ARGS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
DTYPES = {"FP32": np.float32, "FP16": np.float16, "INT64": np.int64, "INT32": np.int32, "UINT8": np.uint8}


class TritonInference:
    def __init__(self, grpc_url: str, http_url: str, timeout_s: float = 10.0, retry_after_s: int = 2) -> None:
        self.control = grpcaio.InferenceServerClient(grpc_url, channel_args=CHANNEL_ARGS)
        self.http = HttpPool.for_url(http_url, timeout_s=timeout_s)
        self.retry_after_s = retry_after_s

    async def logits(self, model: ModelInfo, batch: np.ndarray) -> np.ndarray:
        header = infer_header(model.input_name, model.output_name, batch.shape)
        response = await self.forward("POST", f"/v2/models/{model.name}/infer", header + batch.tobytes(), {
            "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))})
        if response.status != 200:
            raise http_error(response, self.retry_after_s)
        return decode_output(response, model.output_name)

    async def forward(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> HttpResponse:
        try:
            return await self.http.request(method, path, body, headers)
        except UpstreamError as exc:
            raise Unavailable(f"Triton is unavailable: {exc}", self.retry_after_s) from exc

    async def ready(self) -> bool:
        try:
            return await self.control.is_server_ready(client_timeout=1.0)
        except InferenceServerException:
            return False

    async def model_ready(self, name: str) -> bool:
        try:
            return await self.control.is_model_ready(name, client_timeout=1.0)
        except InferenceServerException:
            return False

    async def load(self, name: str) -> None:
        try:
            await self.control.load_model(name, client_timeout=120.0)
        except InferenceServerException as exc:
            raise Unavailable(f"Triton could not load '{name}': {exc.message()}", self.retry_after_s) from exc

    async def unload(self, name: str) -> None:
        try:
            await self.control.unload_model(name, client_timeout=60.0)
        except InferenceServerException as exc:
            raise Unavailable(f"Triton could not unload '{name}': {exc.message()}", self.retry_after_s) from exc

    async def close(self) -> None:
        await self.http.close()
        await self.control.close()


@functools.lru_cache(maxsize=256)
def infer_header(input_name: str, output_name: str, shape: tuple[int, ...]) -> bytes:
    """The JSON header of a binary-tensor request for a uint8 batch: the same for every batch of a shape."""
    return json.dumps({
        "inputs": [{"name": input_name, "shape": list(shape), "datatype": "UINT8",
                    "parameters": {"binary_data_size": math.prod(shape)}}],
        "outputs": [{"name": output_name, "parameters": {"binary_data": True}}],
    }).encode()


def decode_output(response: HttpResponse, name: str) -> np.ndarray:
    """The named output of a KServe v2 binary response: JSON header, then raw tensors in order."""
    header_len = int(response.headers.get("inference-header-content-length", len(response.body)))
    dtype, count, offset, shape = output_layout(response.body[:header_len], name)
    return np.frombuffer(response.body, dtype, count, offset).reshape(shape)


@functools.lru_cache(maxsize=256)
def output_layout(header: bytes, name: str) -> tuple[np.dtype, int, int, tuple[int, ...]]:
    """Dtype, element count, byte offset and shape of the named output. Cached: Triton answers every batch
    of one shape with the same header, so it is parsed once per shape, not once per request."""
    offset = len(header)
    for out in json.loads(header)["outputs"]:
        size = out["parameters"]["binary_data_size"]
        if out["name"] == name:
            dtype = np.dtype(DTYPES[out["datatype"]])
            return dtype, size // dtype.itemsize, offset, tuple(out["shape"])
        offset += size
    raise Unavailable(f"Triton's response has no output '{name}'")


def http_error(response: HttpResponse, retry_after_s: int) -> ApiError:
    """Triton's own message, with the status that tells the client whether to retry."""
    try:
        message = json.loads(response.body).get("error", "")
    except ValueError:
        message = response.body[:200].decode("utf-8", "replace")
    if response.status == 400 and "unknown model" not in message and "is not ready" not in message:
        return BadShape(f"Triton rejected the request: {message}")
    return Unavailable(f"Triton is unavailable (HTTP {response.status}): {message}", retry_after_s)
