"""What the gateway costs: closed-loop HTTP load on the gateway and on Triton directly, in one run.

Targets are interleaved within each repeat so that machine drift hits all of them alike; every figure
is the median over repeats, after a warm-up.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from loadtest.bench.closed_loop import closed_loop
from loadtest.protocol.payloads import kserve_request
from serving.provenance import provenance


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class RunResult:
    requests: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True)
class Summary:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    runs: int


async def run_target(target: Target, concurrency: int, seconds: float) -> RunResult:
    """Closed-loop load on one target; every request must succeed, or the comparison means nothing."""
    url = urlsplit(target.url)
    result = await closed_loop(f"{url.hostname}:{url.port}", url.path, [(target.body, target.headers)],
                               concurrency, seconds)
    if result.failures:
        raise RuntimeError(f"{target.name}: {result.failures} of {result.requests} requests failed")
    return RunResult(result.requests, result.seconds, result.latencies_ms)


def benchmark(targets: list[Target], concurrency: int, seconds: float, repeats: int,
              warmup_s: float = 3.0) -> list[Summary]:
    for target in targets:
        asyncio.run(run_target(target, concurrency, warmup_s))
    runs: dict[str, list[RunResult]] = {t.name: [] for t in targets}
    for _ in range(repeats):
        for target in targets:
            runs[target.name].append(asyncio.run(run_target(target, concurrency, seconds)))
    return [summarize(name, results) for name, results in runs.items()]


def summarize(name: str, results: list[RunResult]) -> Summary:
    return Summary(
        name=name,
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(float(np.percentile(r.latencies_ms, 50)) for r in results),
        p99_ms=statistics.median(float(np.percentile(r.latencies_ms, 99)) for r in results),
        runs=len(results),
    )


def run_gateway_benchmark(repo: Path, model: str, image: np.ndarray, concurrencies: list[int], seconds: float,
                          repeats: int, report_dir: Path) -> Path:
    """Start the stack locally (Triton + gateway, separate processes), load it three ways, write the figures as
    JSON (gateway_overhead.json in `report_dir`, its path returned; loadtest.report.gateway renders it). `image`
    (C, H, W) is converted and resized to the model's input where it differs."""
    from loadtest.bench.client_cost import client_cpu_costs
    from serving.manifest import load_manifest
    from serving.pixels import refit
    from serving.stack import StackProcess  # only this entry point needs the serving side installed
    from serving.triton import free_ports

    io = load_manifest(repo)[model].io
    image = refit(image[None], io.input_dims)[0]
    port, *ports = free_ports(4)
    command = [sys.executable, "-m", "serving.stack", "--repo", str(repo), "--port", str(port),
               "--triton-ports", ",".join(map(str, ports)), "--state-file", str(report_dir / "bench-state.json")]
    gateway, triton = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ports[0]}"
    kserve, kserve_headers = kserve_request(image, io.input, io.output)
    targets = [
        Target("triton direct (KServe v2)", f"{triton}/v2/models/{model}/infer", kserve, kserve_headers),
        Target("gateway /v1 predict", f"{gateway}/v1/models/{model}/predict", image.tobytes(),
               {"Content-Type": "application/octet-stream", "X-Tensor-Shape": ",".join(map(str, image.shape))}),
        Target("gateway /v2 pass-through", f"{gateway}/v2/models/{model}/infer", kserve, kserve_headers),
    ]
    with StackProcess(command, gateway):
        results = {c: benchmark(targets, c, seconds, repeats) for c in concurrencies}
        costs = client_cpu_costs(f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}", model, image,
                                 names=(io.input, io.output))
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "gateway_overhead.json").write_text(json.dumps({
        "provenance": provenance("gateway_overhead"), "model": model, "image_shape": list(image.shape),
        "seconds": seconds, "repeats": repeats,
        "results": {str(c): [asdict(s) for s in summaries] for c, summaries in results.items()},
        "client_cpu_ms_per_call": costs}, indent=2))
    return report_dir / "gateway_overhead.json"
