"""Measure a card's staged models together: speed in one interleaved run, each one's peak memory, and this CPU's
peak MAC rates (the report's efficiency denominators), before and after the models' timing.

Unlike the variant steps it runs once per card, over every model the card's variants made; its output is the
figures, which the build merges into the entries before it records them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from build.measure import SpeedPlan, measure_speeds, peak_memory_mb
from build.peak import measure as measure_peaks
from build.pipeline import BuildContext
from build.runtimes import RUNTIMES, Runner
from build.steps.publish import model_name

BASELINE = "fp32"  # every speedup is a ratio to this variant on ONNX Runtime, measured in the same run


@dataclass(frozen=True)
class Measurement:
    """Per model, the entry fields the figures fill (speed, memory, and flags to add); and the CPU's peaks."""

    models: dict[str, dict]
    peaks: dict

    def merged(self, entries: dict[str, dict]) -> dict[str, dict]:
        """New entries: each with its figures, its flags extended by the measured ones."""
        out = {}
        for name, entry in entries.items():
            figures = self.models[name]
            out[name] = {**entry, "flags": {**entry["flags"], **figures["flags"]}, "speed": figures["speed"],
                         "memory": figures["memory"]}
        return out


class MeasureSpeed:
    name = "measure"

    def run(self, entries: dict[str, dict], ctx: BuildContext, log=print) -> Measurement:
        runners = {name: RUNTIMES[e["runtime"]].runner(_version_dir(ctx, name, e), ctx.options.threads)
                   for name, e in entries.items()}
        quick = ctx.options.profile == "quick"
        plan = SpeedPlan(rounds=2, latency_iters=20, throughput_batches=1) if quick else SpeedPlan()
        log(f"measuring {len(runners)} model(s), interleaved, {plan.rounds} rounds")
        peaks = partial(measure_peaks, ctx.options.threads, ctx.hardware.cpu_flags, 0.1 if quick else 0.5)
        before = peaks()
        speeds = measure_speeds(runners, ctx.data.test.images, plan)
        for name, run in runners.items():  # a GPU runner also timed itself on the device (CUDA events), optional
            speeds[name].update(getattr(run, "device_speed", dict)())
        peak_summary = before.merged(peaks()).summary()
        memory = _memory(entries, ctx)
        baseline = speeds.get(model_name(ctx.name, BASELINE, "onnxruntime"))
        speeds = {name: _with_speedups(speed, baseline) for name, speed in speeds.items()}
        return Measurement({name: {"speed": speed, "flags": _slower_flag(speed, entries[name]["variant"]),
                                   "memory": {**memory[name], **_device_memory(runners[name])}}
                            for name, speed in speeds.items()}, peak_summary)


def _with_speedups(speed: dict, baseline: dict | None) -> dict:
    if not baseline:
        return speed
    return {**speed, "speedup_b1": round(baseline["latency_b1_p50_ms"] / speed["latency_b1_p50_ms"], 3),
            "speedup_b64": round(speed["throughput_b64_ips"] / baseline["throughput_b64_ips"], 3)}


def _slower_flag(speed: dict, variant: str) -> dict:
    if "speedup_b64" in speed and speed["speedup_b64"] < 1 and variant != BASELINE:
        return {"slower_than_fp32": f"{speed['speedup_b64']:.2f}x the throughput of {BASELINE} at batch 64 "
                                    "on this machine"}
    return {}


def _memory(entries: dict[str, dict], ctx: BuildContext) -> dict[str, dict]:
    """Each memory peak is a process of its own, so they run side by side, one per thread the build may use."""
    with ThreadPoolExecutor(ctx.options.threads) as pool:
        return dict(zip(entries, pool.map(
            lambda n: peak_memory_mb(entries[n]["runtime"], _version_dir(ctx, n, entries[n]), ctx.options.threads,
                                     ctx.io.input_dims), entries)))


def _device_memory(run: Runner) -> dict:
    return getattr(run, "device_memory", dict)()


def _version_dir(ctx: BuildContext, name: str, entry: dict) -> Path:
    return ctx.publication.staged(name) / str(entry["version"])
