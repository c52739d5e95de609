"""Constant shape for Locust (a confirmation run): `-f loadtest/locustfile.py,loadtest/locust_constant.py`.

The arrival rate comes from pacing each user (--tz-user-rps = --tz-rate / --tz-users; `invoke loadtest` sets it).
"""

from __future__ import annotations

from locust import LoadTestShape

from loadtest.shapes import ConstantPlan


class ConstantShape(LoadTestShape):
    def tick(self) -> tuple[int, float] | None:
        opts = self.runner.environment.parsed_options
        return ConstantPlan(opts.tz_users, opts.tz_seconds, opts.tz_rate).tick(self.get_run_time())
