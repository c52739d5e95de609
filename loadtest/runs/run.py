"""`invoke loadtest`: a load run, a capacity run or one per model; an interrupted run writes its results, partial."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import loadtest.metrics.promql as q
from loadtest.analysis.capacity import Slo, plan_capacity, replan
from loadtest.protocol.images import payloads_for, save_payloads
from loadtest.runs.collect import collect, write_results
from loadtest.runs.drive import drive_locust, load_plan, locust_command, run_window
from loadtest.runs.spec import CONFIRM_WARMUP_S, CapacityGoal, LoadSpec, instances_of, models_of, resolve_pacing
from loadtest.runs.stack import Stack, load_stack


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


def run_capacity(spec: LoadSpec, goal: CapacityGoal) -> dict:
    """A step-load, its capacity plan, and optionally a confirmation run at the predicted capacity."""
    spec = replace(resolve_pacing(spec), shape="step")
    slo = Slo(spec.step.slo_ms / 1e3, spec.step.slo_quantile, spec.step.max_error_rate)
    with load_stack(spec) as stack:
        results = run_load(spec, stack)
        results["capacity"] = plan_capacity((results["steps"] or {}).get("steps", []), slo, goal.target_rps,
                                            goal.headroom, goal.price_per_instance_hour, instances_of(spec),
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
