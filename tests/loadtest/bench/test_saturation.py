"""Serving-efficiency arithmetic of the saturation benchmark: per-round pairing and same-run speed-ups."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace
from typing import Any

import numpy as np

from loadtest.bench import saturation
from loadtest.bench.saturation import SaturationPlan, _row, add_speedups, baseline_first, in_process_rate, write_results
from loadtest.report import saturation as report
from tests.serving.manifests import entry, write


def test_served_over_in_process_is_the_median_of_paired_rounds() -> None:
    row = _row(served=[90, 50, 100], local=[100, 100, 100], failed=0)
    assert row["served_ips"] == 90 and row["in_process_ips"] == 100
    assert row["served_over_in_process"] == 0.9
    paired = _row(served=[50, 90, 100], local=[50, 100, 200], failed=1)
    assert paired["served_over_in_process"] == 0.9, "a slow round slows both sides of its pair"
    assert paired["failed_requests"] == 1


def test_no_runner_leaves_in_process_empty() -> None:
    row = _row(served=[10.0], local=[], failed=0)
    assert row["in_process_ips"] is None and row["served_over_in_process"] is None
    assert row["served_over_in_process_taxed"] is None and row["client_cores"] is None


def test_the_client_tax_control_is_paired_by_round_like_the_plain_ratio() -> None:
    row = _row(served=[80, 90, 100], local=[100, 100, 100], taxed=[90, 90, 100], client_cores=[0.1, 0.2, 0.12],
               failed=0)
    assert row["served_over_in_process"] == 0.9 and row["served_over_in_process_taxed"] == 1.0
    assert row["client_cores"] == 0.12 and row["in_process_taxed_rounds_ips"] == [90, 90, 100]


def test_the_taxed_run_burns_the_clients_cpu_beside_the_model(monkeypatch) -> None:
    started: list[list[str] | str] = []  # the tax's command, then "waited"

    class FakeTax:
        def __init__(self, command: list[str]) -> None:
            started.append(command)

        def wait(self) -> None:
            started.append("waited")

    monkeypatch.setattr(saturation.subprocess, "Popen", FakeTax)
    assert saturation.taxed_in_process_rate(lambda x: x, np.zeros((4, 1)), 0.05, cores=1.7) > 0
    command, waited = started
    assert command[1:] == ["-m", "loadtest.bench.cpu_tax", "--cores", "1.000", "--seconds", "0.050"], "one core at most"
    assert waited == "waited"


def test_speedups_are_ratios_to_the_baseline_in_the_same_run() -> None:
    results = add_speedups({"a": {"served_ips": 100.0}, "b": {"served_ips": 250.0}}, "a")
    assert results["b"]["speedup_vs_baseline"] == 2.5 and results["a"]["speedup_vs_baseline"] == 1.0


def test_in_process_rate_runs_plain_runners_back_to_back() -> None:
    calls: list[int] = []

    def runner(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return x

    rate = in_process_rate(runner, np.zeros((4, 1)), 0.05)
    assert calls and all(n == 4 for n in calls)
    assert rate > 0


class StreamsFake:
    """A session with `start` and `wait`, as the OpenVINO backend drives it: batches finish only when waited on."""

    def __init__(self) -> None:
        self.started, self.waited = 0, 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        raise AssertionError("a session with streams is driven through start, as its backend drives it")

    def start(self, images: np.ndarray) -> None:
        self.started += 1

    def wait(self) -> None:
        self.waited = self.started


def test_in_process_rate_keeps_batches_in_flight_on_a_session_with_streams() -> None:
    session = StreamsFake()
    assert in_process_rate(session, np.zeros((4, 1)), 0.05) > 0
    assert session.started > 1 and session.waited == session.started, "the batches in flight are waited for"


def test_all_models_put_the_baseline_the_manifest_names_first() -> None:
    """The baseline is what the build recorded (each entry names its baseline model), not a name to parse."""
    manifest = {"a_int8": entry("a_int8", variant="int8", baseline="z_ref"),
                "b_fp32_openvino": entry("b_fp32_openvino", runtime="openvino", baseline="z_ref"),
                "z_ref": entry("z_ref", baseline="z_ref")}
    assert baseline_first(manifest) == ["z_ref", "a_int8", "b_fp32_openvino"]


def test_results_name_the_machine_they_come_from(tmp_path) -> None:
    results = add_speedups({"a": _row(served=[10.0], local=[10.0], failed=0)}, "a")
    md = report.write(write_results(results, SaturationPlan(), "a", tmp_path))
    data = json.loads((tmp_path / "saturation.json").read_text())
    assert data["machine"]["logical_cpus"] == os.cpu_count() and isinstance(data["machine"]["amx"], bool)
    assert f"{os.cpu_count()} logical CPUs" in md.read_text()


def test_each_model_is_loaded_with_its_own_images_at_its_own_input(tmp_path, monkeypatch) -> None:
    import contextlib

    import serving.triton

    repo = write(tmp_path / "repo", [entry("c_fp32"), entry("g_fp32", dims=(1, 28, 28))])
    seen: dict[str, dict[str, Any]] = {}

    @contextlib.contextmanager
    def fake_triton(cfg, *args):
        yield SimpleNamespace(cfg=SimpleNamespace(grpc_url="127.0.0.1:1"))

    def fake_measure(url, models, images, plan, runners, input_names):
        seen.update(images=images, input_names=input_names)
        return {m: _row(served=[100.0], local=[], failed=0) for m in models}

    monkeypatch.setattr(serving.triton, "TritonServer", fake_triton)
    monkeypatch.setattr(saturation, "in_process_runner", lambda path: None)
    monkeypatch.setattr(saturation, "measure_saturation", fake_measure)
    batch = np.full((64, 3, 32, 32), 30, np.uint8)
    saturation.run_saturation_benchmark(repo, ["c_fp32", "g_fp32"], batch, SaturationPlan(), "c_fp32", tmp_path)
    assert seen["images"]["c_fp32"] is batch and seen["images"]["g_fp32"].shape == (64, 1, 28, 28)
    assert seen["input_names"] == {"c_fp32": "images", "g_fp32": "images"}
