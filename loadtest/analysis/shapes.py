"""Load shapes as plain logic (no Locust import), so their decisions can be tested with numbers.

A step-load raises the number of users step by step (closed loop: concurrency; paced users: arrival rate) until
the latency SLO breaks, errors exceed their budget, or throughput stops growing. A constant shape holds one level
for a confirmation run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Snapshot:
    """Cumulative Locust totals at one moment: requests (failures included), failures, ms -> count."""

    at: float
    requests: int
    failures: int
    response_times: dict[int, int]


@dataclass(frozen=True)
class StepResult:
    users: int
    start: float
    end: float
    requests: int
    failures: int
    rps: float            # successful requests per second: a failure is not throughput
    error_rate: float
    latency_ms: float     # the SLO quantile over all requests of the step, failures included
    verdict: str          # ok | slo | errors | plateau | max_users

    def to_dict(self) -> dict:
        return asdict(self)


def quantile_ms(times: dict[int, int], q: float) -> float:
    """Quantile of a histogram of whole milliseconds (Locust's response_times); 0 when empty."""
    total = sum(times.values())
    if total == 0:
        return 0.0
    rank, seen = q * total, 0
    for ms in sorted(times):
        seen += times[ms]
        if seen >= rank:
            return float(ms)
    return float(max(times))


def difference(later: Snapshot, earlier: Snapshot) -> dict[int, int]:
    return {ms: n - earlier.response_times.get(ms, 0) for ms, n in later.response_times.items()
            if n - earlier.response_times.get(ms, 0) > 0}


AUTO_PACE = -1.0


@dataclass(frozen=True)
class StepPlan:
    start_users: int = 1
    step_users: int = 2
    step_seconds: float = 10.0
    max_users: int = 64
    spawn_rate: float = 50.0
    slo_ms: float = 100.0
    slo_quantile: float = 0.95
    max_error_rate: float = 0.01
    min_gain: float = 0.05   # a step must beat the best throughput so far by this fraction to count as growth
    patience: int = 2        # steps without growth before the plateau stops the run
    user_rps: float = 0.0    # > 0: each user paced to this rate, so every step adds arrival rate; 0: closed loop;
    #                          AUTO_PACE: set from the models' measured throughput (loadtest.runs.spec.resolve_pacing)
    warmup_s: float = 0.0    # start_users run this long before the first step: a fresh Triton's first batches are slow

    def users(self, step: int) -> int:
        return min(self.start_users + step * self.step_users, self.max_users)


@dataclass
class StepLoad:
    """Decides, at each step boundary, whether to go one step higher or stop, and keeps every step's figures."""

    plan: StepPlan
    steps: list[StepResult] = field(default_factory=list)
    stop_reason: str | None = None
    _step_start: Snapshot | None = None
    _began: float | None = None

    def _warm(self, now: Snapshot) -> bool:
        """True once the warm-up is over; the first step then starts from `now`."""
        if self._began is None:
            self._began = now.at
        return now.at - self._began >= self.plan.warmup_s

    def tick(self, now: Snapshot) -> tuple[int, float] | None:
        if self.stop_reason is not None:
            return None
        if self._step_start is None:
            if self._warm(now):
                self._step_start = now
        elif now.at - self._step_start.at >= self.plan.step_seconds:
            if self._close_step(self._step_start, now) != "ok":
                return None
        return self.plan.users(len(self.steps)), self.plan.spawn_rate

    def _close_step(self, begin: Snapshot, now: Snapshot) -> str:
        users = self.plan.users(len(self.steps))
        seconds = now.at - begin.at
        requests, failures = now.requests - begin.requests, now.failures - begin.failures
        result = StepResult(users, begin.at, now.at, requests, failures, (requests - failures) / seconds,
                            failures / requests if requests else 0.0,
                            quantile_ms(difference(now, begin), self.plan.slo_quantile), "ok")
        verdict = self._verdict(result)
        self.steps.append(StepResult(**{**result.to_dict(), "verdict": verdict}))
        self._step_start = now
        if verdict != "ok":
            self.stop_reason = verdict
        return verdict

    def _verdict(self, step: StepResult) -> str:
        if step.requests == 0 or step.error_rate > self.plan.max_error_rate:
            return "errors"
        if step.latency_ms > self.plan.slo_ms:
            return "slo"
        if self._stalled(step):
            return "plateau"
        if step.users >= self.plan.max_users:
            return "max_users"
        return "ok"

    def _stalled(self, step: StepResult) -> bool:
        """True after `patience` consecutive steps (this one included) none of which beat the best before it."""
        history = [s.rps for s in self.steps] + [step.rps]
        if len(history) <= self.plan.patience:
            return False
        best_before = max(history[:-self.plan.patience])
        return all(rps < best_before * (1 + self.plan.min_gain) for rps in history[-self.plan.patience:])


@dataclass(frozen=True)
class ConstantPlan:
    """`users` paced at `rate / users` each: a fixed arrival rate, with concurrency bounded by `users`."""

    users: int
    seconds: float
    rate: float = 0.0          # total requests per second; 0: closed loop, as fast as the users go
    spawn_rate: float = 50.0

    @property
    def user_rate(self) -> float:
        return self.rate / self.users if self.rate > 0 else 0.0

    def tick(self, elapsed: float) -> tuple[int, float] | None:
        return (self.users, self.spawn_rate) if elapsed < self.seconds else None
