"""Locust users for the zoo: Triton over HTTP (binary tensors) and gRPC, the gateway, an A/B experiment, and the
soak's A/B experiment with a retrying client library.

Run by `invoke loadtest`, or by hand: write the run's plan (`python -m loadtest.runs.plan` describes its fields), e.g.
  python -m loadtest.runs.plan plan.json repo=model_repository models=resnet18_int8 \
      data=../shared/data/cifar10-jpeg.tar.gz constant.users=4 constant.seconds=20
  locust -f loadtest/locust/locustfile.py,loadtest/locust/constant_shape.py --headless TritonHttpUser \
      --host http://127.0.0.1:8000 --tz-plan plan.json
Our one option is --tz-plan (or $TRITONZOO_LOCUST_PLAN): every setting is a field of loadtest.runs.plan.LoadPlan.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import weakref
from pathlib import Path

import grpc
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()  # gRPC's own threads would block gevent's loop; must precede any channel

import gevent  # noqa: E402  (after the gRPC set-up above, as gRPC requires)
import locust.runners  # noqa: E402
from locust import FastHttpUser, HttpUser, User, events, task  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.runners import Runner, WorkerRunner  # noqa: E402
from locust.user.task import LOCUST_STATE_STOPPING  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402
from tritonclient.grpc import service_pb2_grpc  # noqa: E402

from loadtest.locust.exporter import LoadMetrics, serve_exporter  # noqa: E402
from loadtest.locust.workload import Workload, load_workload  # noqa: E402
from loadtest.protocol.rawhttp import HttpStatusError, RawConnection  # noqa: E402
from loadtest.runs.plan import PLAN_ENV, LoadPlan, plan_of  # noqa: E402
from loadtest.soak.client import RecordWriter, client_retry, record_of  # noqa: E402

locust.runners.WORKER_REPORT_INTERVAL = 1.0  # the step shape decides on the master's totals: keep them fresh


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument_group("tritonzoo").add_argument(
        "--tz-plan", default=os.environ.get(PLAN_ENV, ""),
        help=f"the run's plan, a JSON file (`python -m loadtest.runs.plan` writes one; default: ${PLAN_ENV})")


WORKLOAD: Workload | None = None
PLAN = LoadPlan()  # this process's, read at init
METRICS = LoadMetrics()
RECORDS: RecordWriter | None = None  # the plan's records_file, in processes with users


@events.init.add_listener
def _init(environment: Environment, **_: object) -> None:
    global WORKLOAD, PLAN, RECORDS
    opts = environment.parsed_options
    if opts is None:
        return
    PLAN = plan_of(opts)
    environment.events.request.add_listener(METRICS.on_request)
    if not _is_master(environment):  # the master of --processes runs no users and sees no requests
        WORKLOAD = load_workload(PLAN, opts.host)
        serve_exporter(METRICS.registry, list(PLAN.exporter_ports))
        if PLAN.records_file:
            RECORDS = RecordWriter(PLAN.records_file)
            environment.events.request.add_listener(_record)
    runner = environment.runner
    if runner is not None and not isinstance(runner, WorkerRunner):
        gevent.spawn(_enforce_bounds, runner, PLAN.max_requests, PLAN.max_seconds)


@events.test_start.add_listener
def _started(environment: Environment, **_: object) -> None:
    _record_time(environment, "start")


@events.test_stop.add_listener
def _stopped(environment: Environment, **_: object) -> None:
    """After the users have stopped (and, with --stop-timeout, finished their requests)."""
    _record_time(environment, "end")


def _record_time(environment: Environment, key: str) -> None:
    if environment.parsed_options is None or not PLAN.run_file or isinstance(environment.runner, WorkerRunner):
        return
    path = Path(PLAN.run_file)
    record = json.loads(path.read_text()) if path.exists() else {}
    record.setdefault(key, time.time())  # the first start and the first end: a test is started once per run
    path.write_text(json.dumps(record))


def _is_master(environment: Environment) -> bool:
    return type(environment.runner).__name__ == "MasterRunner"


def _enforce_bounds(runner: Runner, max_requests: int, max_seconds: float) -> None:
    """Stop the whole run at the request or time bound, whatever the shape says."""
    start = time.monotonic()
    while True:
        gevent.sleep(0.1)
        done = runner.stats.total.num_requests
        if (max_requests and done >= max_requests) or (max_seconds and time.monotonic() - start >= max_seconds):
            runner.quit()
            return


def _workload() -> Workload:
    if WORKLOAD is None:
        raise RuntimeError("no workload: users run only in processes that loaded one at init")
    return WORKLOAD


@events.quitting.add_listener
def _linger(environment: Environment, **_: object) -> None:
    """Keep the exporter up for a last scrape, so Prometheus holds the final totals."""
    if environment.parsed_options is not None and not _is_master(environment):
        time.sleep(PLAN.linger_s)
    if RECORDS is not None:
        RECORDS.close()


def _record(response_time: float, response: object = None, exception: BaseException | None = None,
            context: dict | None = None, start_time: float | None = None, **_: object) -> None:
    """Each soak request as a record of its own (an `events.request` listener): the soak's report follows each
    request's fate, which Locust's aggregated statistics do not keep. Other users' requests carry no soak key."""
    key = (context or {}).get(SOAK_KEY)
    if RECORDS is None or key is None:
        return
    start = start_time if start_time is not None else time.time() - response_time / 1000
    RECORDS.write(record_of("good", start, response_time, response, exception, key))


