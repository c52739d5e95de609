"""What a Locust run is to do, as data: whoever starts Locust writes a `LoadPlan` as JSON and passes its path
(`--tz-plan PATH`, or the TRITONZOO_LOCUST_PLAN environment variable); the locustfile and its shapes read it back
into the same dataclasses. Every setting is declared once, here or in the shapes' plans (no Locust import).

By hand, write a plan with this module, then start Locust on it::

    python -m loadtest.runs.plan plan.json models=resnet18_fp32 repo=models images_file=images.npy \\
        shape=step step.slo_ms=50 step.max_users=32
    locust -f loadtest/locust/locustfile.py,loadtest/locust/step_shape.py --headless TritonHttpUser \\
        --host http://127.0.0.1:8000 --tz-plan plan.json

`python -m loadtest.runs.plan -` prints the defaults: every field it takes, as `field=value` (`step.field=value` for
the step shape's plan, `constant.field=value` for the constant one's; lists comma-separated).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from loadtest.analysis.shapes import ConstantPlan, StepPlan

PLAN_ENV = "TRITONZOO_LOCUST_PLAN"
SHAPES = ("constant", "step")


@dataclass(frozen=True)
class LoadPlan:
    models: tuple[str, ...] = ()        # empty: every model of `repo`'s manifest
    repo: str = ""                      # model repository whose manifest names the models and their inputs
    images_file: str = ""               # pre-decoded images: .npz, one uint8 N,C,H,W array per model, or one .npy
    data: str = ""                      # or: test images, an ImageFolder dir/.tar.gz or cifar-10-python.tar.gz
    images: int = 500                   # test images to cycle through
    grpc: str = "127.0.0.1:8001"        # Triton gRPC address for TritonGrpcUser
    experiment: str = "ab"              # gateway experiment for GatewayExperimentUser
    timeout_s: float = 30.0             # per request
    exporter_ports: tuple[int, ...] = (9646,)  # the Prometheus exporter's, one per process with users
    run_file: str = ""                  # write the test's start and end times here (JSON)
    max_requests: int = 0               # stop after this many requests in all (0: no bound)
    max_seconds: float = 0.0            # stop after this many seconds (0: no bound)
    linger_s: float = 2.5               # keep exporting this long after the end (a final scrape)
    steps_out: str = ""                 # step shape: write each step's figures here (JSON)
    records_file: str = ""              # write every request's record here (JSON lines, `.<pid>` per process)
    shape: str = "constant"             # the plan that paces the users: constant | step
    constant: ConstantPlan = field(default_factory=lambda: ConstantPlan(4, 30.0))
    step: StepPlan = field(default_factory=StepPlan)

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; choose from {list(SHAPES)}")

    @property
    def user_rps(self) -> float:
        """Each user's pace (0: closed loop): the step plan's, or the constant rate shared among its users."""
        return self.step.user_rps if self.shape == "step" else self.constant.user_rate

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> LoadPlan:
        """The plan of a JSON record; a key it does not know is an error, a key it lacks keeps its default."""
        return _build(cls, record)

    @classmethod
    def read(cls, path: Path) -> LoadPlan:
        return cls.from_dict(json.loads(path.read_text()))


@functools.lru_cache
def read_plan(path: str) -> LoadPlan:
    return LoadPlan.read(Path(path))


def plan_of(options: Any) -> LoadPlan:
    """The plan named by Locust's parsed options (--tz-plan), read once per process."""
    path = getattr(options, "tz_plan", "")
    if not path:
        raise SystemExit(f"locustfile: give --tz-plan PATH (or ${PLAN_ENV}); `python -m loadtest.runs.plan` writes one")
    return read_plan(path)


def _build(cls: type, record: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = set(record) - names
    if unknown:
        raise ValueError(f"{cls.__name__} has no field {sorted(unknown)}")
    values = {}
    for name, value in record.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = _build(typing.cast(type, kind), value)
        elif typing.get_origin(kind) is tuple:
            values[name] = tuple(value)
        else:
            values[name] = value
    return cls(**values)


def _parse(kind: Any, text: str) -> Any:
    if typing.get_origin(kind) is tuple:
        (item, _) = typing.get_args(kind)
        return tuple(item(part) for part in text.split(",") if part)
    return kind(text)


def with_settings(plan: LoadPlan, settings: list[str]) -> LoadPlan:
    """`plan` with `field=value` (or `step.field=value`, `constant.field=value`) settings applied."""
    for setting in settings:
        key, sep, text = setting.partition("=")
        if not sep:
            raise ValueError(f"{setting!r}: settings are field=value")
        owner, _, name = key.rpartition(".")
        inner = getattr(plan, owner) if owner else plan
        if owner not in ("", "step", "constant") or name not in {f.name for f in fields(inner)}:
            raise ValueError(f"no plan field {key!r}")
        value = _parse(typing.get_type_hints(type(inner))[name], text)
        changes: dict[str, Any] = {owner: replace(inner, **{name: value})} if owner else {name: value}
        plan = replace(plan, **changes)
    return plan


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    plan = with_settings(LoadPlan(), argv[1:])
    if argv[0] == "-":
        print(plan.to_json())
    else:
        print(plan.write(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
