"""Served throughput at saturation: batch-64 requests kept in flight against each model, interleaved.

Every round visits every model in turn for the same time, so drift on a shared machine hits all alike;
figures are medians over rounds, and speed-ups are ratios to the baseline model within the same run.
Serving efficiency: right after its served window, each model also runs in this process for the same time, on
the session its Triton backend builds from the same config, driven as the backend drives it, and the two are
compared round by round.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from tqdm import tqdm

from serving.in_process import Runner, in_process_runner
from serving.manifest import ModelEntry
from serving.provenance import provenance


@dataclass(frozen=True)
class SaturationPlan:
    seconds: float = 10.0  # per model per round
    rounds: int = 3
    in_flight: int = 4  # requests outstanding at once: enough to keep one instance busy between batches
    batch: int = 64
    warmup_seconds: float = 3.0
    # Also run in process beside a CPU tax equal to the client's CPU in the served window: on a machine where the
    # client shares the server's cores, served over that isolates what serving costs from what loading costs.
    client_tax: bool = True


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


def in_process_rate(run: Runner, images: np.ndarray, seconds: float) -> float:
    """Images per second in this process, run as its backend runs it at saturation: an OpenVINO session (it has
    `start`) keeps a whole batch on every stream, any other runner takes batches back to back."""
    start, wait = getattr(run, "start", None), getattr(run, "wait", None)
    begin, done = time.perf_counter(), 0
    while time.perf_counter() - begin < seconds:
        if start:
            start(images)  # waits while every stream is busy
        else:
            run(images)
        done += len(images)
    if start and wait:  # the batches still in flight count, and so does their time
        wait()
    return done / (time.perf_counter() - begin)


def taxed_in_process_rate(run: Runner, images: np.ndarray, seconds: float, cores: float) -> float:
    """In-process rate beside `loadtest.bench.cpu_tax` spending `cores` of a core: the CPU the client took while
    served."""
    tax = subprocess.Popen([sys.executable, "-m", "loadtest.bench.cpu_tax", "--cores", f"{min(cores, 1.0):.3f}",
                            "--seconds", f"{seconds:.3f}"])
    try:
        return in_process_rate(run, images, seconds)
    finally:
        tax.wait()


def measure_saturation(url: str, models: list[str], images: np.ndarray | Mapping[str, np.ndarray],
                       plan: SaturationPlan = SaturationPlan(), runners: dict[str, Runner] | None = None,
                       input_names: Mapping[str, str] | None = None) -> dict[str, dict]:
    """Served (and, where a runner is given, in-process) images per second of each model: per round and median.
    `images`: one array for every model, or each model's own (models of other families take other shapes)."""
    runners, input_names = runners or {}, input_names or {}
    batches = {m: np.ascontiguousarray((images[m] if isinstance(images, Mapping) else images)[:plan.batch])
               for m in models}
    client = grpcclient.InferenceServerClient(url)
    try:
        loads = {m: InFlight(client, m, batches[m], input_names.get(m, "images")) for m in models}
        for model, load in loads.items():
            load.run(plan.warmup_seconds, plan.in_flight)
            if model in runners:
                in_process_rate(runners[model], batches[model], plan.warmup_seconds)
        rounds: dict[str, dict[str, list[float]]] = {m: {"served": [], "local": [], "taxed": [], "client_cores": []}
                                                     for m in models}
        failures = dict.fromkeys(models, 0)
        for _ in tqdm(range(plan.rounds), desc="served saturation (interleaved rounds)", unit="round", leave=False):
            for model, load in loads.items():
                cpu0, wall0 = time.process_time(), time.perf_counter()  # this process is the client meanwhile
                rate, failed = load.run(plan.seconds, plan.in_flight)
                cores = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
                failures[model] += failed
                row = rounds[model]
                row["served"].append(rate)
                row["client_cores"].append(cores)
                if model in runners:
                    row["local"].append(in_process_rate(runners[model], batches[model], plan.seconds))
                    if plan.client_tax:
                        row["taxed"].append(taxed_in_process_rate(runners[model], batches[model], plan.seconds,
                                                                  cores))
    finally:
        client.close()
    return {m: _row(failed=failures[m], **rounds[m]) for m in models}


def _row(served: list[float], local: list[float], failed: int, taxed: Sequence[float] = (),
         client_cores: Sequence[float] = ()) -> dict:
    row = {"served_ips": round(statistics.median(served), 1), "rounds_ips": [round(x, 1) for x in served],
           "failed_requests": failed, "client_cores": _median(client_cores, 3)}
    for key, ref in (("in_process", local), ("in_process_taxed", taxed)):
        row[f"{key}_ips"] = _median(ref, 1)
        row[f"{key}_rounds_ips"] = [round(x, 1) for x in ref] or None
        row[f"served_over_{key}"] = _median([s / i for s, i in zip(served, ref)], 2)
    return row


def _median(values: Sequence[float], digits: int) -> float | None:
    return round(statistics.median(values), digits) if values else None


def baseline_first(manifest: Mapping[str, ModelEntry]) -> list[str]:
    """Every model, by name, with the baseline first (the model the manifest names as its own baseline: the build's
    speed-ups are ratios to it): the baseline of every served speed-up."""
    return sorted(manifest, key=lambda m: (not manifest[m].is_baseline, m))


def add_speedups(results: dict[str, dict], baseline: str) -> dict[str, dict]:
    """Each model's served speed-up over `baseline`, measured in the same run."""
    base = results.get(baseline, {}).get("served_ips")
    for row in results.values():
        row["speedup_vs_baseline"] = round(row["served_ips"] / base, 2) if base else None
    return results


def write_results(results: dict[str, dict], plan: SaturationPlan, baseline: str, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = provenance("saturation")
    path = out_dir / "saturation.json"  # `loadtest.report.saturation` renders it
    path.write_text(json.dumps({"provenance": stamp, "plan": asdict(plan), "baseline": baseline,
                                "machine": stamp["machine"], "models": results}, indent=2) + "\n")
    return path



def run_saturation_benchmark(repo: Path, models: list[str], images: np.ndarray | Mapping[str, np.ndarray],
                             plan: SaturationPlan, baseline: str, out_dir: Path) -> Path:
    """Start Triton with just `models` loaded, measure them, and write their JSON; return its path.
    `images`: each model's own payloads (`loadtest.protocol.images.payloads_for`), or one array, resized to each model's
    input."""
    from loadtest.protocol.images import fit_payloads
    from serving.manifest import load_manifest
    from serving.triton import TritonConfig, TritonServer

    manifest = load_manifest(repo)
    unknown = [m for m in models if m not in manifest]
    if unknown:
        raise ValueError(f"models {unknown} are not in {repo}; it has {sorted(manifest)}")
    payloads = fit_payloads(images, manifest, models)
    runners = {m: in_process_runner(repo / m) for m in models}
    with TritonServer(TritonConfig.loading(repo, models)) as server:
        results = measure_saturation(server.cfg.grpc_url, models, payloads, plan, runners,
                                     {m: manifest[m].io.input for m in models})
    return write_results(add_speedups(results, baseline), plan, baseline, out_dir)
