"""`invoke loadtest`: Triton (or the gateway stack), a real Prometheus and headless Locust, bounded, on loopback.

Everything started here is stopped on exit, on errors and on Ctrl-C; an interrupted run still reads back what
Prometheus holds and writes its results, marked partial.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import loadtest.metrics.promql as q
from loadtest.analysis.capacity import Slo, instance_count, plan_capacity, replan
from loadtest.analysis.shapes import AUTO_PACE, ConstantPlan, StepPlan
from loadtest.metrics.prometheus import PromClient, PrometheusServer, binary
from loadtest.protocol.images import payloads_for, save_payloads
from loadtest.runs.plan import LoadPlan
from serving.processes import interrupt, log_tail, spawn, stop_group

ROOT = Path(__file__).resolve().parents[2]
USERS = {"http": "TritonHttpUser", "grpc": "TritonGrpcUser", "gateway": "GatewayUser",
         "experiment": "GatewayExperimentUser"}
SHAPES = {"constant": "loadtest/locust/constant_shape.py", "step": "loadtest/locust/step_shape.py"}
LOCUST_GRACE_S = 60.0  # beyond its own bounds, before Locust is stopped from outside
CONFIRM_WARMUP_S = 5.0
AUTO_USERS = 16


@dataclass(frozen=True)
class LoadSpec:
    repo: Path
    data: Path | None                   # payload images for models whose card names no dataset on this disk
    out: Path
    models: tuple[str, ...] = ()        # empty: every model of the manifest
    target: str = "http"                # http | grpc | gateway | experiment
    shape: str = "constant"             # constant | step
    users: int = 4
    rate: float = 0.0                   # constant shape: total requests/s; 0: closed loop
    seconds: float = 30.0               # bound on the load phase
    max_requests: int = 0               # bound on requests; 0: none
    images: int = 500
    processes: int = 1                  # Locust processes running users (Locust's --processes)
    interval_s: float = 1.0             # Prometheus scrape interval
    step: StepPlan = field(default_factory=StepPlan)
    experiment: str = "ab"
    warmup_s: float = 0.0               # left out of every figure: a fresh Triton's first batches are slow

    def validate(self) -> None:
        if self.target not in USERS:
            raise ValueError(f"unknown target {self.target!r}; choose from {sorted(USERS)}")
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; choose from {sorted(SHAPES)}")
        if self.seconds <= 0 or self.users < 1 or self.processes < 1 or self.images < 1:
            raise ValueError("seconds, users, processes and images must be positive")
        if not 0 <= self.warmup_s < self.seconds:
            raise ValueError(f"warm-up must be at least 0 s and shorter than the run's {self.seconds} s")
        if self.target == "experiment" and len(self.models) < 2:
            raise ValueError("an A/B experiment needs at least two models (--models a,b)")


@dataclass(frozen=True)
class Endpoints:
    triton_http: str
    triton_grpc: str
    triton_metrics: str
    gateway: str | None = None


@contextmanager
def serve(spec: LoadSpec, admin_key: str) -> Iterator[Endpoints]:
    """Triton with only the chosen models loaded, or the whole stack (gateway + Triton) for gateway targets."""
    from serving.triton import TritonConfig, TritonServer, free_ports

    if spec.target in ("gateway", "experiment"):
        from serving.stack import StackProcess

        port, http, grpc, metrics = free_ports(4)
        command = [sys.executable, "-m", "serving.stack", "--repo", str(spec.repo), "--port", str(port),
                   "--triton-ports", f"{http},{grpc},{metrics}", "--state-file", str(spec.out / "gateway-state.json")]
        env = {**os.environ, "TRITONZOO_ADMIN_KEY": admin_key}
        with StackProcess(command, f"http://127.0.0.1:{port}", env, ROOT):
            yield Endpoints(f"127.0.0.1:{http}", f"127.0.0.1:{grpc}", f"127.0.0.1:{metrics}", f"127.0.0.1:{port}")
        return
    cfg = TritonConfig.loading(spec.repo, spec.models)
    with TritonServer(cfg, spec.out / "tritonserver.log"):
        yield Endpoints(cfg.http_url, cfg.grpc_url, f"{cfg.host}:{cfg.metrics_port}")


def create_experiment(gateway: str, name: str, models: tuple[str, ...], admin_key: str) -> None:
    """Equal weights across the models, through the gateway's admin API."""
    body = json.dumps({"arms": {m: 1.0 for m in models}}).encode()
    req = urllib.request.Request(f"http://{gateway}/admin/experiments/{name}", data=body, method="PUT",
                                 headers={"Content-Type": "application/json", "X-API-Key": admin_key})
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


