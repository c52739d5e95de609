"""Constant shape for Locust (a confirmation run): `-f loadtest/locust/locustfile.py,loadtest/locust/constant_shape.py`.

It holds the plan's `constant` (--tz-plan); the arrival rate comes from pacing each user at its rate / users.
"""

from __future__ import annotations

from locust import LoadTestShape

from loadtest.runs.plan import plan_of


class ConstantShape(LoadTestShape):
    def tick(self) -> tuple[int, float] | None:
        if self.runner is None:
            raise RuntimeError("Locust gives a shape its runner before the first tick")
        return plan_of(self.runner.environment.parsed_options).constant.tick(self.get_run_time())
