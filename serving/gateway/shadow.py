"""Shadow traffic: mirror a share of requests to a candidate, off the request path.

The primary response is computed and sent before the mirror is even scheduled, and a full mirror
queue drops shadow work rather than slowing anything down.

The candidate may be of another family than the primary: other input dims (the request is prepared afresh for
it) and other classes (top-1 predictions are compared by class name, not by index).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from serving.gateway.catalogue import Catalogue, ModelInfo
from serving.gateway.experiments import Experiment
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.payloads import decode_image
from serving.gateway.triton_client import TritonInference
from serving.pixels import refit


@dataclass
class ShadowStats:
    mirrored: int = 0
    compared_images: int = 0
    agreed_images: int = 0
    errors: int = 0
    dropped: int = 0
    latency_diff_ms_sum: float = 0.0
    uncompared_images: int = 0  # answered, but the two models' classes could not be matched (no class names)

    def as_dict(self) -> dict:
        done = self.mirrored - self.errors
        return {**asdict(self),
                "top1_agreement": self.agreed_images / self.compared_images if self.compared_images else None,
                "mean_latency_diff_ms": self.latency_diff_ms_sum / done if done > 0 else None}


@dataclass(frozen=True)
class Primary:
    """What the primary arm was sent and answered: the shadow is sent the same images and compared with it."""

    model: ModelInfo
    batch: np.ndarray           # as the primary's input: its dims
    top1: np.ndarray            # the primary's top-1 class index per image
    seconds: float              # the primary's inference time
    image: bytes | None = None  # the request body when it was a PNG or JPEG: decoded afresh for other dims


async def shadow_input(primary: Primary, dims: tuple[int, ...]) -> np.ndarray:
    """The primary's images as the candidate takes them. An image body is decoded again at the candidate's dims (as
    if the request had been sent to it, rather than resizing the primary's already resized pixels); a raw tensor
    is converted and resized. CPU work: off the event loop."""
    if tuple(primary.batch.shape[1:]) == tuple(dims):
        return primary.batch
    if primary.image is not None:
        return await asyncio.to_thread(decode_image, primary.image, dims)
    return await asyncio.to_thread(refit, primary.batch, dims)


def agreement(primary_labels: Sequence[str], shadow_labels: Sequence[str], primary_top1: np.ndarray,
              shadow_top1: np.ndarray) -> int | None:
    """Images on which both models' top-1 is the same class. Models of one family share their classes (the same
    labels), so indices compare; models of different families compare by class name, an index the other model
    does not name never agreeing. None when the classes differ and either side has no names to match."""
    if tuple(primary_labels) == tuple(shadow_labels):
        return int((np.asarray(primary_top1) == np.asarray(shadow_top1)).sum())
    if not primary_labels or not shadow_labels:
        return None

    def names(labels: Sequence[str], top1: np.ndarray) -> list[str | None]:
        return [labels[i] if i < len(labels) else None for i in np.asarray(top1).tolist()]

    return sum(a is not None and a == b for a, b in zip(names(primary_labels, primary_top1),
                                                         names(shadow_labels, shadow_top1)))


class ShadowTraffic:
    def __init__(self, triton: TritonInference, catalogue: Catalogue, metrics: GatewayMetrics,
                 max_in_flight: int = 16, rng: random.Random | None = None) -> None:
        self.triton, self.catalogue, self.metrics = triton, catalogue, metrics
        self.max_in_flight = max_in_flight
        self.rng = rng or random.Random()
        self.stats: dict[str, ShadowStats] = {}
        self._tasks: set[asyncio.Task] = set()

    def mirror(self, experiment: Experiment, primary: Primary) -> None:
        shadow = experiment.shadow
        if shadow is None or self.rng.random() >= shadow.fraction:
            return
        stats = self.stats.setdefault(experiment.name, ShadowStats())
        if len(self._tasks) >= self.max_in_flight:
            stats.dropped += 1
            self.metrics.shadow.labels(experiment.name, shadow.model, "dropped").inc()
            return
        task = asyncio.create_task(self._run(experiment.name, shadow.model, primary, stats))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, experiment: str, model: str, primary: Primary, stats: ShadowStats) -> None:
        stats.mirrored += 1
        try:
            candidate = self.catalogue.get(model)
            batch = await shadow_input(primary, candidate.dims)
            start = time.perf_counter()  # inference only, as the primary's time is: preparing the input is not
            logits = await self.triton.logits(candidate, batch)
        except Exception:  # a failing candidate is recorded, never raised into the serving path
            stats.errors += 1
            self.metrics.shadow.labels(experiment, model, "error").inc()
            return
        elapsed = time.perf_counter() - start
        agreed = agreement(primary.model.labels, candidate.labels, primary.top1, logits.argmax(1))
        if agreed is None:
            stats.uncompared_images += len(primary.batch)
        else:
            stats.compared_images += len(primary.batch)
            stats.agreed_images += agreed
            self.metrics.shadow_agreement.labels(experiment, model).inc(agreed)
        stats.latency_diff_ms_sum += (elapsed - primary.seconds) * 1e3
        self.metrics.shadow.labels(experiment, model, "ok").inc()
        self.metrics.shadow_latency.labels(experiment, "primary").observe(primary.seconds)
        self.metrics.shadow_latency.labels(experiment, "shadow").observe(elapsed)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
