"""Config search for one model (the job of Triton's Model Analyzer): max batch size x dynamic-batching delay x
instance count, each trial under the same closed-loop load, the best throughput that meets the SLO written back.

Trials run on a copy of the model folder in a temporary repository, served by a Triton in explicit model-control
mode that reloads the model for each trial; the real repository is not touched until the search has ended, and then
only through the publication that builds use (serving.publication: its lock, a staged folder swapped in atomically,
the manifest's max_batch_size updated in the same commit), everything but the three searched fields unchanged. The
model's current config is always one of the trials, and a winner must beat it by `min_gain` to be written: a
difference within the noise of a shared machine is no reason to change a served config.

The load: `concurrency` batch-1 requests kept in flight over Triton's HTTP endpoint (KServe v2 binary tensors, real
test images at the model's input shape, bodies encoded once) through the gateway's lean asyncio client; every request
is timed, failures included. Rounds are interleaved (every trial once per round) and figures are medians over rounds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from loadtest.bench.closed_loop import LoopResult, closed_loop
from loadtest.protocol.payloads import kserve_request
from serving.in_process import read_config
from serving.provenance import provenance
from serving.publication import PublicationError, republish_config
from serving.triton import TritonConfig, TritonServer, model_stats


@dataclass(frozen=True, order=True)
class Trial:
    max_batch_size: int
    max_queue_delay_us: int
    instances: int

    @property
    def label(self) -> str:
        return f"batch {self.max_batch_size}, delay {self.max_queue_delay_us} µs, {self.instances} instance(s)"


@dataclass(frozen=True)
class SearchPlan:
    max_batch_sizes: tuple[int, ...] = (8, 64)
    delays_us: tuple[int, ...] = (0, 2000)
    instances: tuple[int, ...] = (1, 2)
    concurrency: int = 8                # batch-1 requests in flight
    seconds: float = 4.0                # measured, per trial per round
    warmup_s: float = 1.0               # after each reload
    rounds: int = 1
    slo_ms: float = 100.0
    slo_quantile: float = 0.95
    max_error_rate: float = 0.01
    min_gain: float = 0.03              # a winner must beat the current config by this much to be written

    def trials(self) -> list[Trial]:
        return [Trial(*t) for t in itertools.product(self.max_batch_sizes, self.delays_us, self.instances)]

    def validate(self) -> None:
        if min(self.max_batch_sizes) < 1 or min(self.delays_us) < 0 or min(self.instances) < 1:
            raise ValueError("max batch sizes and instance counts must be >= 1, delays >= 0")
        if self.concurrency < 1 or self.seconds <= 0 or self.rounds < 1 or not 0 < self.slo_quantile < 1:
            raise ValueError("concurrency, seconds and rounds must be positive; the SLO quantile in (0, 1)")


# --- config.pbtxt through Triton's protobuf -------------------------------------------------------------------------


def current_trial(cfg: pb.ModelConfig) -> Trial:
    count = cfg.instance_group[0].count if cfg.instance_group else 1
    return Trial(cfg.max_batch_size, cfg.dynamic_batching.max_queue_delay_microseconds, count or 1)


def apply_trial(cfg: pb.ModelConfig, trial: Trial) -> pb.ModelConfig:
    """A copy of `cfg` with the three searched fields set; nothing else changes."""
    if len(cfg.instance_group) > 1:
        raise ValueError("configs with several instance groups are not searched: set their counts by hand")
    if cfg.max_batch_size == 0:
        raise ValueError("the model has no batch dimension (max_batch_size 0): nothing to batch")
    new = pb.ModelConfig()
    new.CopyFrom(cfg)
    new.max_batch_size = trial.max_batch_size
    new.dynamic_batching.max_queue_delay_microseconds = trial.max_queue_delay_us
    group = new.instance_group[0] if new.instance_group else new.instance_group.add(kind=pb.ModelInstanceGroup.KIND_CPU)
    group.count = trial.instances
    # Triton refuses a preferred batch size above the maximum: keep only those that still fit.
    kept = [b for b in new.dynamic_batching.preferred_batch_size if b <= trial.max_batch_size]
    del new.dynamic_batching.preferred_batch_size[:]
    new.dynamic_batching.preferred_batch_size.extend(kept)
    return new


def write_config_atomically(path: Path, cfg: pb.ModelConfig) -> None:
    """Write beside the target, flush to disk, then rename over it: a reader sees the old file or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text_format.MessageToString(cfg))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- the load --------------------------------------------------------------------------------------------------------


