"""Several gateway replicas on one experiments file: the same arms for a key, the same canary weights from the
clock, the same rollback from Prometheus; file reloads, read-only files, and the schedule itself."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.testclient import TestClient

from serving.gateway.app import create_app
from serving.gateway.asgi import HotRoutes
from serving.gateway.canary import CanarySchedule, PrometheusErrors, effective
from serving.gateway.errors import InvalidConfig
from serving.gateway.experiments import CanaryPlan, Experiment, ExperimentStore, parse_file
from serving.gateway.settings import GatewaySettings
from tests.conftest import present
from tests.serving.gateway.conftest import ADMIN, FakeTriton, as_triton
from tests.serving.gateway.test_app import TENSOR, image

T0 = 1_900_000_000.0  # a fixed wall-clock time: every replica is given the same


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def declare(path: Path, experiments: dict) -> None:
    """Write the experiments file as an operator (or a ConfigMap update) would: atomically."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(json.dumps(experiments))
    tmp.replace(path)


def replica(settings: GatewaySettings, clock: Clock, **changes) -> TestClient:
    fields = {**settings.__dict__, "watch_interval_s": 0.05, **changes}
    return TestClient(create_app(GatewaySettings(**fields), as_triton(FakeTriton()), clock))


def gateway_of(client: TestClient):
    assert isinstance(client.app, HotRoutes)
    return client.app.app.state.gateway


def tick(client: TestClient) -> None:
    """One turn of the replica's canary check, on its event loop, as its watch loop takes it."""
    assert client.portal is not None, "the client is running"
    client.portal.call(gateway_of(client).canary.tick)


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


CANARY: dict[str, Any] = {"model": "m_c", "start": T0 + 10, "steps": [0.25, 0.5, 1.0], "interval_s": 60,
                          "max_error_rate": 0.05}


@pytest.fixture
def shared(settings: GatewaySettings) -> Path:
    """The one experiments file both replicas read: an A/B split with a canary scheduled on it."""
    settings.state_file.parent.mkdir(parents=True, exist_ok=True)
    declare(settings.state_file, {"ab": {"arms": {"m_a": 3, "m_b": 1}, "canary": CANARY}})
    return settings.state_file


def test_two_replicas_give_every_key_the_same_arm_at_every_step(settings, shared) -> None:
    clock = Clock()
    with replica(settings, clock) as a, replica(settings, clock) as b:
        for now, weight in [(T0, 0.0), (T0 + 10, 0.25), (T0 + 75, 0.5), (T0 + 135, 1.0)]:
            clock.now = now
            for c in (a, b):
                assert c.get("/v1/experiments/ab").json()["canary"]["weight"] == weight
            arms = []
            for c in (a, b):
                arms.append([c.post("/v1/experiments/ab/predict", content=image(1),
                                    headers={**TENSOR, "X-Assignment-Key": f"user-{i}"}).headers["X-Experiment-Arm"]
                             for i in range(200)])
            assert arms[0] == arms[1]
            share = arms[0].count("m_c") / len(arms[0])
            assert abs(share - weight) < 0.1, (now, share)


def test_a_file_change_reaches_every_replica(settings, shared) -> None:
    clock = Clock()
    with replica(settings, clock) as a, replica(settings, clock) as b:
        r = a.put("/admin/experiments/new", json={"arms": {"m_b": 1}}, headers=ADMIN)  # the single admin writes
        assert r.status_code == 201
        wait_for(lambda: b.get("/v1/experiments/new").status_code == 200)
        declare(shared, {"only": {"arms": {"m_a": 1}}})  # an operator edits the file (a ConfigMap update)
        for c in (a, b):
            wait_for(lambda c=c: [e["name"] for e in c.get("/v1/experiments").json()["experiments"]] == ["only"])
        digests = {c.get("/v1/experiments").json()["source"]["sha256"] for c in (a, b)}
        assert len(digests) == 1
        assert 'tritonzoo_gateway_arm_weight{arm="m_a",experiment="only"} 1.0' in b.get("/metrics").text


def test_a_bad_file_is_refused_and_the_last_good_one_kept(settings, shared) -> None:
    with replica(settings, Clock()) as c:
        shared.write_text('{"ab": {"arms": {"not_published": 1}}}')
        wait_for(lambda: c.get("/v1/experiments").json()["source"]["reload_errors"] == 1)
        assert c.get("/v1/experiments/ab").json()["arms"] == {"m_a": 3.0, "m_b": 1.0}
    with pytest.raises(InvalidConfig, match="not a published model"):
        with replica(settings, Clock()):
            pass


def test_a_read_only_file_turns_the_admin_api_away(settings, shared) -> None:
    with replica(settings, Clock(), read_only_experiments=True) as c:
        for r in (c.put("/admin/experiments/x", json={"arms": {"m_a": 1}}, headers=ADMIN),
                  c.delete("/admin/experiments/ab", headers=ADMIN),
                  c.post("/admin/experiments/ab/canary/rollback", headers=ADMIN)):
            assert r.status_code in (400, 409), r.text
        r = c.put("/admin/experiments/x", json={"arms": {"m_a": 1}}, headers=ADMIN)
        assert r.status_code == 409 and "ConfigMap" in r.json()["error"]["message"]
    assert json.loads(shared.read_text()).keys() == {"ab"}


