from __future__ import annotations

import pytest

from loadtest.runs.command import LOCUSTFILE, SHAPE_FILES, USERS, host_for, locust_command
from loadtest.runs.plan import SHAPES
from tests.conftest import ROOT


def test_every_shape_and_the_locustfile_are_files_and_every_user_a_class() -> None:
    assert set(SHAPE_FILES) == set(SHAPES) and all((ROOT / f).is_file() for f in [LOCUSTFILE, *SHAPE_FILES.values()])
    source = (ROOT / LOCUSTFILE).read_text()
    assert all(f"class {name}(" in source for name in USERS.values())


def test_the_command_line_names_files_user_host_and_plan_then_the_callers_options() -> None:
    assert locust_command("grpc", "http://t:8000", "/p/plan.json", "step", root="/p", plugins=["x.py"],
                          options=["--worker"], program=()) == [
        "-f", f"/p/{LOCUSTFILE},/p/{SHAPE_FILES['step']},/p/x.py", "TritonGrpcUser", "--host", "http://t:8000",
        "--tz-plan", "/p/plan.json", "--worker"]
    local = locust_command("http", "http://h:1", "plan.json")
    assert local[1:3] == ["-m", "locust"] and local[local.index("-f") + 1] == LOCUSTFILE  # no shape: Locust's -u/-t


def test_the_gateways_users_load_the_gateway() -> None:
    assert host_for("experiment", "gw:1", "triton:2") == "gw:1" and host_for("grpc", None, "triton:2") == "triton:2"
    with pytest.raises(ValueError, match="no gateway"):
        host_for("gateway", None, "triton:2")
