"""Async gRPC to Triton: one reused channel, binary tensors, no per-request metadata lookups."""

from __future__ import annotations

import numpy as np
import tritonclient.grpc.aio as grpcaio
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from serving.gateway.catalogue import ModelInfo
from serving.gateway.errors import ApiError, BadShape, Unavailable

# Reconnect quickly once a restarted Triton is back, instead of gRPC's default backoff of up to 2 minutes.
CHANNEL_ARGS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


class TritonInference:
    def __init__(self, grpc_url: str, timeout_s: float = 10.0, retry_after_s: int = 2) -> None:
        self.client = grpcaio.InferenceServerClient(grpc_url, channel_args=CHANNEL_ARGS)
        self.timeout_s, self.retry_after_s = timeout_s, retry_after_s

    async def logits(self, model: ModelInfo, batch: np.ndarray) -> np.ndarray:
        inp = InferInput(model.input_name, list(batch.shape), "UINT8")
        inp.set_data_from_numpy(batch)
        outputs = [InferRequestedOutput(model.output_name)]
        try:
            result = await self.client.infer(model.name, [inp], outputs=outputs, client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise triton_error(exc, self.retry_after_s) from exc
        return result.as_numpy(model.output_name)

    async def ready(self) -> bool:
        try:
            return await self.client.is_server_ready(client_timeout=1.0)
        except InferenceServerException:
            return False

    async def model_ready(self, name: str) -> bool:
        try:
            return await self.client.is_model_ready(name, client_timeout=1.0)
        except InferenceServerException:
            return False

    async def load(self, name: str) -> None:
        try:
            await self.client.load_model(name, client_timeout=120.0)
        except InferenceServerException as exc:
            raise triton_error(exc, self.retry_after_s) from exc

    async def unload(self, name: str) -> None:
        try:
            await self.client.unload_model(name, client_timeout=60.0)
        except InferenceServerException as exc:
            raise triton_error(exc, self.retry_after_s) from exc

    async def close(self) -> None:
        await self.client.close()


def triton_error(exc: InferenceServerException, retry_after_s: int = 2) -> ApiError:
    """Triton's own message, with the status that tells the client whether to retry."""
    status, message = str(exc.status() or ""), exc.message() or str(exc)
    if "INVALID_ARGUMENT" in status and "unknown model" not in message:
        return BadShape(f"Triton rejected the request: {message}")
    return Unavailable(f"Triton is unavailable ({status or 'no status'}): {message}", retry_after_s)
