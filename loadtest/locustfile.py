"""Locust users for the zoo: Triton over HTTP (binary tensors) and gRPC, the gateway, and an A/B experiment.

Run by `invoke loadtest`, or by hand, e.g.:
  locust -f loadtest/locustfile.py,loadtest/locust_constant.py --headless TritonHttpUser \
      --host http://127.0.0.1:8000 --tz-repo model_repository --tz-models resnet18_int8 \
      --tz-data ../shared/data/cifar10-jpeg.tar.gz --tz-users 4 --tz-seconds 20
Every option of ours starts with --tz- (`locust -f loadtest/locustfile.py --help` lists them).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import grpc
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()  # gRPC's own threads would block gevent's loop; must precede any channel

import gevent  # noqa: E402  (after the gRPC set-up above, as gRPC requires)
import locust.runners  # noqa: E402
from locust import FastHttpUser, User, events, task  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.runners import WorkerRunner  # noqa: E402
from locust.user.task import LOCUST_STATE_STOPPING  # noqa: E402
from tritonclient.grpc import service_pb2_grpc  # noqa: E402

from loadtest.locust_metrics import LoadMetrics, serve_exporter  # noqa: E402
from loadtest.rawhttp import HttpStatusError, RawConnection  # noqa: E402
from loadtest.workload import Workload, load_workload  # noqa: E402

locust.runners.WORKER_REPORT_INTERVAL = 1.0  # the step shape decides on the master's totals: keep them fresh


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("tritonzoo")
    add = group.add_argument
    add("--tz-models", default="", help="comma-separated models, or 'all' (from --tz-repo's manifest)")
    add("--tz-repo", default="", help="model repository whose manifest names the models and their inputs")
    add("--tz-images-file", default="", help="pre-decoded images from `invoke loadtest`: .npz, one uint8 N,C,H,W "
        "array per model, or .npy, one array for every model")
    add("--tz-data", default="", help="or: test images, an ImageFolder dir/.tar.gz or cifar-10-python.tar.gz (with "
        "--tz-repo, a model whose card names a dataset on this disk takes its images from there, at its input)")
    add("--tz-images", type=int, default=500, help="test images to cycle through")
    add("--tz-grpc", default="127.0.0.1:8001", help="Triton gRPC address for TritonGrpcUser")
    add("--tz-experiment", default="ab", help="gateway experiment for GatewayExperimentUser")
    add("--tz-timeout", type=float, default=30.0, help="per-request timeout, seconds")
    add("--tz-user-rps", type=float, default=0.0, help="pace each user to this many requests/s (0: closed loop)")
    add("--tz-exporter-ports", default="9646", help="ports for the Prometheus exporter, one per process with users")
    add("--tz-run-file", default="", help="write the test's start and end times here (JSON)")
    add("--tz-max-requests", type=int, default=0, help="stop after this many requests in all (0: no bound)")
    add("--tz-max-seconds", type=float, default=0.0, help="stop after this many seconds (0: no bound)")
    add("--tz-linger", type=float, default=2.5, help="seconds to keep exporting after the end (final scrape)")
    add("--tz-steps-out", default="", help="step shape: write each step's figures here (JSON)")
    add("--tz-users", type=int, default=4, help="constant shape: users")
    add("--tz-seconds", type=float, default=30.0, help="constant shape: seconds")
    add("--tz-rate", type=float, default=0.0, help="constant shape: total requests/s (0: closed loop)")
    add("--tz-start-users", type=int, default=1, help="step shape: users in the first step")
    add("--tz-step-users", type=int, default=2, help="step shape: users added per step")
    add("--tz-step-seconds", type=float, default=10.0, help="step shape: seconds per step")
    add("--tz-max-users", type=int, default=64, help="step shape: highest user count")
    add("--tz-slo-ms", type=float, default=100.0, help="step shape: latency SLO, ms")
    add("--tz-slo-quantile", type=float, default=0.95, help="step shape: quantile the SLO applies to")
    add("--tz-max-error-rate", type=float, default=0.01, help="step shape: failures allowed per request")
    add("--tz-min-gain", type=float, default=0.05, help="step shape: throughput growth that still counts")
    add("--tz-patience", type=int, default=2, help="step shape: steps without growth before stopping")
    add("--tz-warmup", type=float, default=0.0, help="step shape: seconds at the first step's users before it starts")


WORKLOAD: Workload | None = None
METRICS = LoadMetrics()


@events.init.add_listener
def _init(environment: Environment, **_: object) -> None:
    global WORKLOAD
    opts = environment.parsed_options
    if opts is None:
        return
    environment.events.request.add_listener(METRICS.on_request)
    if not _is_master(environment):  # the master of --processes runs no users and sees no requests
        WORKLOAD = load_workload(opts)
        serve_exporter(METRICS.registry, [int(p) for p in opts.tz_exporter_ports.split(",")])
    if not isinstance(environment.runner, WorkerRunner):
        gevent.spawn(_enforce_bounds, environment, opts.tz_max_requests, opts.tz_max_seconds)


@events.test_start.add_listener
def _started(environment: Environment, **_: object) -> None:
    _record_time(environment, "start")


@events.test_stop.add_listener
def _stopped(environment: Environment, **_: object) -> None:
    """After the users have stopped (and, with --stop-timeout, finished their requests)."""
    _record_time(environment, "end")


def _record_time(environment: Environment, key: str) -> None:
    opts = environment.parsed_options
    if opts is None or not opts.tz_run_file or isinstance(environment.runner, WorkerRunner):
        return
    path = Path(opts.tz_run_file)
    record = json.loads(path.read_text()) if path.exists() else {}
    record.setdefault(key, time.time())  # the first start and the first end: a test is started once per run
    path.write_text(json.dumps(record))


def _is_master(environment: Environment) -> bool:
    return type(environment.runner).__name__ == "MasterRunner"


def _enforce_bounds(environment: Environment, max_requests: int, max_seconds: float) -> None:
    """Stop the whole run at the request or time bound, whatever the shape says."""
    start = time.monotonic()
    while True:
        gevent.sleep(0.1)
        done = environment.runner.stats.total.num_requests
        if (max_requests and done >= max_requests) or (max_seconds and time.monotonic() - start >= max_seconds):
            environment.runner.quit()
            return


@events.quitting.add_listener
def _linger(environment: Environment, **_: object) -> None:
    """Keep the exporter up for a last scrape, so Prometheus holds the final totals."""
    opts = environment.parsed_options
    if opts is not None and not _is_master(environment):
        time.sleep(opts.tz_linger)


def _stagger(user: User) -> None:
    """Paced users spawned together would send in bursts, in step for the whole run: each starts at a random phase."""
    rate = user.environment.parsed_options.tz_user_rps
    if rate > 0:
        gevent.sleep(random.uniform(0, 1 / rate))


def _pacing(user: User) -> float:
    """Seconds until this user's next send, on a fixed schedule at --tz-user-rps: after a slow answer the next
    request goes at once, so the arrival rate holds as live traffic's does (Locust's constant_throughput would
    lower it instead). A user more than a second behind its schedule starts it afresh."""
    rate = user.environment.parsed_options.tz_user_rps
    if rate <= 0:
        return 0.0
    now = time.monotonic()
    due = getattr(user, "_tz_due", now) + 1 / rate
    user._tz_due = due if due >= now - 1.0 else now
    return max(0.0, user._tz_due - now)


class TritonHttpUser(User):
    """Triton's KServe v2 HTTP endpoint with binary tensor data (--host http://127.0.0.1:8000): ready-made request
    bytes written to a raw keep-alive socket, the response read with the least parsing that still checks it.

    FastHttpUser builds headers, a request and a response object per request; on cores shared with Triton, that CPU
    is taken from the server (`invoke bench-loadgen` measures it). Every request still goes through
    `events.request`, so a failure is counted like any other. Closed loop, the task loops by itself: Locust's
    scheduler, run once per task, costs as much as the request. Paced (--tz-user-rps), it waits between requests.
    """

    wait_time = _pacing

    def on_start(self) -> None:
        _stagger(self)
        self.requests = WORKLOAD.cycle("http")
        self.conn: RawConnection | None = None
        host, _, port = WORKLOAD.host.rpartition(":")
        self.address = (host, int(port))

    def on_stop(self) -> None:
        self._drop()

    @task
    def loop(self) -> None:
        paced = self.environment.parsed_options.tz_user_rps > 0
        while self._state != LOCUST_STATE_STOPPING:
            self.infer()
            if paced:
                self.wait()

    def infer(self) -> None:
        model, request = next(self.requests)
        start, exception, length = time.perf_counter(), None, 0
        try:
            self.conn = self.conn or RawConnection(*self.address, self.environment.parsed_options.tz_timeout)
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
    """Triton's gRPC endpoint (--tz-grpc), with ready-made ModelInferRequest messages."""

    wait_time = _pacing

    def on_start(self) -> None:
        _stagger(self)
        self.channel = grpc.insecure_channel(self.environment.parsed_options.tz_grpc)
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)
        self.requests = WORKLOAD.cycle("grpc")

    def on_stop(self) -> None:
        self.channel.close()

    @task
    def infer(self) -> None:
        model, request = next(self.requests)
        start, exception, length = time.perf_counter(), None, 0
        try:
            length = self.stub.ModelInfer(request, timeout=self.environment.parsed_options.tz_timeout).ByteSize()
        except grpc.RpcError as exc:
            exception = exc
        self.environment.events.request.fire(request_type="grpc", name=model.name, context={}, exception=exception,
                                             response_time=(time.perf_counter() - start) * 1000,
                                             response_length=length)


