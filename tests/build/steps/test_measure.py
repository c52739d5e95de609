"""The measure step's output: new entries with their figures, speed-ups over each entry's baseline, and its flag."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import cast

import numpy as np
import pytest

import build.steps.measure as measure
from build.data import Dataset
from build.pipeline import BuildContext, BuildOptions
from build.repository.model_config import model_io
from build.runtimes.onnxruntime import OnnxRuntime
from build.sources import Teacher
from build.steps.measure import Made, MeasureSpeed, _slower_flag
from serving.manifest import Accuracy, Memory, ModelEntry, Speed
from tests.conftest import CIFAR, unused

BASE = Speed(latency_b1_p50_ms=8.0, latency_b1_p99_ms=9.0, throughput_b64_ips=160.0)


def entry(model: str, variant: str) -> ModelEntry:
    return ModelEntry(model=model, family="m", variant=variant, runtime="onnxruntime", version=1, io=model_io(CIFAR),
                      accuracy=Accuracy(0.9, 100), max_batch_size=64, baseline="m_fp32",
                      flags={"hardware": "no VNNI"})


def test_speedups_are_ratios_to_the_baseline_and_a_slower_model_is_flagged() -> None:
    speed = replace(BASE, latency_b1_p50_ms=4.0, throughput_b64_ips=80.0).with_speedups(BASE)
    assert (speed.speedup_b1, speed.speedup_b64) == (2.0, 0.5)
    assert "0.50x the throughput of fp32" in _slower_flag(speed, entry("m_int8", "int8"))["slower_than_fp32"]
    assert _slower_flag(speed, entry("m_fp32_openvino", "fp32")) == {}, "the baseline's variant is never flagged"
    assert BASE.with_speedups(None) == BASE


def test_measurement_returns_new_entries_with_their_figures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    made = {m: Made(entry(m, v), tmp_path / m) for m, v in (("m_fp32", "fp32"), ("m_int8", "int8"))}
    speeds = {"m_fp32": BASE, "m_int8": replace(BASE, latency_b1_p50_ms=16.0, throughput_b64_ips=80.0)}

    class Peaks:
        def merged(self, other: Peaks) -> Peaks:
            return self

        def summary(self) -> dict:
            return {"best": {}}

    monkeypatch.setattr(measure, "measure_peaks", lambda *args: Peaks())
    monkeypatch.setattr(measure, "measure_speeds", lambda runners, images, plan: speeds)
    monkeypatch.setattr(measure, "peak_memory_mb", lambda *args: Memory(100.0, 5.0))
    monkeypatch.setattr(OnnxRuntime, "runner", lambda self, model_dir, threads: model_dir)
    ctx = BuildContext(cast(Dataset, _Images()), unused(Teacher), BuildOptions(threads=1), (OnnxRuntime(),), tmp_path,
                       {}, model_io(CIFAR))
    result = MeasureSpeed().run(made, ctx, log=lambda line: None)
    int8 = result.entries["m_int8"]
    assert int8.speed is not None and (int8.speed.speedup_b1, int8.speed.speedup_b64) == (0.5, 0.5)
    assert int8.memory == Memory(100.0, 5.0) and set(int8.flags) == {"hardware", "slower_than_fp32"}
    assert result.entries["m_fp32"].speed == BASE.with_speedups(BASE) and result.peaks == {"best": {}}
    assert made["m_int8"].entry.speed is None and made["m_int8"].entry.flags == {"hardware": "no VNNI"}, \
        "the given entries stay as they were"


class _Images:
    class test:  # noqa: N801 - stands in for the dataset's test split
        images = np.zeros((1, *CIFAR), np.uint8)