def load_plan(spec: LoadSpec, ends: Endpoints, images_file: Path, exporter_ports: list[int]) -> LoadPlan:
    """What Locust is to do, as the locustfile reads it (--tz-plan)."""
    return LoadPlan(models=spec.models, repo=str(spec.repo), images_file=str(images_file), images=spec.images,
                    grpc=ends.triton_grpc, experiment=spec.experiment, exporter_ports=tuple(exporter_ports),
                    run_file=str(spec.out / "run-times.json"), max_requests=spec.max_requests,
                    max_seconds=spec.seconds, linger_s=2.5 * spec.interval_s, steps_out=str(spec.out / "steps.json"),
                    shape=spec.shape, constant=ConstantPlan(spec.users, spec.seconds, spec.rate),
                    step=replace(spec.step, warmup_s=spec.warmup_s))


def locust_command(spec: LoadSpec, ends: Endpoints, plan_file: Path) -> list[str]:
    host = ends.gateway if spec.target in ("gateway", "experiment") else ends.triton_http
    cmd = [sys.executable, "-m", "locust", "-f", f"loadtest/locust/locustfile.py,{SHAPES[spec.shape]}", "--headless",
           USERS[spec.target], "--host", f"http://{host}", "--stop-timeout", "10", "--only-summary",
           "--csv", str(spec.out / "locust"), "--loglevel", "WARNING", "--tz-plan", str(plan_file)]
    if spec.processes > 1:
        cmd += ["--processes", str(spec.processes)]
    return cmd


@dataclass
class LocustOutcome:
    returncode: int | None
    partial: str | None        # why the run did not finish by itself: interrupted | timeout | None


def drive_locust(command: list[str], log_path: Path, bound_s: float) -> LocustOutcome:
    """Run Locust to its own end; Ctrl-C or a run past every bound interrupts it (it still exports its totals)."""
    proc = spawn(command, log_path, cwd=ROOT)
    try:
        return LocustOutcome(proc.wait(bound_s + LOCUST_GRACE_S), None)
    except subprocess.TimeoutExpired:
        interrupt(proc)
        return LocustOutcome(proc.returncode, "timeout")
    except KeyboardInterrupt:
        interrupt(proc)
        return LocustOutcome(proc.returncode, "interrupted")
    finally:
        stop_group(proc)


def run_window(out: Path, fallback: q.Window) -> q.Window:
    """The test's own start and end (Locust's test_start/test_stop), else the process's lifetime."""
    path = out / "run-times.json"
    times = json.loads(path.read_text()) if path.exists() else {}
    return q.Window(times.get("start", fallback.start), times.get("end", fallback.end))


@dataclass(frozen=True)
class Stack:
    """What a run loads and reads back from: the servers, a Prometheus scraping them, the exporter ports it scrapes."""

    ends: Endpoints
    prometheus: PromClient
    exporter_ports: list[int]


@contextmanager
def load_stack(spec: LoadSpec) -> Iterator[Stack]:
    """Triton (or the gateway stack, with the experiment created) and Prometheus, stopped on the way out."""
    from serving.triton import free_ports

    admin_key = secrets.token_hex(16)
    binary("prometheus")  # before any server starts: a missing Prometheus is one line, not a torn-down stack
    prom_port, *exporter_ports = free_ports(1 + spec.processes)
    spec.out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        ends = stack.enter_context(serve(spec, admin_key))
        targets = {"triton": [ends.triton_metrics], "gateway": [ends.gateway] if ends.gateway else [],
                   "locust": [f"127.0.0.1:{p}" for p in exporter_ports]}
        prom = stack.enter_context(PrometheusServer(targets, prom_port, spec.interval_s, spec.out / "prometheus.log"))
        prom.client.wait_for_targets({"triton", "gateway"})
        if spec.target == "experiment" and ends.gateway is not None:  # serve() starts a gateway for experiments
            create_experiment(ends.gateway, spec.experiment, spec.models, admin_key)
        yield Stack(ends, prom.client, exporter_ports)