class GatewayUser(FastHttpUser):
    """The gateway's /v1/models/{model}/predict with raw uint8 tensors (--host http://127.0.0.1:8080)."""

    wait_time = _pacing

    def on_start(self) -> None:
        _stagger(self)
        self.requests = WORKLOAD.cycle("gateway")

    @task
    def predict(self) -> None:
        model, payload = next(self.requests)
        self.client.post(f"/v1/models/{model.name}/predict", data=payload.body, headers=payload.headers,
                         name=model.name, timeout=self.environment.parsed_options.tz_timeout)


class GatewayExperimentUser(FastHttpUser):
    """An A/B experiment through the gateway: a sticky assignment key per user; requests named by their arm.
    Arms of different input dims are sent PNG images, which the gateway resizes for each (`experiment_payloads`)."""

    wait_time = _pacing

    def on_start(self) -> None:
        _stagger(self)
        self.requests = WORKLOAD.experiment_cycle()
        self.key = f"user-{random.getrandbits(48):x}"

    @task
    def predict(self) -> None:
        opts = self.environment.parsed_options
        payload = next(self.requests)
        headers = {**payload.headers, "X-Assignment-Key": self.key}
        with self.client.post(f"/v1/experiments/{opts.tz_experiment}/predict", data=payload.body, headers=headers,
                              name=f"{opts.tz_experiment}:unassigned", timeout=opts.tz_timeout,
                              catch_response=True) as response:
            arm = response.headers.get("X-Experiment-Arm") if response.headers else None
            if arm:
                response.request_meta["name"] = f"{opts.tz_experiment}:{arm}"
