"""Closed-loop HTTP load: each client sends its next request as soon as the last one returns."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass

from serving.gateway.http_pool import HttpPool, UpstreamError


@dataclass(frozen=True)
class LoopResult:
    requests: int
    failures: int
    seconds: float
    latencies_ms: list[float]           # every request's, failures included


async def closed_loop(http: str, path: str, bodies: list[tuple[bytes, dict[str, str]]], concurrency: int,
                      seconds: float) -> LoopResult:
    """`concurrency` clients, each sending its next request when the last one returns; a failure is a request too.

    The client is the gateway's own lean HTTP pool: httpx costs about 2 ms of CPU per request here, which on 2
    shared cores would measure the load generator as much as the servers.
    """
    host, _, port = http.rpartition(":")
    pool = HttpPool(host, int(port), timeout_s=30, max_idle=concurrency)
    latencies: list[float] = []
    failures = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def client(offset: int) -> None:
        nonlocal failures
        for i in itertools.count(offset):
            if time.perf_counter() >= deadline:
                return
            body, headers = bodies[i % len(bodies)]
            t0 = time.perf_counter()
            try:
                ok = (await pool.request("POST", path, body, headers)).status == 200
            except UpstreamError:
                ok = False
            latencies.append((time.perf_counter() - t0) * 1e3)
            failures += not ok

    try:
        await asyncio.gather(*(client(k * 7) for k in range(concurrency)))
    finally:
        await pool.close()
    return LoopResult(len(latencies), failures, time.perf_counter() - start, latencies)
