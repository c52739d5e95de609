from __future__ import annotations

from loadtest.analysis.shapes import ConstantPlan, Snapshot, StepLoad, StepPlan, quantile_ms


class Clock:
    """Cumulative Locust-like totals fed step by step: each step adds (requests, failures, latency ms)."""

    def __init__(self) -> None:
        self.at, self.requests, self.failures = 0.0, 0, 0
        self.times: dict[int, int] = {}  # latency ms -> requests

    def snap(self) -> Snapshot:
        return Snapshot(self.at, self.requests, self.failures, dict(self.times))

    def advance(self, seconds: float, requests: int, failures: int = 0, ms: int = 5) -> Snapshot:
        self.at += seconds
        self.requests += requests
        self.failures += failures
        self.times[ms] = self.times.get(ms, 0) + requests
        return self.snap()


def run(plan: StepPlan, steps: list[tuple[int, int, int]]) -> tuple[StepLoad, list]:
    """Drive a StepLoad through steps of (requests, failures, latency ms); returns it and its decisions."""
    load, clock = StepLoad(plan), Clock()
    decisions = [load.tick(clock.snap())]
    for requests, failures, ms in steps:
        decisions.append(load.tick(clock.advance(plan.step_seconds, requests, failures, ms)))
    return load, decisions


def test_quantile_of_millisecond_histogram() -> None:
    assert quantile_ms({1: 90, 50: 10}, 0.9) == 1.0
    assert quantile_ms({1: 90, 50: 10}, 0.95) == 50.0
    assert quantile_ms({}, 0.95) == 0.0


def test_steps_raise_users_while_throughput_grows_within_slo() -> None:
    plan = StepPlan(start_users=1, step_users=2, step_seconds=10, slo_ms=50)
    load, decisions = run(plan, [(100, 0, 5), (300, 0, 8), (500, 0, 12)])
    assert [d[0] for d in decisions] == [1, 3, 5, 7]
    assert [s.users for s in load.steps] == [1, 3, 5] and load.stop_reason is None
    assert load.steps[1].rps == 30.0 and load.steps[1].latency_ms == 8.0


def test_slo_break_stops_and_is_recorded() -> None:
    load, decisions = run(StepPlan(step_seconds=10, slo_ms=50), [(100, 0, 5), (200, 0, 80)])
    assert decisions[-1] is None and load.stop_reason == "slo"
    assert [s.verdict for s in load.steps] == ["ok", "slo"]
    assert load.tick(Snapshot(100.0, 300, 0, {})) is None  # stays stopped


def test_failures_count_as_requests_not_throughput_and_break_the_error_budget() -> None:
    load, decisions = run(StepPlan(step_seconds=10, max_error_rate=0.01), [(100, 5, 5)])
    step = load.steps[0]
    assert step.requests == 100 and step.failures == 5 and step.rps == 9.5 and step.error_rate == 0.05
    assert decisions[-1] is None and load.stop_reason == "errors"


def test_a_step_without_any_answer_is_an_error_not_a_pass() -> None:
    load, _ = run(StepPlan(step_seconds=10), [(0, 0, 5)])
    assert load.stop_reason == "errors"


def test_plateau_stops_after_patience_steps_without_growth() -> None:
    plan = StepPlan(step_seconds=10, slo_ms=1000, min_gain=0.05, patience=2)
    load, decisions = run(plan, [(1000, 0, 5), (2000, 0, 5), (2040, 0, 5), (2050, 0, 5), (5000, 0, 5)])
    assert load.stop_reason == "plateau" and len(load.steps) == 4 and decisions[4] is None


def test_one_flat_step_is_not_yet_a_plateau() -> None:
    plan = StepPlan(step_seconds=10, slo_ms=1000, min_gain=0.05, patience=2)
    load, _ = run(plan, [(1000, 0, 5), (1010, 0, 5), (3000, 0, 5)])
    assert load.stop_reason is None and len(load.steps) == 3


def test_max_users_ends_the_run() -> None:
    load, decisions = run(StepPlan(start_users=1, step_users=4, max_users=5, step_seconds=10), [(10, 0, 1), (50, 0, 1)])
    assert [s.users for s in load.steps] == [1, 5] and load.stop_reason == "max_users" and decisions[-1] is None


def test_decisions_wait_for_the_step_to_end() -> None:
    load, clock = StepLoad(StepPlan(step_seconds=10)), Clock()
    load.tick(clock.snap())
    assert load.tick(clock.advance(9.9, 100)) == (1, 50.0) and not load.steps


def test_warmup_runs_the_first_users_before_any_step_counts() -> None:
    load, clock = StepLoad(StepPlan(start_users=4, step_seconds=10, slo_ms=50, warmup_s=5)), Clock()
    assert load.tick(clock.snap()) == (4, 50.0)
    assert load.tick(clock.advance(5, 100, ms=900)) == (4, 50.0), "a cold start's slow answers break no SLO"
    load.tick(clock.advance(10, 200, ms=5))
    assert [(s.users, s.requests, s.latency_ms) for s in load.steps] == [(4, 200, 5.0)]


def test_constant_plan_paces_users_to_the_total_rate() -> None:
    plan = ConstantPlan(users=4, seconds=20, rate=100)
    assert plan.user_rate == 25 and plan.tick(0) == (4, 50.0) and plan.tick(19.9) == (4, 50.0)
    assert plan.tick(20) is None
    assert ConstantPlan(users=4, seconds=1).user_rate == 0.0  # closed loop