def prometheus(failures_by_step: dict[int, tuple[float, float]], calls: list[dict]) -> httpx.MockTransport:
    """A Prometheus whose instant query answers (requests, failures) for the step whose end is its `time`."""
    def answer(request: httpx.Request) -> httpx.Response:
        params = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        calls.append(params)
        step = round((float(params["time"]) - CANARY["start"]) / CANARY["interval_s"]) - 1
        total, failed = failures_by_step.get(step, (0.0, 0.0))
        result = [{"metric": {"outcome": "ok"}, "value": [params["time"], str(total - failed)]},
                  {"metric": {"outcome": "failed"}, "value": [params["time"], str(failed)]}]
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": result}})
    return httpx.MockTransport(answer)


def test_replicas_roll_back_together_on_the_error_rate_prometheus_reports(settings, shared) -> None:
    """Neither replica sees a failure itself: the errors were on other replicas, and Prometheus sums them all."""
    clock = Clock()
    calls: list[dict] = []
    transport = prometheus({0: (100.0, 1.0), 1: (200.0, 30.0)}, calls)
    with replica(settings, clock, prometheus_url="http://prometheus:9090") as a, \
            replica(settings, clock, prometheus_url="http://prometheus:9090") as b:
        for c in (a, b):
            gateway_of(c).canary.errors = PrometheusErrors("http://prometheus:9090", transport=transport)
        settle = settings.prometheus_settle_s
        for now, state, weight in [(T0 + 71, "ramping", 0.5),             # step 0 ended, its check not yet due
                                   (T0 + 70 + settle, "ramping", 0.5),    # step 0: 1% errors, within 5%
                                   (T0 + 130 + settle, "rolled_back", 0.0)]:  # step 1: 15%: roll back
            clock.now = now
            for c in (a, b):
                tick(c)
                status = c.get("/v1/experiments/ab").json()
                assert (status["canary"]["state"], status["canary"]["weight"]) == (state, weight), now
        assert status["arms"] == {"m_a": 3.0, "m_b": 1.0} and "step 1" in status["canary"]["reason"]
    queries = {(c["query"], c["time"]) for c in calls}
    assert len(queries) == 2, "both replicas asked the same two questions"
    assert all('experiment="ab",model="m_c"' in q and "[60000ms]" in q for q, _ in queries)
    assert json.loads(shared.read_text())["ab"]["canary"] == CANARY, "a verdict Prometheus gives is not written"


def test_without_prometheus_each_replica_judges_its_own_requests(settings, triton, shared) -> None:
    clock = Clock(T0 + 10)
    with replica(settings, clock) as c:
        g = gateway_of(c)
        g.triton = triton
        triton.failing.add("m_c")
        tick(c)  # the step's start, as the watch loop sees it
        for _ in range(20):
            c.post("/v1/experiments/ab/predict", content=image(1), headers={**TENSOR, "X-Variant": "m_c"})
        clock.now = T0 + 70
        tick(c)
        status = c.get("/v1/experiments/ab").json()
        assert status["canary"]["state"] == "rolled_back" and status["arms"] == {"m_a": 3.0, "m_b": 1.0}
    # Judged locally, the verdict is written to the file: a restart must not resume the ramp.
    assert json.loads(shared.read_text())["ab"]["canary"]["state"] == "rolled_back"


def test_the_schedule_gives_weights_by_the_clock_and_promotes_after_the_last_check() -> None:
    declared = parse_file(json.dumps({"ab": {"arms": {"a": 1}, "canary": CANARY}}), {"a", "m_c"})["ab"]
    schedule = present(CanarySchedule.of(declared))
    assert [schedule.step_at(T0 + dt) for dt in (0, 10, 69.9, 70, 130, 190, 10_000)] == [-1, 0, 0, 1, 2, 3, 3]
    experiment, until = effective(declared, T0, None)
    assert experiment.canary is not None and experiment.canary["state"] == "pending"
    assert experiment.arms == {"a": 1.0} and until == T0 + 10
    experiment, until = effective(declared, T0 + 80, None)
    assert experiment.arms == {"a": 0.5, "m_c": 0.5} and until == T0 + 130
    experiment, _ = effective(declared, T0 + 200, None)
    assert present(experiment.canary)["state"] == "ramping", "promotion waits for the last step's check"
    from serving.gateway.canary import Progress

    experiment, _ = effective(declared, T0 + 200, Progress(checked=2))
    assert experiment.arms == {"m_c": 1.0} and present(experiment.canary)["state"] == "promoted"


def test_start_times_name_their_zone() -> None:
    assert CanaryPlan.parse({"model": "m", "start": "2030-03-17T17:46:40Z"}).start == T0
    with pytest.raises(InvalidConfig, match="zone"):
        CanaryPlan.parse({"model": "m", "start": "2030-03-17T17:46:40"})


def test_a_store_without_a_file_starts_empty_and_writes_one(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "none.json")
    assert store.experiments == {} and store.digest == ""
    store.put(Experiment("e", {"a": 1.0}))
    assert ExperimentStore(tmp_path / "none.json").get("e").arms == {"a": 1.0}
