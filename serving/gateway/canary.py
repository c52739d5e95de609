"""Canary rollout: load a candidate through Triton's model control, ramp its weight, promote or roll back.

Weights change by swapping one immutable Experiment for another, so every request sees either the old
split or the new one; the candidate is loaded and ready before it gets any traffic, and the old models
stay loaded, so no request fails during the switch.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from serving.gateway.catalogue import Catalogue
from serving.gateway.errors import BadRequest, InvalidConfig, Unavailable
from serving.gateway.experiments import Experiment, ExperimentStore
from serving.gateway.triton_client import TritonInference

log = logging.getLogger("tritonzoo.gateway.canary")


@dataclass(frozen=True)
class CanaryPlan:
    model: str
    steps: tuple[float, ...] = (0.05, 0.25, 0.5, 1.0)
    interval_s: float = 30.0
    max_error_rate: float = 0.01

    @classmethod
    def parse(cls, body: object) -> CanaryPlan:
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            raise InvalidConfig("a canary needs 'model', and optionally 'steps', 'interval_s', 'max_error_rate'")
        try:
            steps = tuple(_number(s) for s in body.get("steps", cls.steps))
            interval = _number(body.get("interval_s", cls.interval_s))
            max_error = _number(body.get("max_error_rate", cls.max_error_rate))
        except (TypeError, ValueError) as exc:
            raise InvalidConfig(f"canary steps, interval_s and max_error_rate must be finite numbers ({exc})") from exc
        if not steps or any(not 0 < s <= 1 for s in steps) or list(steps) != sorted(steps) or steps[-1] != 1.0:
            raise InvalidConfig(f"canary steps must rise within (0, 1] and end at 1.0, got {list(steps)}")
        if interval < 0 or not 0 <= max_error <= 1:
            raise InvalidConfig("interval_s must be >= 0 and max_error_rate within [0, 1]")
        return cls(body["model"], steps, interval, max_error)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return float(value)


@dataclass
class ArmHealth:
    """Requests and failures per (experiment, model), as the gateway saw them; experiment '' is direct."""

    ok: dict[tuple[str, str], int] = field(default_factory=dict)
    failed: dict[tuple[str, str], int] = field(default_factory=dict)

    def record(self, experiment: str, model: str, success: bool) -> None:
        counts = self.ok if success else self.failed
        counts[experiment, model] = counts.get((experiment, model), 0) + 1

    def snapshot(self, experiment: str, model: str) -> tuple[int, int]:
        return self.ok.get((experiment, model), 0), self.failed.get((experiment, model), 0)


class CanaryController:
    def __init__(self, store: ExperimentStore, catalogue: Catalogue, triton: TritonInference, health: ArmHealth,
                 on_change: Callable[[Experiment, dict[str, float]], None]) -> None:
        self.store, self.catalogue, self.triton, self.health = store, catalogue, triton, health
        self.on_change = on_change
        self.tasks: dict[str, asyncio.Task] = {}
        self._starting: set[str] = set()

    def interrupt_stale(self) -> None:
        """A canary persisted mid-ramp lost its controller in a restart: go back to its baseline."""
        for experiment in list(self.store.experiments.values()):
            if experiment.ramping:
                canary = {**experiment.canary, "state": "interrupted", "weight": 0.0,
                          "reason": "the gateway restarted during the ramp"}
                self.store.put(experiment.with_weights(experiment.canary["baseline"], canary))

    async def start(self, name: str, plan: CanaryPlan) -> Experiment:
        if name in self._starting or self.store.get(name).ramping:
            raise BadRequest(f"experiment '{name}' already has a canary in progress")
        self._starting.add(name)  # held across the awaits below: one start at a time per experiment
        try:
            self.catalogue.reload(plan.model)  # the candidate may have been published after start-up
            if plan.model in self.store.get(name).arms:
                raise BadRequest(f"'{plan.model}' already serves experiment '{name}'")
            await self.triton.load(plan.model)
            if not await self.triton.model_ready(plan.model):
                raise Unavailable(f"Triton loaded '{plan.model}' but reports it not ready")
            experiment = self.store.get(name)  # re-read: an admin may have changed it while loading
            status = {"model": plan.model, "state": "ramping", "weight": 0.0, "baseline": dict(experiment.arms),
                      "steps": list(plan.steps), "interval_s": plan.interval_s}
            experiment = self._set(experiment, experiment.arms, status)
            self.tasks[name] = asyncio.create_task(self._ramp(name, plan))
            return experiment
        finally:
            self._starting.discard(name)

    async def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    async def _ramp(self, name: str, plan: CanaryPlan) -> None:
        for step in plan.steps:
            experiment = self.store.get(name)
            baseline = experiment.canary["baseline"]
            total = sum(baseline.values())
            arms = {m: w / total * (1 - step) for m, w in baseline.items()} | {plan.model: step}
            self._set(experiment, arms, {**experiment.canary, "weight": step})
            before = self.health.snapshot(name, plan.model)
            await asyncio.sleep(plan.interval_s)
            ok, failed = (a - b for a, b in zip(self.health.snapshot(name, plan.model), before))
            if ok + failed and failed / (ok + failed) > plan.max_error_rate:
                log.warning("canary %s on %s: error rate %.3f, rolling back", plan.model, name, failed / (ok + failed))
                self.rollback(name, reason=f"error rate {failed / (ok + failed):.3f} > {plan.max_error_rate}")
                return
        self.promote(name)

    def promote(self, name: str) -> Experiment:
        experiment, canary = self._stop(name)
        return self._set(experiment, {canary["model"]: 1.0}, {**canary, "state": "promoted", "weight": 1.0})

    def rollback(self, name: str, reason: str = "requested") -> Experiment:
        experiment, canary = self._stop(name)
        return self._set(experiment, canary["baseline"],
                         {**canary, "state": "rolled_back", "weight": 0.0, "reason": reason})

    def _stop(self, name: str) -> tuple[Experiment, dict]:
        experiment = self.store.get(name)
        if not experiment.ramping:
            raise BadRequest(f"experiment '{name}' has no canary in progress")
        task = self.tasks.pop(name, None)
        if task and task is not asyncio.current_task():
            task.cancel()
        return experiment, experiment.canary

    def _set(self, experiment: Experiment, arms: dict[str, float], canary: dict) -> Experiment:
        updated = experiment.with_weights(arms, canary)
        self.store.put(updated)
        self.on_change(updated, experiment.arms)
        return updated