def run_load(spec: LoadSpec, stack: Stack | None = None) -> dict:
    """The whole run, on `stack` if given, else on servers of its own; returns the results (also written to
    spec.out as loadtest.json and loadtest.md)."""
    spec.validate()
    spec.out.mkdir(parents=True, exist_ok=True)
    for stale in ("run-times.json", "steps.json"):
        (spec.out / stale).unlink(missing_ok=True)
    images_file = save_payloads(payloads_for(spec.repo, models_of(spec), spec.data, spec.images),
                                spec.out / "images.npz")
    with nullcontext(stack) if stack else load_stack(spec) as on:
        started = time.time()
        plan_file = load_plan(spec, on.ends, images_file, on.exporter_ports).write(spec.out / "locust-plan.json")
        outcome = drive_locust(locust_command(spec, on.ends, plan_file), spec.out / "locust.log", spec.seconds)
        exited = time.time()
        window = run_window(spec.out, q.Window(started, exited))
        if spec.warmup_s:
            cut = min(window.start + spec.warmup_s, window.end)
            window = q.Window(q.sample_time(on.prometheus, q.LOCUST_REQUESTS, cut), window.end)
        time.sleep(2 * spec.interval_s)  # one more scrape of Triton and the gateway after the last request
        results = collect(on.prometheus, spec, window, outcome, exited)
    write_results(results, spec.out)
    return results


@dataclass(frozen=True)
class CapacityGoal:
    target_rps: float = 0.0             # the load to plan for; 0: only the curve and the max under the SLO
    headroom: float = 0.2               # fraction of each replica's capacity kept spare
    price_per_instance_hour: float = 1.0
    confirm_seconds: float = 0.0        # > 0: a constant-rate run at the predicted capacity must meet the SLO
    confirm_attempts: int = 2           # on a miss, back off to the next lower sustainable step, this many in all


def resolve_pacing(spec: LoadSpec) -> LoadSpec:
    """With --user-rps auto, every user counted in --start-users, --step-users and --max-users adds 1/AUTO_USERS of
    what the models did in process at batch 64 (the manifest's figure; for several models taking turns, the
    harmonic mean): steps fine enough for a slow model, and few enough for a fast one.

    That share is spread over as many real users as keep each user's interval at least the SLO latency: a paced
    user whose answers take longer than its interval turns closed loop and offers less than its rate, so with
    shorter intervals a fast model's users would fall behind long before the SLO breaks."""
    from serving.manifest import load_manifest

    if spec.step.user_rps != AUTO_PACE:
        return spec
    manifest = load_manifest(spec.repo)
    found = [manifest[m].throughput_b64 for m in models_of(spec) if m in manifest]
    speeds = [v for v in found if v is not None]
    if not speeds or len(speeds) < len(found):
        raise ValueError("--user-rps auto needs the models' measured throughput in the manifest (speed."
                         "throughput_b64_ips); give a rate per user instead")
    share = len(speeds) / sum(1 / v for v in speeds) / AUTO_USERS
    spread = max(1, math.ceil(share * spec.step.slo_ms / 1e3))
    step = spec.step
    return replace(spec, step=replace(step, user_rps=round(share / spread, 2), start_users=step.start_users * spread,
                                      step_users=step.step_users * spread, max_users=step.max_users * spread,
                                      spawn_rate=step.spawn_rate * spread))


def run_capacity(spec: LoadSpec, goal: CapacityGoal) -> dict:
    """A step-load, its capacity plan, and optionally a confirmation run at the predicted capacity."""
    spec = replace(resolve_pacing(spec), shape="step")
    slo = Slo(spec.step.slo_ms / 1e3, spec.step.slo_quantile, spec.step.max_error_rate)
    with load_stack(spec) as stack:
        results = run_load(spec, stack)
        results["capacity"] = plan_capacity((results["steps"] or {}).get("steps", []), slo, goal.target_rps,
                                            goal.headroom, goal.price_per_instance_hour, _instances(spec),
                                            spec.step.user_rps)
        if goal.confirm_seconds > 0 and results["capacity"]["plan"] and not results["partial"]:
            results["confirmations"] = confirm_plan(spec, slo, goal, results, stack)
            results["confirmation"] = results["confirmations"][-1]
            results["partial"] = results["confirmation"]["partial"]  # a Ctrl-C there stops a sweep of models too
    write_results(results, spec.out)
    return results


