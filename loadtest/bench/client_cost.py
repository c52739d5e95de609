"""CPU that one inference round trip costs the caller, per HTTP/gRPC client: what a hop spends."""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Awaitable, Callable

import httpx
import numpy as np
import tritonclient.grpc.aio as grpcaio
from tritonclient.grpc import InferInput, InferRequestedOutput

from loadtest.protocol.payloads import kserve_request
from serving.gateway.http_pool import HttpPool


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _cost_ms(call: Callable[[], Awaitable[object]], calls: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        await call()
    start = _cpu_seconds()
    for _ in range(calls):
        await call()
    return (_cpu_seconds() - start) / calls * 1e3


async def _measure(http_url: str, grpc_url: str, model: str, image: np.ndarray, calls: int,
                   names: tuple[str, str]) -> dict[str, float]:
    input_name, output_name = names
    body, headers = kserve_request(image, input_name, output_name)
    path = f"/v2/models/{model}/infer"
    pool = HttpPool.for_url(http_url)
    grpc = grpcaio.InferenceServerClient(grpc_url)
    async with httpx.AsyncClient(base_url=f"http://{http_url}") as hx:
        async def grpc_call() -> object:
            inp = InferInput(input_name, [1, *image.shape], "UINT8")
            inp.set_data_from_numpy(image[None])
            return await grpc.infer(model, [inp], outputs=[InferRequestedOutput(output_name)])

        clients = {
            "tritonclient gRPC aio": grpc_call,
            "httpx": lambda: hx.post(path, content=body, headers=headers),
            "asyncio HTTP pool (gateway)": lambda: pool.request("POST", path, body, headers),
        }
        costs = {name: await _cost_ms(call, calls) for name, call in clients.items()}
    await grpc.close()
    await pool.close()
    return costs


def client_cpu_costs(http_url: str, grpc_url: str, model: str, image: np.ndarray, calls: int = 300,
                     names: tuple[str, str] = ("images", "logits")) -> dict[str, float]:
    """`names`: the model's input and output tensor names (the manifest's io)."""
    return asyncio.run(_measure(http_url, grpc_url, model, image, calls, names))
