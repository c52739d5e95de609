"""Canary rollout as a schedule: every replica computes the same weight from the clock, and the same rollback.

A canary is declared in the experiments file with its start time, steps and interval: from `start + k * interval`
the candidate has weight `steps[k]`, the baseline arms share the rest. Any replica that reads the file computes the
same weights at the same time, without talking to the others, and a replica that restarts rejoins the schedule.

After each step, the step's error rate decides: above `max_error_rate`, the canary rolls back. With a Prometheus
URL, the rate is that of every replica together, read from Prometheus for the step's window (as Flagger and Argo
Rollouts do), asked `settle_s` after the step so that every replica's last scrape is in, and asked at the step's
end time, so that every replica gets the same answer. Without one, each replica judges from its own requests (the
view of a single gateway). After the last step passes, the candidate is promoted.

The candidate is loaded and ready before it gets any traffic (the admin API loads it; in Kubernetes every Triton
replica loads every published model), and the old models stay loaded, so no request fails during the switch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from serving.gateway.catalogue import Catalogue
from serving.gateway.errors import ApiError, BadRequest, Unavailable
from serving.gateway.experiments import CanaryPlan, Experiment, ExperimentStore
from serving.gateway.triton_client import TritonInference

log = logging.getLogger("tritonzoo.gateway.canary")
ARM_REQUESTS = "tritonzoo_gateway_arm_requests_total"  # GatewayMetrics.arm_requests, as Prometheus names it
FINAL = ("promoted", "rolled_back", "interrupted")
LATE_S = 1.0  # a step boundary seen later than this (a replica that started since) gives no local snapshot


@dataclass(frozen=True)
class CanarySchedule:
    experiment: str
    model: str
    start: float
    steps: tuple[float, ...]
    interval_s: float
    max_error_rate: float

    @classmethod
    def of(cls, experiment: Experiment) -> CanarySchedule | None:
        """The experiment's live schedule: a canary with a start, neither promoted nor rolled back by hand."""
        canary = experiment.canary
        if not canary or "start" not in canary or canary.get("state") in FINAL:
            return None
        return cls(experiment.name, canary["model"], float(canary["start"]), tuple(canary["steps"]),
                   float(canary["interval_s"]), float(canary["max_error_rate"]))

    @property
    def key(self) -> tuple[str, str, float]:
        return self.experiment, self.model, self.start

    def step_at(self, t: float) -> int:
        """-1 before the start, k during step k, len(steps) after the last step."""
        if t < self.start:
            return -1
        if self.interval_s <= 0:
            return len(self.steps)
        return min(len(self.steps), int((t - self.start) // self.interval_s))

    def boundary(self, k: int) -> float:
        return self.start + k * self.interval_s

    def arms(self, baseline: dict[str, float], weight: float) -> dict[str, float]:
        total = sum(baseline.values())
        return {m: w / total * (1 - weight) for m, w in baseline.items() if m != self.model} | {self.model: weight}


@dataclass
class Progress:
    """What this replica knows of one schedule: steps checked, the failing step if any, local request counts."""

    checked: int = -1
    failed: tuple[int, str] | None = None
    snapshots: dict[int, tuple[int, int]] = field(default_factory=dict)  # boundary -> (ok, failed) at that time


def effective(declared: Experiment, now: float, progress: Progress | None) -> tuple[Experiment, float]:
    """The experiment as it stands at `now`, and until when that holds: arms and canary status from the schedule."""
    canary = declared.canary
    schedule = CanarySchedule.of(declared)
    if schedule is None:
        if canary and canary.get("state") in FINAL:
            canary = {**canary, "weight": 1.0 if canary["state"] == "promoted" else 0.0}
            return Experiment(declared.name, declared.arms, declared.shadow, canary), math.inf
        return declared, math.inf
    assert canary is not None  # a schedule is read from the declared canary
    status = {**canary, "baseline": dict(declared.arms)}
    progress = progress or Progress()
    steps = len(schedule.steps)
    if progress.failed is not None:
        k, reason = progress.failed
        status.update(state="rolled_back", weight=0.0, step=k, reason=reason)
        return declared.with_weights(declared.arms, status), math.inf
    k = schedule.step_at(now)
    if k < 0:
        status.update(state="pending", weight=0.0, step=-1)
        return declared.with_weights(declared.arms, status), schedule.start
    if k >= steps and progress.checked >= steps - 1:
        status.update(state="promoted", weight=1.0, step=steps)
        return declared.with_weights({schedule.model: 1.0}, status), math.inf
    weight = schedule.steps[min(k, steps - 1)]
    status.update(state="ramping", weight=weight, step=min(k, steps - 1))
    until = schedule.boundary(k + 1) if k < steps else math.inf  # the last check's outcome invalidates it
    return declared.with_weights(schedule.arms(declared.arms, weight), status), until


@dataclass
class ArmHealth:
    """Requests and failures per (experiment, model), as this gateway saw them; experiment '' is direct. Also
    counted in Prometheus (`count`), where the canary's rollback reads every replica's."""

    ok: dict[tuple[str, str], int] = field(default_factory=dict)
    failed: dict[tuple[str, str], int] = field(default_factory=dict)
    count: Callable[[str, str, bool], None] | None = None

    def record(self, experiment: str, model: str, success: bool) -> None:
        counts = self.ok if success else self.failed
        counts[experiment, model] = counts.get((experiment, model), 0) + 1
        if self.count is not None:
            self.count(experiment, model, success)

    def snapshot(self, experiment: str, model: str) -> tuple[int, int]:
        return self.ok.get((experiment, model), 0), self.failed.get((experiment, model), 0)


class PrometheusErrors:
    """A step's requests and failures on every replica, from Prometheus, as of the step's end."""

    def __init__(self, url: str, timeout_s: float = 3.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.client = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s, transport=transport)

    async def window(self, schedule: CanarySchedule, k: int) -> tuple[float, float] | None:
        """(requests, failures) of step k, or None when Prometheus cannot answer."""
        selector = f'experiment="{_escape(schedule.experiment)}",model="{_escape(schedule.model)}"'
        width_ms = max(1, int(round(schedule.interval_s * 1000)))
        query = f"sum by (outcome) (increase({ARM_REQUESTS}{{{selector}}}[{width_ms}ms]))"
        try:
            response = await self.client.get("/api/v1/query", params={"query": query,
                                                                       "time": f"{schedule.boundary(k + 1):.3f}"})
            response.raise_for_status()
            result = response.json()["data"]["result"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("canary %s: Prometheus did not answer (%s); judging from this replica's requests",
                        schedule.experiment, exc)
            return None
        counts = {r["metric"].get("outcome"): float(r["value"][1]) for r in result}
        return counts.get("ok", 0.0) + counts.get("failed", 0.0), counts.get("failed", 0.0)

    async def close(self) -> None:
        await self.client.aclose()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class CanaryController:
    """Every experiment as it stands now (cached until its next step), the checks after each step, and the admin
    API's start, promote and rollback, which write the experiments file."""

    def __init__(self, store: ExperimentStore, catalogue: Catalogue, triton: TritonInference, health: ArmHealth,
                 on_change: Callable[[Experiment, dict[str, float]], None], clock: Callable[[], float],
                 prometheus_url: str = "", settle_s: float = 5.0, on_schedule: Callable[[str, str], None] | None = None
                 ) -> None:
        self.store, self.catalogue, self.triton, self.health = store, catalogue, triton, health
        self.on_change, self.clock, self.on_schedule = on_change, clock, on_schedule
        self.errors = PrometheusErrors(prometheus_url) if prometheus_url else None
        self.settle_s = settle_s if self.errors else 0.0
        self.progress: dict[tuple[str, str, float], Progress] = {}
        self.published: dict[str, dict[str, float]] = {}
        self._cache: dict[str, tuple[Experiment, float]] = {}
        self._cache_digest = ""
        self._starting: set[str] = set()

    # --- what every request reads ------------------------------------------------------------------
    def current(self, name: str, now: float | None = None) -> Experiment:
        """The experiment at `now`: cached until the schedule's next step, the file's next change or a check."""
        now = self.clock() if now is None else now
        if self._cache_digest != self.store.digest:
            self._cache.clear()
            self._cache_digest = self.store.digest
        cached = self._cache.get(name)
        if cached is not None and now < cached[1]:
            return cached[0]
        declared = self.store.get(name)
        schedule = CanarySchedule.of(declared)
        experiment, until = effective(declared, now, self.progress.get(schedule.key) if schedule else None)
        self._cache[name] = (experiment, until)
        return experiment

    def all_current(self, now: float | None = None) -> list[Experiment]:
        now = self.clock() if now is None else now
        return [self.current(name, now) for name in list(self.store.experiments)]

    def sync_weights(self, now: float | None = None) -> None:
        """Tell metrics about arm weights that changed: by the clock, a check, or a new file."""
        current = {e.name: e for e in self.all_current(now)}
        for name in list(self.published):
            if name not in current:
                self.on_change(Experiment(name, {}), self.published.pop(name))
        for name, experiment in current.items():
            if self.published.get(name) != experiment.arms:
                self.on_change(experiment, self.published.get(name, {}))
                self.published[name] = dict(experiment.arms)

    # --- the checks after each step ----------------------------------------------------------------
    async def tick(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        for declared in list(self.store.experiments.values()):
            schedule = CanarySchedule.of(declared)
            if schedule is not None:
                await self._advance(schedule, now)
        self.sync_weights(now)

    async def _advance(self, schedule: CanarySchedule, now: float) -> None:
        progress = self.progress.get(schedule.key)
        if progress is None:
            progress = self.progress[schedule.key] = Progress()
            if self.on_schedule is not None:  # its counters exist before its first request: increase() sees them all
                self.on_schedule(schedule.experiment, schedule.model)
        if progress.failed is not None:
            return
        for k in range(len(schedule.steps) + 1):
            if k not in progress.snapshots and 0 <= now - schedule.boundary(k) <= LATE_S:
                progress.snapshots[k] = self.health.snapshot(schedule.experiment, schedule.model)
        for k in range(progress.checked + 1, len(schedule.steps)):
            if now < schedule.boundary(k + 1) + self.settle_s:
                break
            requests, failures = await self._window(schedule, k, progress)
            progress.checked = k
            self._cache.pop(schedule.experiment, None)
            if requests > 0 and failures / requests > schedule.max_error_rate:
                reason = f"error rate {failures / requests:.3f} > {schedule.max_error_rate} in step {k}"
                log.warning("canary %s on %s: %s, rolling back", schedule.model, schedule.experiment, reason)
                progress.failed = (k, reason)
                self._keep_local_verdict(schedule, reason)
                return

    async def _window(self, schedule: CanarySchedule, k: int, progress: Progress) -> tuple[float, float]:
        if self.errors is not None:
            counts = await self.errors.window(schedule, k)
            if counts is not None:
                return counts
        before, after = progress.snapshots.get(k), progress.snapshots.get(k + 1)
        if before is None or after is None:
            return 0.0, 0.0  # this replica did not see the whole step: no verdict of its own
        ok, failed = (a - b for a, b in zip(after, before))
        return float(ok + failed), float(failed)

    def _keep_local_verdict(self, schedule: CanarySchedule, reason: str) -> None:
        """A rollback judged from this replica's own requests is written to the file where it may be, so that a
        restart does not resume the ramp (one judged from Prometheus is judged the same again)."""
        if self.errors is not None or self.store.read_only:
            return
        declared = self.store.experiments.get(schedule.experiment)
        if declared is None or CanarySchedule.of(declared) != schedule:
            return  # the file changed meanwhile: its new content rules
        assert declared.canary is not None  # it has this schedule
        canary = {**declared.canary, "state": "rolled_back", "reason": reason}
        try:
            self.store.put(declared.with_weights(declared.arms, canary))
        except ApiError as exc:
            log.warning("canary %s: could not record the rollback in the file: %s", schedule.experiment, exc)

    # --- the admin API (a single gateway: it writes the file) ---------------------------------------
    async def start(self, name: str, plan: CanaryPlan) -> Experiment:
        self.store.require_writable()
        if name in self._starting or self.current(name).ramping:
            raise BadRequest(f"experiment '{name}' already has a canary in progress")
        self._starting.add(name)  # held across the awaits below: one start at a time per experiment
        try:
            self.catalogue.reload(plan.model)  # the candidate may have been published after start-up
            if plan.model in self.current(name).arms:
                raise BadRequest(f"'{plan.model}' already serves experiment '{name}'")
            await self.triton.load(plan.model)
            if not await self.triton.model_ready(plan.model):
                raise Unavailable(f"Triton loaded '{plan.model}' but reports it not ready")
            now = self.clock()
            experiment = self.current(name, now)  # re-read: an admin may have changed it while loading
            self.store.put(Experiment(name, dict(experiment.arms), experiment.shadow, plan.record(plan.start or now)))
            self.sync_weights(now)
            return self.current(name, now)
        finally:
            self._starting.discard(name)

    def promote(self, name: str) -> Experiment:
        declared, canary = self._in_progress(name)
        return self._finish(declared, {canary["model"]: 1.0}, {**canary, "state": "promoted"})

    def rollback(self, name: str, reason: str = "requested") -> Experiment:
        declared, canary = self._in_progress(name)
        return self._finish(declared, declared.arms, {**canary, "state": "rolled_back", "reason": reason})

    def _in_progress(self, name: str) -> tuple[Experiment, dict]:
        if not self.current(name).ramping:
            raise BadRequest(f"experiment '{name}' has no canary in progress")
        declared = self.store.get(name)
        assert declared.canary is not None  # ramping: it has a canary
        return declared, {k: v for k, v in declared.canary.items() if k not in ("state", "reason")}

    def _finish(self, declared: Experiment, arms: dict[str, float], canary: dict) -> Experiment:
        self.store.put(declared.with_weights(arms, canary))
        self.sync_weights()
        return self.current(declared.name)

    async def close(self) -> None:
        if self.errors is not None:
            await self.errors.close()
