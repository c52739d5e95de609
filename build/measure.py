"""In-process measurement: accuracy, size, and speed measured interleaved across models.

Speed rules: warm-up first; every round visits every model in turn, so drift on a shared machine
hits all of them alike; figures are medians over rounds, and speedups are ratios within one run.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from build.data import ImageSet
from build.errors import ZooError
from build.evaluate import accuracy
from build.runtimes import Runner
from serving.manifest import Accuracy, Memory, Speed


@dataclass(frozen=True)
class SpeedPlan:
    rounds: int = 5
    latency_iters: int = 100  # batch-1 requests per model per round, at most
    throughput_batches: int = 4  # batches of 64 per model per round, at most
    warmup: int = 10
    # A model's share of each round, in seconds of its own run time: a slow model (a 224-pixel network: ~1 s a batch
    # on 2 cores) makes fewer requests, never under `min_latency_iters`, so that a zoo at 224 pixels is timed in
    # minutes too. At 32 pixels only the slowest models make fewer batch-1 requests (the ResNet-18 teacher, 6 to 11
    # ms a request: 45 to 88), and every one makes the 4 batches.
    latency_seconds: float = 0.5
    throughput_seconds: float = 1.0
    min_latency_iters: int = 20

    def counts(self, b1_seconds: float, batch_seconds: float) -> tuple[int, int]:
        """Batch-1 requests and batches of 64 a round, for a model that took these times after its warm-up."""
        iters = max(self.min_latency_iters, math.ceil(self.latency_seconds / max(b1_seconds, 1e-9)))
        batches = max(1, math.ceil(self.throughput_seconds / max(batch_seconds, 1e-9)))
        return min(self.latency_iters, iters), min(self.throughput_batches, batches)


def predict(run: Runner, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.concatenate([run(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def accuracy_record(logits: np.ndarray, labels: np.ndarray, prefix: int) -> Accuracy:
    """Top-1 on the test images, and on their first `prefix`: the sample a served check classifies."""
    n = min(prefix, len(labels))
    return Accuracy(top1=accuracy(logits, labels), images=len(labels), split="test", prefix_images=n,
                    prefix_top1=accuracy(logits[:n], labels[:n]))


def onnx_accuracy(path: Path, data: ImageSet, threads: int, batch_size: int = 250) -> float:
    """Top-1 of an ONNX file on ONNX Runtime's CPU provider: a file's own accuracy, before any runtime serves it."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    logits = np.concatenate([session.run(None, {name: data.images[i:i + batch_size]})[0]
                             for i in range(0, len(data), batch_size)])
    return accuracy(logits, data.labels)


def size_mb(files: list[Path]) -> float:
    return sum(f.stat().st_size for f in files) / 1e6


def compressed_mb(files: list[Path]) -> float:
    """Size after zlib's fastest level: what zeroed (sparse) weights save in storage and transfer.

    Level 1, as for transfers: higher levels take much longer on weights and save little more.
    """
    return sum(len(zlib.compress(f.read_bytes(), 1)) for f in files) / 1e6


def measure_speeds(runners: dict[str, Runner], images: np.ndarray, plan: SpeedPlan = SpeedPlan()) -> dict[str, Speed]:
    batch = images[:64]
    counts = {name: _warm_up(run, images, plan) for name, run in runners.items()}
    latencies: dict[str, list[float]] = {name: [] for name in runners}
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for r in tqdm(range(plan.rounds), desc="speed (interleaved rounds)", unit="round", leave=False):
        for name, run in runners.items():
            iters, batches = counts[name]
            for i in range(iters):
                start = time.perf_counter()
                run(images[(r * iters + i) % len(images)][None])
                latencies[name].append(time.perf_counter() - start)
            start = time.perf_counter()
            for _ in range(batches):
                run(batch)
            rates[name].append(batches * len(batch) / (time.perf_counter() - start))
    return {name: Speed(
        latency_b1_p50_ms=round(statistics.median(latencies[name]) * 1e3, 3),
        latency_b1_p99_ms=round(float(np.percentile(latencies[name], 99)) * 1e3, 3),
        throughput_b64_ips=round(statistics.median(rates[name]), 1),
        rounds=plan.rounds,
    ) for name in runners}


def _warm_up(run: Runner, images: np.ndarray, plan: SpeedPlan) -> tuple[int, int]:
    """Warm a model up; its last batch-1 request and its batch of 64 size its share of each round."""
    b1 = 0.0
    for _ in range(plan.warmup):
        start = time.perf_counter()
        run(images[:1])
        b1 = time.perf_counter() - start
    start = time.perf_counter()
    run(images[:64])
    return plan.counts(b1, time.perf_counter() - start)


def peak_memory_mb(runtime: str, model_dir: Path, threads: int, shape: tuple[int, ...]) -> Memory:
    """Peak resident memory of a fresh process that loads the model and runs a batch of 64 images of `shape`."""
    out = subprocess.run([sys.executable, "-m", "build.peak_memory", runtime, str(model_dir), str(threads),
                          "x".join(map(str, shape))], capture_output=True, text=True)
    if out.returncode != 0:
        raise ZooError(f"measuring the memory of {model_dir} failed: {out.stderr.strip().splitlines()[-1]}")
    return Memory.from_dict(json.loads(out.stdout.strip().splitlines()[-1]), f"{model_dir} memory")
