from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from serving.gateway.errors import BadRequest, InvalidConfig
from serving.gateway.experiments import Experiment, ExperimentStore, Shadow, parse_experiment, unit_hash

KNOWN = {"a", "b", "c"}


def test_random_assignment_follows_weights() -> None:
    exp = Experiment("e", {"a": 0.8, "b": 0.2})
    rng = random.Random(0)
    n = 20000
    share = sum(exp.assign(None, rng=rng) == "a" for _ in range(n)) / n
    assert abs(share - 0.8) < 4 * math.sqrt(0.8 * 0.2 / n)


def test_sticky_keys_always_get_the_same_arm_and_spread_by_weight() -> None:
    exp = Experiment("e", {"a": 1, "b": 1})
    arms = {f"user{i}": exp.assign(f"user{i}") for i in range(2000)}
    assert all(exp.assign(k) == arm for k, arm in list(arms.items())[:200])
    share = sum(a == "a" for a in arms.values()) / len(arms)
    assert 0.45 < share < 0.55
    assert unit_hash("e:x") != unit_hash("f:x"), "experiments hash independently"


def test_pinned_arm_wins_and_must_be_an_arm() -> None:
    exp = Experiment("e", {"a": 1, "b": 0.0001})
    assert exp.assign("anyone", pinned="b") == "b"
    with pytest.raises(BadRequest, match="not an arm"):
        exp.assign(None, pinned="c")


@pytest.mark.parametrize("body,match", [
    ({}, "needs 'arms'"),
    ({"arms": {}}, "needs 'arms'"),
    ({"arms": {"zzz": 1}}, "not a published model"),
    ({"arms": {"a": -1}}, "finite number >= 0"),
    ({"arms": {"a": float("nan")}}, "finite number"),
    ({"arms": {"a": True}}, "finite number"),
    ({"arms": {"a": "1"}}, "finite number"),
    ({"arms": {"a": 0, "b": 0}}, "must not all be zero"),
    ({"arms": {"a": 1}, "shadow": {"model": "zzz"}}, "'shadow' needs a published"),
    ({"arms": {"a": 1}, "shadow": {"model": "b", "fraction": 2}}, "between 0 and 1"),
])
def test_invalid_configs_are_rejected(body, match) -> None:
    with pytest.raises(InvalidConfig, match=match):
        parse_experiment("e", body, KNOWN)


def test_zero_weight_arms_are_dropped() -> None:
    exp = parse_experiment("e", {"arms": {"a": 3, "b": 0}, "shadow": {"model": "c", "fraction": 0.5}}, KNOWN)
    assert exp.arms == {"a": 3.0} and exp.shadow == Shadow("c", 0.5)


def test_store_persists_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "exp.json"
    store = ExperimentStore(path)
    store.put(Experiment("e", {"a": 1.0, "b": 2.0}, Shadow("c", 0.1), canary={"state": "promoted"}))
    reloaded = ExperimentStore(path).get("e")
    assert reloaded.arms == {"a": 1.0, "b": 2.0} and reloaded.shadow == Shadow("c", 0.1)
    assert reloaded.canary == {"state": "promoted"}
    store.delete("e")
    assert ExperimentStore(path).experiments == {}
