"""A Locust plugin, loaded after the locustfile (`locust -f loadtest/locust/locustfile.py,...,locust_exporter.py`):
export the same request metrics as loadtest's exporter, on an address that Prometheus on another host can scrape.

loadtest's own exporter binds to loopback only, as everything here does by default; a worker in its own pod or
network namespace needs one that others reach. `--tz-public-exporter HOST:PORT` turns it on (off by default).
Not imported by serving/: it runs inside the Locust processes, shipped to them as a file.
"""

from __future__ import annotations

from locust import events
from prometheus_client import start_http_server

from loadtest.locust.exporter import LoadMetrics

METRICS = LoadMetrics()


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--tz-public-exporter", default="",
                        help="HOST:PORT to export this process's request metrics on, for Prometheus on another host "
                             "(off by default; processes that run no users never export)")


@events.init.add_listener
def _init(environment, **_: object) -> None:
    opts = environment.parsed_options
    if opts is None or not opts.tz_public_exporter or type(environment.runner).__name__ == "MasterRunner":
        return
    host, _, port = opts.tz_public_exporter.rpartition(":")
    environment.events.request.add_listener(METRICS.on_request)
    start_http_server(int(port), addr=host or "127.0.0.1", registry=METRICS.registry)
