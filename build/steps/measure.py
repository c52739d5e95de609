"""Measure a card's models together: speed in one interleaved run, each one's peak memory, and this CPU's peak MAC
rates (the report's efficiency denominators), before and after the models' timing.

Unlike the variant steps it runs once per card, over every model the card's variants made (in their own folders,
before any is published); it returns new entries, with their figures, which the build then publishes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from build.measure import SpeedPlan, measure_speeds, peak_memory_mb
from build.peak import measure as measure_peaks
from build.pipeline import BuildContext
from build.variants import VARIANTS
from serving.manifest import Memory, ModelEntry, Speed
from serving.publication import DRAFT_VERSION


@dataclass(frozen=True)
class Made:
    """A model a publish step made: its entry and its folder (config.pbtxt and the version folder)."""

    entry: ModelEntry
    folder: Path

    @property
    def version_dir(self) -> Path:
        return self.folder / str(DRAFT_VERSION)


@dataclass(frozen=True)
class Measurement:
    """Per model, its entry with speed, memory and the measured flags; and the CPU's peaks."""

    entries: dict[str, ModelEntry]
    peaks: dict


class MeasureSpeed:
    name = "measure"

    def run(self, made: dict[str, Made], ctx: BuildContext, log=print) -> Measurement:
        runtimes = {r.name: r for r in ctx.runtimes}
        runners = {name: runtimes[m.entry.runtime].runner(m.version_dir, ctx.options.threads)
                   for name, m in made.items()}
        quick = ctx.options.profile == "quick"
        plan = SpeedPlan(rounds=2, latency_iters=20, throughput_batches=1) if quick else SpeedPlan()
        log(f"measuring {len(runners)} model(s), interleaved, {plan.rounds} rounds")
        peaks = partial(measure_peaks, ctx.options.threads, ctx.hardware.cpu_flags, 0.1 if quick else 0.5)
        before = peaks()
        speeds = measure_speeds(runners, ctx.data.test.images, plan)
        speeds = {name: replace(speed, device=runtimes[made[name].entry.runtime].device_speed(runners[name]))
                  for name, speed in speeds.items()}  # a GPU runner also timed itself on the device (CUDA events)
        peak_summary = before.merged(peaks()).summary()
        memory = _memory(made, ctx)
        entries = {}
        for name, m in made.items():
            speed = speeds[name].with_speedups(speeds.get(m.entry.baseline or ""))
            device = runtimes[m.entry.runtime].device_memory(runners[name])
            entries[name] = replace(m.entry, speed=speed, memory=replace(memory[name], device=device),
                                    flags={**m.entry.flags, **_slower_flag(speed, m.entry)})
        return Measurement(entries, peak_summary)


def _slower_flag(speed: Speed, entry: ModelEntry) -> dict:
    """A model of another variant than its baseline that runs slower than the baseline, said so."""
    variant = VARIANTS[entry.variant]
    if speed.speedup_b64 is not None and speed.speedup_b64 < 1 and not variant.is_baseline:
        return {"slower_than_fp32": f"{speed.speedup_b64:.2f}x the throughput of {variant.baseline} at batch 64 "
                                    "on this machine"}
    return {}


def _memory(made: dict[str, Made], ctx: BuildContext) -> dict[str, Memory]:
    """Each memory peak is a process of its own, so they run side by side, one per thread the build may use."""
    with ThreadPoolExecutor(ctx.options.threads) as pool:
        return dict(zip(made, pool.map(
            lambda n: peak_memory_mb(made[n].entry.runtime, made[n].version_dir, ctx.options.threads,
                                     ctx.io.input_dims), made)))
