"""Drives headless Locust: its plan and command line, the run to its end or its bound, and the test's own window."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import loadtest.metrics.promql as q
from loadtest.analysis.shapes import ConstantPlan
from loadtest.runs import command
from loadtest.runs.command import host_for
from loadtest.runs.plan import LoadPlan
from loadtest.runs.spec import LOCUST_GRACE_S, ROOT, LoadSpec
from loadtest.runs.stack import Endpoints
from serving.processes import interrupt, spawn, stop_group


def load_plan(spec: LoadSpec, ends: Endpoints, images_file: Path, exporter_ports: list[int]) -> LoadPlan:
    """What Locust is to do, as the locustfile reads it (--tz-plan)."""
    return LoadPlan(models=spec.models, repo=str(spec.repo), images_file=str(images_file), images=spec.images,
                    grpc=ends.triton_grpc, experiment=spec.experiment, exporter_ports=tuple(exporter_ports),
                    run_file=str(spec.out / "run-times.json"), max_requests=spec.max_requests,
                    max_seconds=spec.seconds, linger_s=2.5 * spec.interval_s, steps_out=str(spec.out / "steps.json"),
                    shape=spec.shape, constant=ConstantPlan(spec.users, spec.seconds, spec.rate),
                    step=replace(spec.step, warmup_s=spec.warmup_s))


def locust_command(spec: LoadSpec, ends: Endpoints, plan_file: Path) -> list[str]:
    """Headless Locust on the run's plan, with its own CSV figures, in as many processes as the spec asks."""
    options = ["--headless", "--stop-timeout", "10", "--only-summary", "--csv", str(spec.out / "locust"),
               "--loglevel", "WARNING"]
    if spec.processes > 1:
        options += ["--processes", str(spec.processes)]
    host = host_for(spec.target, ends.gateway, ends.triton_http)
    return command.locust_command(spec.target, f"http://{host}", plan_file, spec.shape, options=options)


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