def figures(result: LoopResult, batches: tuple[int, int] | None, slo_quantile: float) -> dict:
    ok = result.requests - result.failures
    lat = np.asarray(result.latencies_ms)

    def pct(q: float) -> float | None:
        return float(np.percentile(lat, q)) if len(lat) else None

    return {"requests": result.requests, "failures": result.failures, "rps": ok / result.seconds,
            "error_rate": result.failures / result.requests if result.requests else 1.0,
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99), "slo_latency_ms": pct(100 * slo_quantile),
            "avg_batch": batches[0] / batches[1] if batches and batches[1] else None}


def failed_trial(reason: str) -> dict:
    """A trial whose config Triton would not load: no throughput, never within the SLO, the reason kept."""
    return {**figures(LoopResult(0, 0, 1.0, []), None, 0.5), "rps": 0.0, "load_error": reason}


# --- Triton in explicit model-control mode -------------------------------------------------------------------------


def _post(url: str, body: bytes = b"{}", timeout: float = 300) -> None:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url}: HTTP {exc.code}: {exc.read().decode(errors='replace')[:300]}") from None


def reload(http: str, model: str) -> None:
    """Triton's load API on a loaded model reloads it: it reads the trial's config.pbtxt afresh, starts the new
    instances, then retires the old ones. It returns once the model is ready (or with the reason it failed)."""
    _post(f"http://{http}/v2/repository/models/{model}/load")


def batch_counts(http: str, model: str) -> tuple[int, int]:
    """(inferences, executions) so far: their ratio over a trial is the average batch size Triton formed."""
    stats = model_stats(http, model)
    return stats["inferences"], stats["executions"]


def trial_repository(repo: Path, model: str, root: Path) -> Path:
    """A repository holding a copy of the model's folder only: the trials edit the copy, never the original."""
    shutil.copytree(repo / model, root / model, ignore=shutil.ignore_patterns(".*"))
    return root


def run_trial(http: str, model: str, cfg_path: Path, cfg: pb.ModelConfig, trial: Trial,
              bodies: list[tuple[bytes, dict[str, str]]], plan: SearchPlan) -> dict:
    write_config_atomically(cfg_path, apply_trial(cfg, trial))
    try:
        reload(http, model)
    except RuntimeError as exc:  # e.g. more instances than the machine can hold: this trial fails, the search goes on
        return failed_trial(str(exc))
    path = f"/v2/models/{model}/infer"
    asyncio.run(closed_loop(http, path, bodies, plan.concurrency, plan.warmup_s))
    before = batch_counts(http, model)
    result = asyncio.run(closed_loop(http, path, bodies, plan.concurrency, plan.seconds))
    after = batch_counts(http, model)
    return figures(result, (after[0] - before[0], after[1] - before[1]), plan.slo_quantile)


# --- choosing -------------------------------------------------------------------------------------------------------


def meets_slo(row: dict, plan: SearchPlan) -> bool:
    latency = row["slo_latency_ms"]
    return latency is not None and latency <= plan.slo_ms and row["error_rate"] <= plan.max_error_rate


def median_rows(rounds: list[dict[Trial, dict]]) -> dict[Trial, dict]:
    """Per trial: the median of each figure over rounds; requests and failures summed (none is dropped)."""
    out = {}
    for trial in sorted({t for r in rounds for t in r}):
        rows = [r[trial] for r in rounds if trial in r]
        row = {k: statistics.median(r[k] for r in rows if r[k] is not None) if any(r[k] is not None for r in rows)
               else None for k in ("rps", "error_rate", "p50_ms", "p95_ms", "p99_ms", "slo_latency_ms", "avg_batch")}
        row.update(requests=sum(r["requests"] for r in rows), failures=sum(r["failures"] for r in rows),
                   rounds_rps=[round(r["rps"], 1) for r in rows])
        errors = [r["load_error"] for r in rows if r.get("load_error")]
        if errors:
            row["load_error"] = errors[0]
        out[trial] = row
    return out


