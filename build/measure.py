"""In-process measurement: accuracy, size, latency and throughput. Warm-up first, medians always."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from build.data import ImageSet
from build.evaluate import accuracy
from build.runtimes import Runner


@dataclass(frozen=True)
class Speed:
    latency_b1_p50_ms: float
    latency_b1_p99_ms: float
    throughput_b64_ips: float


def predict(run: Runner, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.concatenate([run(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def runner_accuracy(run: Runner, data: ImageSet) -> float:
    return accuracy(predict(run, data.images), data.labels)


def measure_speed(run: Runner, images: np.ndarray, warmup: int = 10, latency_iters: int = 200,
                  throughput_runs: int = 5, batches_per_run: int = 4) -> Speed:
    one = images[:1]
    for _ in range(warmup):
        run(one)
    timings = []
    for i in range(latency_iters):
        start = time.perf_counter()
        run(images[i % len(images)][None])
        timings.append(time.perf_counter() - start)
    batch = images[:64]
    run(batch)
    rates = []
    for _ in range(throughput_runs):
        start = time.perf_counter()
        for _ in range(batches_per_run):
            run(batch)
        rates.append(batches_per_run * len(batch) / (time.perf_counter() - start))
    return Speed(
        latency_b1_p50_ms=statistics.median(timings) * 1e3,
        latency_b1_p99_ms=float(np.percentile(timings, 99)) * 1e3,
        throughput_b64_ips=statistics.median(rates),
    )


def size_mb(files: list[Path]) -> float:
    return sum(f.stat().st_size for f in files) / 1e6


def speed_dict(speed: Speed) -> dict[str, float]:
    return {k: round(v, 3) for k, v in asdict(speed).items()}
