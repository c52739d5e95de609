"""What a load run is: its spec, its capacity goal, the models under test and their pacing."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from loadtest.analysis.capacity import instance_count
from loadtest.analysis.shapes import AUTO_PACE, StepPlan
from loadtest.runs.command import LOAD_TARGETS
from loadtest.runs.plan import SHAPES

ROOT = Path(__file__).resolve().parents[2]
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
        if self.target not in LOAD_TARGETS:
            raise ValueError(f"unknown target {self.target!r}; choose from {sorted(LOAD_TARGETS)} (the soak's "
                             "user runs under `invoke soak`)")
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; choose from {sorted(SHAPES)}")
        if self.seconds <= 0 or self.users < 1 or self.processes < 1 or self.images < 1:
            raise ValueError("seconds, users, processes and images must be positive")
        if not 0 <= self.warmup_s < self.seconds:
            raise ValueError(f"warm-up must be at least 0 s and shorter than the run's {self.seconds} s")
        if self.target == "experiment" and len(self.models) < 2:
            raise ValueError("an A/B experiment needs at least two models (--models a,b)")


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


def models_of(spec: LoadSpec) -> tuple[str, ...]:
    """The models under test: those named, else every model of the manifest (by name, as Locust takes 'all')."""
    from serving.manifest import load_manifest

    return spec.models or tuple(sorted(load_manifest(spec.repo)))


def instances_of(spec: LoadSpec) -> int:
    """Model instances in one replica (a Triton with the models under test)."""
    return sum(instance_count((spec.repo / m / "config.pbtxt").read_text()) for m in models_of(spec))
