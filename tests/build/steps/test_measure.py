"""The measure step's output: figures merged into new entries, speed-ups over the baseline, and its flag."""

from __future__ import annotations

from build.steps.measure import Measurement, _slower_flag, _with_speedups

BASE = {"latency_b1_p50_ms": 8.0, "throughput_b64_ips": 160.0}


def test_speedups_are_ratios_to_the_baseline_and_a_slower_model_is_flagged() -> None:
    speed = _with_speedups({"latency_b1_p50_ms": 4.0, "throughput_b64_ips": 80.0}, BASE)
    assert (speed["speedup_b1"], speed["speedup_b64"]) == (2.0, 0.5)
    assert "0.50x the throughput of fp32" in _slower_flag(speed, "int8")["slower_than_fp32"]
    assert _slower_flag(_with_speedups(BASE, BASE), "fp32") == {} and _with_speedups(BASE, None) == BASE


def test_figures_are_merged_into_new_entries() -> None:
    entries = {"m": {"model": "m", "flags": {"hardware": "no VNNI"}}}
    figures = {"m": {"speed": BASE, "memory": {"model_peak_mb": 5.0}, "flags": {"slower_than_fp32": "x"}}}
    merged = Measurement(figures, {"best": {}}).merged(entries)
    assert merged["m"] == {"model": "m", "flags": {"hardware": "no VNNI", "slower_than_fp32": "x"}, "speed": BASE,
                           "memory": {"model_peak_mb": 5.0}}
    assert entries["m"] == {"model": "m", "flags": {"hardware": "no VNNI"}}, "the given entries stay"