def _stagger(user: User) -> None:
    """Paced users spawned together would send in bursts, in step for the whole run: each starts at a random phase."""
    rate = PLAN.user_rps
    if rate > 0:
        gevent.sleep(random.uniform(0, 1 / rate))


def _pacing(user: User) -> float:
    """Seconds until this user's next send, on a fixed schedule at the plan's pace: after a slow answer the next
    request goes at once, so the arrival rate holds as live traffic's does (Locust's constant_throughput would
    lower it instead). A user more than a second behind its schedule starts it afresh."""
    rate = PLAN.user_rps
    if rate <= 0:
        return 0.0
    now = time.monotonic()
    due = _DUE.get(user, now) + 1 / rate
    _DUE[user] = due = due if due >= now - 1.0 else now
    return max(0.0, due - now)


_DUE: weakref.WeakKeyDictionary[User, float] = weakref.WeakKeyDictionary()  # each paced user's next send


class TritonHttpUser(User):
    """Triton's KServe v2 HTTP endpoint with binary tensor data (--host http://127.0.0.1:8000): ready-made request
    bytes written to a raw keep-alive socket, the response read with the least parsing that still checks it.

    FastHttpUser builds headers, a request and a response object per request; on cores shared with Triton, that CPU
    is taken from the server (`invoke bench-loadgen` measures it). Every request still goes through
    `events.request`, so a failure is counted like any other. Closed loop, the task loops by itself: Locust's
    scheduler, run once per task, costs as much as the request. Paced (the plan's user_rps), it waits between requests.
    """

    wait_time = _pacing

    def on_start(self) -> None:
        _stagger(self)
        self.requests = _workload().cycle("http")
        self.conn: RawConnection | None = None
        host, _, port = _workload().host.rpartition(":")
        self.address = (host, int(port))

    def on_stop(self) -> None:
        self._drop()

    @task
    def loop(self) -> None:
        paced = PLAN.user_rps > 0
        while self._state != LOCUST_STATE_STOPPING:
            self.infer()
            if paced:
                self.wait()

    def infer(self) -> None:
        model, request = next(self.requests)
        start, length = time.perf_counter(), 0
        exception: Exception | None = None
        try:
            self.conn = self.conn or RawConnection(*self.address, PLAN.timeout_s)
            length = self.conn.exchange(request)
        except HttpStatusError as exc:  # answered: the connection is still good
            exception = exc
        except Exception as exc:  # noqa: BLE001  any other failure is a failed request; the next one reconnects
            exception = exc
            self._drop()
        self.environment.events.request.fire(request_type="POST", name=model.name, context={}, exception=exception,
                                             response_time=(time.perf_counter() - start) * 1000,
                                             response_length=length)

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class TritonGrpcUser(User):
    """Triton's gRPC endpoint (the plan's grpc), with ready-made ModelInferRequest messages."""

    wait_time = _pacing

    def on_start(self) -> None:
        _stagger(self)
        self.channel = grpc.insecure_channel(PLAN.grpc)
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)
        self.requests = _workload().cycle("grpc")

    def on_stop(self) -> None:
        self.channel.close()

    @task
    def infer(self) -> None:
        model, request = next(self.requests)
        start, exception, length = time.perf_counter(), None, 0
        try:
            length = self.stub.ModelInfer(request, timeout=PLAN.timeout_s).ByteSize()
        except grpc.RpcError as exc:
            exception = exc
        self.environment.events.request.fire(request_type="grpc", name=model.name, context={}, exception=exception,
                                             response_time=(time.perf_counter() - start) * 1000,
                                             response_length=length)


