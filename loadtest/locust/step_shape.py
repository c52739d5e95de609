"""Step-load shape for Locust: add it after the locustfile
(`-f loadtest/locust/locustfile.py,loadtest/locust/step_shape.py`); it follows the plan's `step` (--tz-plan)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from locust import LoadTestShape
from locust.runners import Runner

from loadtest.analysis.shapes import Snapshot, StepLoad
from loadtest.runs.plan import plan_of


class StepLoadShape(LoadTestShape):
    """More users each step until the SLO breaks or throughput stops growing; each step's figures go to a file."""

    logic: StepLoad | None = None

    def tick(self) -> tuple[int, float] | None:
        runner = self.runner
        if runner is None:
            raise RuntimeError("Locust gives a shape its runner before the first tick")
        plan = plan_of(runner.environment.parsed_options)
        if self.logic is None:
            self.logic = StepLoad(plan.step)
        steps_before = len(self.logic.steps)
        decision = self.logic.tick(snapshot(runner))
        if len(self.logic.steps) != steps_before and plan.steps_out:
            write(self.logic, Path(plan.steps_out))
        return decision


def snapshot(runner: Runner) -> Snapshot:
    total = runner.stats.total
    return Snapshot(time.time(), total.num_requests, total.num_failures, dict(total.response_times))


def write(logic: StepLoad, path: Path) -> None:
    """Rewritten whole after every step (atomically), so a run cut short still leaves its finished steps."""
    record = {"plan": vars(logic.plan), "stop_reason": logic.stop_reason,
              "steps": [s.to_dict() for s in logic.steps]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)
