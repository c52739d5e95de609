"""Locust's command line, built in one place: the locustfile, each shape's file, the user class that loads each
endpoint, and the arguments that start Locust on a plan (loadtest.runs.plan's LoadPlan, read back through --tz-plan).
`invoke loadtest` (runs/drive.py), the headroom benchmark (bench/headroom.py), the Locust pods (deploy/locust.py) and
`invoke soak` (soak/load.py) all start Locust through `locust_command`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from loadtest.runs.plan import SHAPES

LOCUSTFILE = "loadtest/locust/locustfile.py"
SHAPE_FILES = {shape: f"loadtest/locust/{shape}_shape.py" for shape in SHAPES}  # relative to the project's root
# Which user class loads which endpoint: Triton itself (HTTP or gRPC), the gateway's /v1 predict, an A/B
# experiment through the gateway, or the soak's A/B experiment through the gateway with a retrying client.
USERS = {"http": "TritonHttpUser", "grpc": "TritonGrpcUser", "gateway": "GatewayUser",
         "experiment": "GatewayExperimentUser", "soak": "SoakUser"}
# What `invoke loadtest` and the Kubernetes Locust pods may load; the soak's user needs the soak's own stack and
# faults around it, so only `invoke soak` runs it.
LOAD_TARGETS = tuple(u for u in USERS if u != "soak")
GATEWAY_USERS = ("gateway", "experiment", "soak")  # the users whose host is the gateway; the others load Triton
LOCUST = (sys.executable, "-m", "locust")  # this interpreter's Locust


def host_for(user: str, gateway: str | None, triton_http: str) -> str:
    """The host a user loads: the gateway's address for the gateway's users, else Triton's HTTP address."""
    if user not in GATEWAY_USERS:
        return triton_http
    if gateway is None:
        raise ValueError(f"the {user!r} user loads the gateway, and no gateway runs")
    return gateway


def locust_command(user: str, host: str, plan_file: str | Path, shape: str | None = None, *, root: str = "",
                   plugins: Sequence[str] = (), options: Sequence[str] = (),
                   program: Sequence[str] = LOCUST) -> list[str]:
    """`program`, then the locustfile, the shape's file (None: no shape, Locust's own -u/-r/-t in `options` pace
    the users) and any `plugins`, each under `root` where the files are read from another folder; the user class for
    `user`, the host it loads and the plan's path; then `options` (--headless, --processes, a pod's --master, ...)."""
    files = [LOCUSTFILE, *([SHAPE_FILES[shape]] if shape else []), *plugins]
    return [*program, "-f", ",".join(f"{root}/{f}" if root else f for f in files), USERS[user], "--host", host,
            "--tz-plan", str(plan_file), *options]
