from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from loadtest.analysis.shapes import AUTO_PACE, StepPlan
from loadtest.runs.spec import LoadSpec, resolve_pacing
from tests.serving.manifests import entry, write


def spec(**kw) -> LoadSpec:
    return LoadSpec(Path("repo"), Path("data.tar.gz"), Path("out"), **kw)


@pytest.mark.parametrize("bad, message", [({"target": "udp"}, "unknown target"), ({"shape": "ramp"}, "unknown shape"),
                                          ({"target": "soak"}, "runs under .invoke soak."),
                                          ({"seconds": 0}, "positive"), ({"target": "experiment"}, "two models")])
def test_bad_specs_are_refused(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec(**bad).validate()


def test_auto_pacing_comes_from_the_manifests_throughput(tmp_path: Path) -> None:
    write(tmp_path, [entry("a", speed={"throughput_b64_ips": 160.0}), entry("b", speed={"throughput_b64_ips": 480.0}),
                     entry("c"), entry("fast", speed={"throughput_b64_ips": 6400.0})])
    auto = LoadSpec(tmp_path, Path("d"), Path("o"), ("a",), shape="step", step=StepPlan(user_rps=AUTO_PACE))
    assert resolve_pacing(auto).step.user_rps == 10.0  # 160/s over 16 users
    both = replace(auto, models=("a", "b"))
    # taking turns: 2 / (1/160 + 1/480) = 240/s, 15/s per counted user: two real users at 7.5/s each
    assert resolve_pacing(both).step.user_rps == 7.5
    assert resolve_pacing(replace(auto, step=StepPlan(user_rps=7))).step.user_rps == 7
    fast = resolve_pacing(replace(auto, models=("fast",))).step  # 400/s per counted user, SLO 100 ms
    assert fast.user_rps == 10.0, "each real user's interval is at least the SLO latency"
    assert (fast.start_users, fast.step_users, fast.max_users) == (40, 80, 2560), "40 real users per counted one"
    assert fast.spawn_rate == 40 * StepPlan().spawn_rate
    with pytest.raises(ValueError, match="throughput"):
        resolve_pacing(replace(auto, models=("c",)))
