"""Shadow traffic: mirror a share of requests to a candidate, off the request path.

The primary response is computed and sent before the mirror is even scheduled, and a full mirror
queue drops shadow work rather than slowing anything down.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import asdict, dataclass

import numpy as np

from serving.gateway.catalogue import Catalogue
from serving.gateway.experiments import Experiment
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.triton_client import TritonInference


@dataclass
class ShadowStats:
    mirrored: int = 0
    compared_images: int = 0
    agreed_images: int = 0
    errors: int = 0
    dropped: int = 0
    latency_diff_ms_sum: float = 0.0

    def as_dict(self) -> dict:
        done = self.mirrored - self.errors
        return {**asdict(self),
                "top1_agreement": self.agreed_images / self.compared_images if self.compared_images else None,
                "mean_latency_diff_ms": self.latency_diff_ms_sum / done if done > 0 else None}


class ShadowTraffic:
    def __init__(self, triton: TritonInference, catalogue: Catalogue, metrics: GatewayMetrics,
                 max_in_flight: int = 16, rng: random.Random | None = None) -> None:
        self.triton, self.catalogue, self.metrics = triton, catalogue, metrics
        self.max_in_flight = max_in_flight
        self.rng = rng or random.Random()
        self.stats: dict[str, ShadowStats] = {}
        self._tasks: set[asyncio.Task] = set()

    def mirror(self, experiment: Experiment, batch: np.ndarray, primary_top1: np.ndarray, primary_s: float) -> None:
        shadow = experiment.shadow
        if shadow is None or self.rng.random() >= shadow.fraction:
            return
        stats = self.stats.setdefault(experiment.name, ShadowStats())
        if len(self._tasks) >= self.max_in_flight:
            stats.dropped += 1
            self.metrics.shadow.labels(experiment.name, shadow.model, "dropped").inc()
            return
        task = asyncio.create_task(self._run(experiment.name, shadow.model, batch, primary_top1, primary_s, stats))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, experiment: str, model: str, batch: np.ndarray, primary_top1: np.ndarray,
                   primary_s: float, stats: ShadowStats) -> None:
        stats.mirrored += 1
        start = time.perf_counter()
        try:
            logits = await self.triton.logits(self.catalogue.get(model), batch)
        except Exception:  # a failing candidate is recorded, never raised into the serving path
            stats.errors += 1
            self.metrics.shadow.labels(experiment, model, "error").inc()
            return
        elapsed = time.perf_counter() - start
        agreed = int((logits.argmax(1) == primary_top1).sum())
        stats.compared_images += len(batch)
        stats.agreed_images += agreed
        stats.latency_diff_ms_sum += (elapsed - primary_s) * 1e3
        self.metrics.shadow.labels(experiment, model, "ok").inc()
        self.metrics.shadow_agreement.labels(experiment, model).inc(agreed)
        self.metrics.shadow_latency.labels(experiment, "primary").observe(primary_s)
        self.metrics.shadow_latency.labels(experiment, "shadow").observe(elapsed)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
