"""The gateway's view of Triton: inference over its HTTP endpoint (KServe v2 binary tensors, pooled
keep-alive connections), model control and readiness over gRPC. No per-request metadata lookups.

Several Triton replicas (comma-separated addresses) are one pool: each request goes to the healthy replica with
the fewest requests outstanding, a replica whose health check fails gets none until it passes again, and a request
whose connection fails before any response comes back goes once more, to another replica. Inference is a pure
function of its input, so the second try cannot do harm; a timeout is not retried (the first may still be running).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from dataclasses import dataclass, field

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


@dataclass
class Upstream:
    """One Triton replica: its HTTP pool, its gRPC control client, requests now outstanding, last health."""

    http: HttpPool
    control: grpcaio.InferenceServerClient
    outstanding: int = 0
    healthy: bool = True
    served: int = 0
    failed: int = 0
    name: str = field(default="")


class TritonInference:
    def __init__(self, grpc_url: str, http_url: str, timeout_s: float = 10.0, retry_after_s: int = 2) -> None:
        grpc_urls, http_urls = _urls(grpc_url), _urls(http_url)
        if len(grpc_urls) != len(http_urls):
            raise ValueError(f"one gRPC address per HTTP address: {grpc_urls} against {http_urls}")
        self.upstreams = [Upstream(HttpPool.for_url(h, timeout_s=timeout_s),
                                   grpcaio.InferenceServerClient(g, channel_args=CHANNEL_ARGS), name=h)
                          for g, h in zip(grpc_urls, http_urls)]
        self.control, self.http = self.upstreams[0].control, self.upstreams[0].http  # the first, for one replica
        self.retry_after_s = retry_after_s
        self._turn = 0  # where ties between equally loaded replicas start, so that they take turns

    async def logits(self, model: ModelInfo, batch: np.ndarray) -> np.ndarray:
        header = infer_header(model.input_name, model.output_name, batch.shape)
        response = await self.forward("POST", f"/v2/models/{model.name}/infer", header + batch.tobytes(), {
            "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))})
        if response.status != 200:
            raise http_error(response, self.retry_after_s)
        return decode_output(response, model.output_name)

    async def forward(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> HttpResponse:
        if len(self.upstreams) == 1:  # one replica: nothing to choose, nothing to retry on
            try:
                return await self.http.request(method, path, body, headers)
            except UpstreamError as exc:
                raise Unavailable(f"Triton is unavailable: {exc}", self.retry_after_s) from exc
        first = self.pick()
        try:
            return await self._send(first, method, path, body, headers)
        except UpstreamError as exc:
            if not exc.before_response:
                raise Unavailable(f"Triton is unavailable: {exc}", self.retry_after_s) from exc
            first.healthy = False  # refused or reset: no more traffic until its health check passes
            second = self.pick(avoid=first)
            if second is first:
                raise Unavailable(f"Triton is unavailable: {exc}", self.retry_after_s) from exc
        try:
            return await self._send(second, method, path, body, headers)
        except UpstreamError as exc:
            if exc.before_response:
                second.healthy = False
            raise Unavailable(f"Triton is unavailable on every replica tried: {exc}", self.retry_after_s) from exc

    def pick(self, avoid: Upstream | None = None) -> Upstream:
        """The healthy replica with the fewest requests outstanding (ties take turns); any other replica when none
        is healthy, so that traffic resumes even before a health check does."""
        count = len(self.upstreams)
        self._turn = (self._turn + 1) % count
        order = [self.upstreams[(self._turn + i) % count] for i in range(count)]
        candidates = [u for u in order if u is not avoid and u.healthy] or [u for u in order if u is not avoid]
        if candidates:
            return min(candidates, key=lambda u: u.outstanding)
        assert avoid is not None  # no candidate: the one replica there is was to be avoided
        return avoid

    async def _send(self, upstream: Upstream, method: str, path: str, body: bytes,
                    headers: dict[str, str] | None) -> HttpResponse:
        upstream.outstanding += 1
        try:
            response = await upstream.http.request(method, path, body, headers)
        except UpstreamError:
            upstream.failed += 1
            raise
        finally:
            upstream.outstanding -= 1
        upstream.served += 1
        return response

    async def check_health(self, timeout_s: float = 1.0) -> None:
        """Ask every replica's /v2/health/ready (several replicas only): a failing one gets no traffic."""
        if len(self.upstreams) > 1:
            await asyncio.gather(*(self._check(u, timeout_s) for u in self.upstreams))

    async def _check(self, upstream: Upstream, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                response = await upstream.http.request("GET", "/v2/health/ready")
            upstream.healthy = response.status == 200
        except (UpstreamError, TimeoutError):
            upstream.healthy = False

    async def ready(self) -> bool:
        """Any replica ready: the gateway can serve."""
        return any(await asyncio.gather(*(self._server_ready(u) for u in self.upstreams)))

    async def _server_ready(self, upstream: Upstream) -> bool:
        try:
            return await upstream.control.is_server_ready(client_timeout=1.0)
        except InferenceServerException:
            return False

    async def model_ready(self, name: str) -> bool:
        """Ready on every replica: a canary's candidate must be, before any replica is sent its traffic."""
        return all(await asyncio.gather(*(self._model_ready(u, name) for u in self.upstreams)))

    async def _model_ready(self, upstream: Upstream, name: str) -> bool:
        try:
            return await upstream.control.is_model_ready(name, client_timeout=1.0)
        except InferenceServerException:
            return False

    async def load(self, name: str) -> None:
        await self._control("load", name, 120.0)

    async def unload(self, name: str) -> None:
        await self._control("unload", name, 60.0)

    async def _control(self, action: str, name: str, timeout_s: float) -> None:
        """Load or unload on every replica: all of them must serve the same models."""
        for upstream in self.upstreams:
            try:
                await getattr(upstream.control, f"{action}_model")(name, client_timeout=timeout_s)
            except InferenceServerException as exc:
                raise Unavailable(f"Triton {upstream.name} could not {action} '{name}': {exc.message()}",
                                  self.retry_after_s) from exc

    async def close(self) -> None:
        for upstream in self.upstreams:
            await upstream.http.close()
            await upstream.control.close()


def _urls(value: str) -> list[str]:
    urls = [u.strip() for u in value.split(",") if u.strip()]
    if not urls:
        raise ValueError("no Triton address given")
    return urls


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
