"""Step-load shape for Locust: add it after the locustfile (`-f loadtest/locustfile.py,loadtest/locust_step.py`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from locust import LoadTestShape

from loadtest.shapes import Snapshot, StepLoad, StepPlan


def plan_from(opts) -> StepPlan:
    return StepPlan(start_users=opts.tz_start_users, step_users=opts.tz_step_users, step_seconds=opts.tz_step_seconds,
                    max_users=opts.tz_max_users, slo_ms=opts.tz_slo_ms, slo_quantile=opts.tz_slo_quantile,
                    max_error_rate=opts.tz_max_error_rate, min_gain=opts.tz_min_gain, patience=opts.tz_patience,
                    user_rps=opts.tz_user_rps, warmup_s=opts.tz_warmup)


class StepLoadShape(LoadTestShape):
    """More users each step until the SLO breaks or throughput stops growing; each step's figures go to a file."""

    logic: StepLoad | None = None

    def tick(self) -> tuple[int, float] | None:
        opts = self.runner.environment.parsed_options
        if self.logic is None:
            self.logic = StepLoad(plan_from(opts))
        steps_before = len(self.logic.steps)
        decision = self.logic.tick(self.snapshot())
        if len(self.logic.steps) != steps_before and opts.tz_steps_out:
            self.write(Path(opts.tz_steps_out))
        return decision

    def snapshot(self) -> Snapshot:
        total = self.runner.stats.total
        return Snapshot(time.time(), total.num_requests, total.num_failures, dict(total.response_times))

    def write(self, path: Path) -> None:
        """Rewritten whole after every step (atomically), so a run cut short still leaves its finished steps."""
        record = {"plan": vars(self.logic.plan), "stop_reason": self.logic.stop_reason,
                  "steps": [s.to_dict() for s in self.logic.steps]}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        tmp.replace(path)