class _GatewayHttpUser(FastHttpUser):
    """FastHttpUser with the plan's per-request timeout: it takes a timeout per client, not per request."""

    abstract = True
    wait_time = _pacing

    def __init__(self, environment: Environment) -> None:
        self.network_timeout = PLAN.timeout_s  # read when FastHttpUser builds its client
        super().__init__(environment)


class GatewayUser(_GatewayHttpUser):
    """The gateway's /v1/models/{model}/predict with raw uint8 tensors (--host http://127.0.0.1:8080)."""

    def on_start(self) -> None:
        _stagger(self)
        self.requests = _workload().cycle("gateway")

    @task
    def predict(self) -> None:
        model, payload = next(self.requests)
        self.client.post(f"/v1/models/{model.name}/predict", data=payload.body, headers=payload.headers,
                         name=model.name)


class GatewayExperimentUser(_GatewayHttpUser):
    """An A/B experiment through the gateway: a sticky assignment key per user; requests named by their arm.
    Arms of different input dims are sent PNG images, which the gateway resizes for each (`experiment_payloads`)."""

    def on_start(self) -> None:
        _stagger(self)
        self.requests = _workload().experiment_cycle()
        self.key = f"user-{random.getrandbits(48):x}"

    @task
    def predict(self) -> None:
        payload = next(self.requests)
        headers = {**payload.headers, "X-Assignment-Key": self.key}
        with self.client.post(f"/v1/experiments/{PLAN.experiment}/predict", data=payload.body, headers=headers,
                              name=f"{PLAN.experiment}:unassigned", catch_response=True) as response:
            arm = response.headers.get("X-Experiment-Arm") if response.headers else None
            if arm:
                response.request_meta["name"] = f"{PLAN.experiment}:{arm}"


SOAK_KEY = "soak_key"  # the request context's field that carries a soak request's assignment key
SOAK_KEYS = 64         # assignment keys in turn: each is answered many times, on both sides of every gateway restart
_soak_sent = itertools.count()  # this process's soak requests, for the keys' turns


class SoakUser(HttpUser):
    """`invoke soak`'s client: the A/B experiment through the gateway, called as a Python service calls an HTTP API,
    with `requests`. Locust's HttpSession is a requests.Session; mounting an HTTPAdapter with urllib3's Retry
    (loadtest/soak/client.py's `client_retry`) makes it retry refused connections, resets and 502/503/504 inside one
    Locust request, whose response time then includes the retries. Paced open loop like the other users; each
    request takes the next sticky assignment key, so every key is answered before and after a gateway restart.
    Every request is also written as a record (the plan's records_file): see `_record`."""

    wait_time = _pacing

    def on_start(self) -> None:
        _stagger(self)
        self.requests = _workload().experiment_cycle()
        # One connection per user, as each Locust user is one client; the adapter replaces Locust's for http://.
        self.client.mount("http://", HTTPAdapter(max_retries=client_retry(), pool_connections=1, pool_maxsize=1))

    @task
    def predict(self) -> None:
        payload = next(self.requests)
        key = f"user-{next(_soak_sent) % SOAK_KEYS}"
        self.client.post(f"/v1/experiments/{PLAN.experiment}/predict", data=payload.body,
                         headers={**payload.headers, "X-Assignment-Key": key}, name=PLAN.experiment,
                         timeout=(2.0, PLAN.timeout_s), context={SOAK_KEY: key})
