"""Reads a run's figures back from Prometheus through PromQL and writes them as loadtest.json and loadtest.md."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import loadtest.metrics.promql as q
from loadtest.runs.drive import LocustOutcome
from loadtest.runs.spec import LoadSpec
from serving.processes import log_tail
from serving.provenance import provenance


def collect(client, spec: LoadSpec, window: q.Window, outcome: LocustOutcome, exited: float | None = None) -> dict:
    """Every figure of the run, read back through PromQL.

    Totals are read after a scrape that followed Locust's exit (`exited`): its test ends on the master before
    the workers have finished their last requests.
    """
    settled = q.Window(window.start, max(window.end, exited or 0.0) + 1.5 * spec.interval_s)
    since = window.start if spec.warmup_s else None  # Locust's exporter counts from its start: leave the warm-up out
    steps = _steps(client, spec.out / "steps.json")
    return {
        "spec": _spec_dict(spec), "partial": outcome.partial, "locust_returncode": outcome.returncode,
        "locust_log_tail": log_tail(spec.out / "locust.log", 15) if outcome.returncode else "",
        "window": {"start": window.start, "end": window.end, "seconds": window.seconds},
        "triton": {m: {**f, "rps": f["requests"] / window.seconds, "inferences_per_s": f["inferences"] / window.seconds}
                   for m, f in q.triton_figures(client, settled).items()},
        "locust": {"requests": q.locust_totals(client, settled, since),
                   "latency_s": q.histogram_quantiles(client, q.LOCUST_BUCKETS, settled, by=("name",), final=True,
                                                      since=since),
                   "latency_all_s": q.histogram_quantiles(client, q.LOCUST_BUCKETS, settled, final=True, since=since),
                   "latency_buckets": q.histogram_buckets(client, q.LOCUST_BUCKETS, settled, since=since)},
        "gateway": q.gateway_figures(client, settled) if spec.target in ("gateway", "experiment") else {},
        "steps": steps,
        "series": q.time_series(client, settled, spec.interval_s),
    }


def _steps(client, path: Path) -> dict:
    """The step shape's own record, each step refined with Prometheus's sub-ms percentiles and Triton's counts."""
    if not path.exists():
        return {}
    record = json.loads(path.read_text())
    for step in record["steps"]:
        window = q.Window(step["start"], step["end"])
        step["latency_s"] = q.histogram_quantiles(client, q.LOCUST_BUCKETS, window).get("all", {})
        inferences = q.triton_delta(client, "nv_inference_count", window)
        executions = q.triton_delta(client, "nv_inference_exec_count", window)
        step["triton_inferences_per_s"] = {m: n / window.seconds for m, n in inferences.items()}
        step["triton_avg_batch_size"] = {m: n / executions[m] for m, n in inferences.items() if executions.get(m)}
    return record


def _spec_dict(spec: LoadSpec) -> dict:
    d = asdict(spec)
    return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def write_results(results: dict, out: Path) -> Path:
    """The results as JSON (loadtest.json); `loadtest.report.run` renders them."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "loadtest.json"
    json_path.write_text(json.dumps({"provenance": provenance("loadtest"), **results}, indent=2))
    return json_path