def run_each(spec: LoadSpec, goal: CapacityGoal, out: Callable[[str], Path]) -> dict[str, dict]:
    """One run per model, each on a Triton of its own, into `out(model)`: per-variant curves and capacity plans.
    Stops at the first partial run (Ctrl-C or a timeout), keeping the runs finished before it."""
    results: dict[str, dict] = {}
    for model in models_of(spec):
        one = replace(spec, models=(model,), out=out(model))
        results[model] = run_capacity(one, goal) if spec.shape == "step" else run_load(one)
        if results[model]["partial"]:
            break
    return results


def confirm_plan(spec: LoadSpec, slo: Slo, goal: CapacityGoal, results: dict, stack: Stack) -> list[dict]:
    """Confirm the plan at the max sustainable step; if that misses, back off to the next lower sustainable step and
    confirm again, up to `goal.confirm_attempts` runs. The plan follows the step whose confirmation was met; if none
    was, it stays on the max sustainable step and every attempt is reported missed."""
    attempts: list[dict] = []
    for point in results["capacity"]["sustainable"][:max(1, goal.confirm_attempts)]:
        folder = spec.out / ("confirm" if not attempts else f"confirm-{len(attempts) + 1}")
        attempts.append(confirm(spec, slo, point, point["rps"] * (1 - goal.headroom), goal.confirm_seconds, stack,
                                folder))
        if attempts[-1]["met"] and len(attempts) > 1:
            results["capacity"] = replan(results["capacity"], point)
        if attempts[-1]["met"] or attempts[-1]["partial"]:
            break
    return attempts


def confirm(spec: LoadSpec, slo: Slo, best: dict, rate: float, seconds: float, stack: Stack | None = None,
            out: Path | None = None) -> dict:
    """A constant arrival rate at the predicted per-replica capacity (max sustainable less the headroom), on the
    replica the curve was measured on (`stack`), after a warm-up; the prediction holds if the SLO is met and the
    rate is reached.

    It runs with the users of the step that measured the capacity, each paced to its share of the rate: the
    concurrency the curve was measured with. Fewer would be bound by latency and miss the rate; more would let
    more requests queue than at that step."""
    users = best["users"]
    run = run_load(replace(spec, shape="constant", rate=rate, users=users, seconds=seconds + CONFIRM_WARMUP_S,
                           warmup_s=CONFIRM_WARMUP_S, max_requests=0, out=out or spec.out / "confirm"), stack)
    locust = run["locust"]["requests"]
    requests = sum(c["success"] + c["failure"] for c in locust.values())
    failures = sum(c["failure"] for c in locust.values())
    measured_rps = (requests - failures) / run["window"]["seconds"]
    latency = run["locust"]["latency_all_s"].get("all", {}).get(str(slo.quantile))
    error_rate = failures / requests if requests else 1.0
    met = latency is not None and latency <= slo.latency_s and error_rate <= slo.max_error_rate and \
        measured_rps >= 0.95 * rate and run["partial"] is None
    return {"users": users, "seconds": seconds, "predicted_rps": rate, "measured_rps": measured_rps,
            "slo_latency_s": slo.latency_s, "measured_latency_s": latency, "error_rate": error_rate,
            "met": met, "partial": run["partial"]}


def models_of(spec: LoadSpec) -> tuple[str, ...]:
    """The models under test: those named, else every model of the manifest (by name, as Locust takes 'all')."""
    from serving.manifest import load_manifest

    return spec.models or tuple(sorted(load_manifest(spec.repo)))


def _instances(spec: LoadSpec) -> int:
    """Model instances in one replica (a Triton with the models under test)."""
    return sum(instance_count((spec.repo / m / "config.pbtxt").read_text()) for m in models_of(spec))


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


def write_results(results: dict, out: Path) -> tuple[Path, Path]:
    from loadtest.report.run import markdown

    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "loadtest.json", out / "loadtest.md"
    json_path.write_text(json.dumps(results, indent=2))
    md_path.write_text(markdown(results))
    return json_path, md_path
