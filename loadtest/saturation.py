"""Served throughput at saturation: batch-64 requests kept in flight against each model, interleaved.

Every round visits every model in turn for the same time, so drift on a shared machine hits all alike;
figures are medians over rounds, and speed-ups are ratios to the baseline model within the same run.
Served throughput is also set against the build's in-process figure for the same model (serving efficiency).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from tqdm import tqdm


@dataclass(frozen=True)
class SaturationPlan:
    seconds: float = 10.0  # per model per round
    rounds: int = 3
    in_flight: int = 4  # requests outstanding at once: enough to keep one instance busy between batches
    batch: int = 64
    warmup_seconds: float = 3.0


class InFlight:
    """Keep `in_flight` async requests outstanding for `seconds`; count the images answered and the failures."""

    def __init__(self, client: grpcclient.InferenceServerClient, model: str, images: np.ndarray,
                 input_name: str = "images") -> None:
        self.client, self.model = client, model
        self.inputs = [grpcclient.InferInput(input_name, list(images.shape), "UINT8")]
        self.inputs[0].set_data_from_numpy(np.ascontiguousarray(images))
        self.batch = len(images)

    def run(self, seconds: float, in_flight: int) -> tuple[float, int]:
        slots = threading.Semaphore(in_flight)
        lock = threading.Lock()
        done, failed = [0], [0]

        def finished(result, error) -> None:
            with lock:
                if error is None:
                    done[0] += self.batch
                else:
                    failed[0] += 1
            slots.release()

        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            slots.acquire()
            try:
                self.client.async_infer(self.model, self.inputs, finished)
            except grpcclient.InferenceServerException:  # refused before sending: a failure all the same
                finished(None, True)
        for _ in range(in_flight):  # wait for the stragglers: they count, and so does their time
            slots.acquire()
        return done[0] / (time.perf_counter() - start), failed[0]


def measure_saturation(url: str, models: list[str], images: np.ndarray,
                       plan: SaturationPlan = SaturationPlan()) -> dict[str, dict]:
    """Served images per second of each model at saturation: the median over interleaved rounds."""
    client = grpcclient.InferenceServerClient(url)
    try:
        loads = {m: InFlight(client, m, images[:plan.batch]) for m in models}
        for load in loads.values():
            load.run(plan.warmup_seconds, plan.in_flight)
        rates: dict[str, list[float]] = {m: [] for m in models}
        failures = dict.fromkeys(models, 0)
        for _ in tqdm(range(plan.rounds), desc="served saturation (interleaved rounds)", unit="round", leave=False):
            for model, load in loads.items():
                rate, failed = load.run(plan.seconds, plan.in_flight)
                rates[model].append(rate)
                failures[model] += failed
    finally:
        client.close()
    return {m: {"served_ips": round(statistics.median(r), 1), "rounds_ips": [round(x, 1) for x in r],
                "failed_requests": failures[m]} for m, r in rates.items()}


def compare(results: dict[str, dict], manifest: dict[str, dict], baseline: str) -> dict[str, dict]:
    """Add each model's speed-up over `baseline` (same run) and served / in-process throughput."""
    base = results.get(baseline, {}).get("served_ips")
    for model, row in results.items():
        in_process = manifest.get(model, {}).get("speed", {}).get("throughput_b64_ips")
        row["speedup_vs_baseline"] = round(row["served_ips"] / base, 2) if base else None
        row["in_process_ips"] = in_process
        row["served_over_in_process"] = round(row["served_ips"] / in_process, 2) if in_process else None
    return results


def write_results(results: dict[str, dict], plan: SaturationPlan, baseline: str, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "saturation.json").write_text(json.dumps(
        {"plan": asdict(plan), "baseline": baseline, "models": results}, indent=2) + "\n")
    lines = [f"# Served throughput at saturation (batch {plan.batch}, {plan.in_flight} requests in flight)", "",
             f"Median of {plan.rounds} interleaved rounds of {plan.seconds:.0f} s per model, after warm-up. "
             f"Speed-ups are ratios to `{baseline}` served in the same run; in-process figures are the build's.", "",
             "| model | served img/s | speed-up | in-process img/s | served / in-process | failed requests |",
             "|---|---|---|---|---|---|"]
    for model, r in results.items():
        lines.append(f"| {model} | {r['served_ips']:.0f} | {_x(r['speedup_vs_baseline'])} | "
                     f"{r['in_process_ips'] or '–'} | {_x(r['served_over_in_process'])} | {r['failed_requests']} |")
    path = out_dir / "saturation.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def run_saturation_benchmark(repo: Path, models: list[str], images: np.ndarray, plan: SaturationPlan,
                             baseline: str, out_dir: Path) -> Path:
    """Start Triton with just `models` loaded, measure them, and write JSON and Markdown; return the latter."""
    from serving.manifest import load_manifest
    from serving.triton import TritonConfig, TritonServer

    manifest = load_manifest(repo)
    unknown = [m for m in models if m not in manifest]
    if unknown:
        raise ValueError(f"models {unknown} are not in {repo}; it has {sorted(manifest)}")
    with TritonServer(TritonConfig.loading(repo, models)) as server:
        results = measure_saturation(server.cfg.grpc_url, models, images, plan)
    return write_results(compare(results, manifest, baseline), plan, baseline, out_dir)