def choose(rows: dict[Trial, dict], current: Trial, plan: SearchPlan) -> tuple[Trial | None, str]:
    """The trial with the most throughput within the SLO, unless the current config is within `min_gain` of it."""
    feasible = {t: r for t, r in rows.items() if meets_slo(r, plan)}
    if not feasible:
        return None, "no trial met the SLO: config left as it was"
    best = max(feasible, key=lambda t: feasible[t]["rps"])
    if best == current:
        return current, "the current config is the best: nothing to write"
    base = feasible.get(current)
    if base and feasible[best]["rps"] < base["rps"] * (1 + plan.min_gain):
        return current, (f"best trial ({best.label}) is within {plan.min_gain:.0%} of the current config: "
                         "kept the current one")
    return best, f"best trial beats the current config{'' if base else ' (which missed the SLO)'}"


# --- running it ----------------------------------------------------------------------------------------------------


def search(repo: Path, model: str, images: np.ndarray, plan: SearchPlan, log: Path,
           rounds: list[dict[Trial, dict]]) -> None:
    """Every trial on a temporary copy, round by round into `rounds` (so an interrupted search keeps what it
    measured). `images` are resized to the model's input where they differ."""
    from loadtest.protocol.images import fit_payloads
    from serving.manifest import load_manifest

    entries = load_manifest(repo)
    io = entries[model].io
    bodies = [kserve_request(image, io.input, io.output) for image in fit_payloads(images, entries, [model])[model]]
    cfg = read_config(repo / model / "config.pbtxt")
    trials = sorted(set(plan.trials()) | {current_trial(cfg)})
    with tempfile.TemporaryDirectory(prefix="tz-config-search-") as tmp:
        trial_repo = trial_repository(repo, model, Path(tmp))
        cfg_path = trial_repo / model / "config.pbtxt"
        with TritonServer(TritonConfig.on_free_ports(trial_repo, model_control="explicit"), log) as server:
            for _ in range(plan.rounds):
                rounds.append({})
                for trial in trials:
                    rounds[-1][trial] = run_trial(server.cfg.http_url, model, cfg_path, cfg, trial, bodies, plan)


def tune_config(repo: Path, model: str, images: np.ndarray, plan: SearchPlan, out_dir: Path,
                write: bool = True) -> Path:
    """Search, choose, write the winner into `repo` (unless `write` is False); the results' JSON under `out_dir`."""
    from serving.manifest import load_manifest

    plan.validate()
    manifest = load_manifest(repo)
    if model not in manifest:
        raise ValueError(f"model {model!r} is not in {repo}; it has {sorted(manifest)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    current = current_trial(read_config(repo / model / "config.pbtxt"))
    rounds: list[dict[Trial, dict]] = []
    partial = None
    try:
        search(repo, model, images, plan, out_dir / f"{model}-tritonserver.log", rounds)
    except KeyboardInterrupt:
        partial = "interrupted"  # Triton is stopped by now; the repository was never touched
    rows = median_rows(rounds)
    chosen, why = choose(rows, current, plan) if partial is None else (None, "search interrupted: nothing written")
    written = False
    if write and chosen is not None and chosen != current:
        written, why = write_winner(repo, model, chosen, why)
    results = {"model": model, "repo": str(repo), "partial": partial, "plan": asdict(plan), "current": asdict(current),
               "chosen": asdict(chosen) if chosen else None, "decision": why, "written": written,
               "manifest_max_batch_size": load_manifest(repo)[model].max_batch_size,
               "trials": [{**asdict(t), **rows[t], "meets_slo": meets_slo(rows[t], plan)} for t in sorted(rows)],
               "finished_at": time.time()}
    return write_results(results, out_dir)


def write_winner(repo: Path, model: str, chosen: Trial, why: str) -> tuple[bool, str]:
    """Through the publication, as a build publishes: (written, the decision as it now reads)."""
    try:
        republish_config(repo, model, apply_trial(read_config(repo / model / "config.pbtxt"), chosen))
    except PublicationError as exc:  # e.g. a build holds the repository: the measured results are still kept
        return False, f"{why}; not written: {exc}"
    return True, why


def write_results(results: dict, out_dir: Path) -> Path:
    """The results as JSON; `loadtest.report.config_search` renders them."""
    json_path = out_dir / f"{results['model']}.json"
    json_path.write_text(json.dumps({"provenance": provenance("config_search"), **results}, indent=2) + "\n")
    return json_path


def trials_from(values: str) -> tuple[int, ...]:
    """'8,32,64' -> (8, 32, 64), for the task's options."""
    return tuple(int(v) for v in values.split(",") if v.strip())

