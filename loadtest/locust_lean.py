"""A lean Locust user for the load-generator headroom benchmark: one ready-made HTTP/1.1 request, written whole to a
raw keep-alive socket, the response read with the least parsing that still checks it.

FastHttpUser builds headers, a request object and a response object per request; on 2 cores shared with Triton that
CPU is what caps Locust. This user does none of that, yet every request still goes through `events.request` (Locust's
stats and the project's Prometheus exporter), so a failure is counted like any other. Run by `invoke bench-loadgen`:
  locust -f loadtest/locust_lean.py --headless LeanHttpUser -u 8 -r 1000 --tz-request-file req.bin --tz-name m
"""

from __future__ import annotations

import time
from pathlib import Path

from locust import User, constant, events, task
from locust.env import Environment
from locust.user.task import LOCUST_STATE_STOPPING

from loadtest.locust_metrics import LoadMetrics, serve_exporter
from loadtest.rawhttp import RawConnection

METRICS = LoadMetrics()
REQUEST = bytearray()  # the whole request, head and body, as sent on the wire


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("tritonzoo lean user")
    group.add_argument("--tz-request-file", default="", help="a complete HTTP/1.1 request (head and body), sent as is")
    group.add_argument("--tz-name", default="infer", help="request name in the stats")
    group.add_argument("--tz-exporter-ports", default="", help="ports for the Prometheus exporter (empty: none)")
    group.add_argument("--tz-timeout", type=float, default=30.0, help="per-request timeout, seconds")


@events.init.add_listener
def _init(environment: Environment, **_: object) -> None:
    opts = environment.parsed_options
    if opts is None or type(environment.runner).__name__ == "MasterRunner":  # the master sends no requests
        return
    REQUEST[:] = Path(opts.tz_request_file).read_bytes()
    environment.events.request.add_listener(METRICS.on_request)
    if opts.tz_exporter_ports:
        serve_exporter(METRICS.registry, [int(p) for p in opts.tz_exporter_ports.split(",")])


class LeanHttpUser(User):
    """Closed loop: the same pre-encoded request, again and again, on one connection per user.

    The task loops by itself: Locust's scheduler, run once per task, costs a switch through gevent's hub and a
    dozen calls per request, which is as much as the request itself here. Stopping still works: a stopping user
    leaves the loop after its request, and Locust kills users that outstay --stop-timeout.
    """

    wait_time = constant(0)

    def on_start(self) -> None:
        self.conn: RawConnection | None = None
        host, _, port = self.host.removeprefix("http://").rstrip("/").rpartition(":")
        self.address = (host, int(port))

    def on_stop(self) -> None:
        self._drop()

    @task
    def loop(self) -> None:
        while self._state != LOCUST_STATE_STOPPING:
            self.infer()

    def infer(self) -> None:
        opts = self.environment.parsed_options
        start, exception, length = time.perf_counter(), None, 0
        try:
            self.conn = self.conn or RawConnection(*self.address, opts.tz_timeout)
            length = self.conn.exchange(REQUEST)
        except Exception as exc:  # noqa: BLE001  any failure is a failed request; the next one reconnects
            exception = exc
            self._drop()
        self.environment.events.request.fire(request_type="POST", name=opts.tz_name, context={}, exception=exception,
                                             response_time=(time.perf_counter() - start) * 1000,
                                             response_length=length)

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
