"""Load-generator headroom and config search end to end: real Triton, real wrk and Locust, a real model reloaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from build.data import load_dataset
from loadtest.bench.config_search import SearchPlan, Trial, apply_trial, current_trial, read_config, tune_config
from loadtest.bench.headroom import TAXED, HeadroomPlan, run_headroom
from loadtest.protocol.images import load_test_images
from loadtest.report import config_search as search_report
from loadtest.report import headroom as headroom_report
from tests.conftest import CIFAR, MINI_ARCHIVE
from tests.e2e.stack import publish

pytestmark = [pytest.mark.e2e, pytest.mark.needs_tool("wrk")]


def test_headroom_compares_wrk_and_locust_on_the_same_endpoint(tmp_path: Path) -> None:
    plan = HeadroomPlan(connections=4, rounds=1, warmup_s=0.5, measure_s=1.5, generators=("wrk", "locust-2p", TAXED))
    json_path = run_headroom(load_test_images(MINI_ARCHIVE, 1, CIFAR)[0], plan, tmp_path)
    md_path = headroom_report.write(json_path)
    results = json.loads(json_path.read_text())
    trivial = results["trivial"]
    assert results["partial"] is None and trivial["answer_shape"] == [1, 10]
    for name in plan.generators:
        row = trivial["summary"][name]
        assert row["rps"] > 0 and row["server_failures"] == 0 and row["client_failures"] == 0, name
        assert row["cores"]["generator"] > 0 and row["us_per_request"]["triton"] > 0, name
    wrk = next(s for s in trivial["samples"] if s["generator"] == "wrk")["wrk"]
    assert wrk["requests"] > 0 and wrk["non_2xx"] == 0  # wrk's own summary came back: its requests succeeded
    two = next(s for s in trivial["samples"] if s["generator"] == "locust-2p")
    assert two["client"]["success"] > 0 and two["client"]["failure"] == 0  # both worker processes' exporters
    taxed = next(s for s in trivial["samples"] if s["generator"] == TAXED)
    assert taxed["tax_cores"] is not None and taxed["wrk"]["requests"] > 0  # wrk ran beside the tax, in its group
    assert trivial["verdict"]["best"] == "locust-2p" and "| wrk |" in md_path.read_text()


def test_config_search_reloads_each_trial_and_writes_the_winner_back(tmp_path: Path) -> None:
    data = load_dataset(str(MINI_ARCHIVE), CIFAR, tmp_path / "cache")
    model = publish(data, tmp_path / "repo", "tiny", tmp_path)
    path = tmp_path / "repo" / model / "config.pbtxt"
    original = read_config(path)
    plan = SearchPlan(max_batch_sizes=(8,), delays_us=(0,), instances=(1, 2), concurrency=4, seconds=1.0,
                      warmup_s=0.3, slo_ms=10_000, min_gain=0.0)
    json_path = tune_config(tmp_path / "repo", model, data.test.images[:16], plan, tmp_path / "out")
    md_path = search_report.write(json_path)
    results = json.loads(json_path.read_text())
    assert len(results["trials"]) == 3  # the grid and the current config
    assert all(t["requests"] > 0 and t["failures"] == 0 and t["meets_slo"] for t in results["trials"])
    assert {t["avg_batch"] is not None for t in results["trials"]} == {True}  # Triton's counters moved each trial
    chosen = Trial(**results["chosen"])
    if results["written"]:
        assert read_config(path) == apply_trial(original, chosen)  # only the searched fields changed
    else:
        assert chosen == current_trial(original) and read_config(path) == original
    assert not list(path.parent.glob(".config-*")) and "Config search" in md_path.read_text()
