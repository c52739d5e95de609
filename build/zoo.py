"""Build the zoo: run each requested variant's recipe, measure, then publish every runtime atomically."""

from __future__ import annotations

import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from build.data import Dataset
from build.data.dataset import sha256_file
from build.errors import VariantRejected, ZooError
from build.hardware import Hardware, detect
from build.measure import SpeedPlan, measure_speeds, peak_memory_mb
from build.models import load_weights
from build.peak import measure as measure_peaks
from build.pipeline import BuildContext, BuildOptions, Pipeline, Step, VariantState
from build.repository.publish import Publication
from build.runtimes import RUNTIMES, Runtime
from build.steps.publish import PublishRuntime, model_name
from build.variants import VARIANTS

BASELINE = "fp32"  # every speedup is a ratio to this variant on ONNX Runtime, measured in the same run


@dataclass
class ZooBuild:
    """What a build did: the variants built, those rejected and why, and the entries it published."""

    states: dict[str, VariantState]
    rejected: dict[str, str]
    entries: dict[str, dict]
    options: BuildOptions
    provenance: dict = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)  # model -> why its runtime does not apply


def build_zoo(data: Dataset, teacher_path: Path, repo: Path, variants: list[str], runtimes: list[str],
              options: BuildOptions = BuildOptions(), log=print) -> ZooBuild:
    """Build `variants` for `runtimes` into `repo`. A rejected variant is left out; any other failure
    publishes nothing."""
    unknown = [v for v in variants if v not in VARIANTS] + [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise ZooError(f"unknown variant or runtime {unknown}; "
                       f"variants: {sorted(VARIANTS)}, runtimes: {sorted(RUNTIMES)}")
    teacher, meta = load_weights(teacher_path)
    if meta.get("classes") and meta["classes"] != data.classes:
        raise ZooError(f"teacher {teacher_path} was trained on classes {meta['classes']}, "
                       f"the dataset has {data.classes}")
    hardware = detect()
    usable = _usable_runtimes(runtimes, hardware, log)
    provenance = {
        "hardware": hardware.summary(),
        "dataset": {"source": data.source, "checksum": data.checksum},
        "teacher": {"file": Path(teacher_path).name, "sha256": sha256_file(Path(teacher_path)),
                    "test_accuracy": meta.get("test_accuracy")},
        "code_version": code_version(),
    }
    with tempfile.TemporaryDirectory(prefix="tritonzoo-build-") as work, Publication(repo) as publication:
        ctx = BuildContext(data, teacher, options, usable, publication, Path(work), provenance, hardware=hardware,
                           weights_dir=Path(teacher_path).parent)
        plan = [(name, _steps(name, publish, usable)) for name, publish in build_order(variants)]
        for _, steps in plan:  # every setting is checked before the first expensive step
            for step in steps:
                step.check(ctx)
        for name, steps in plan:
            _build_or_reject(name, steps, ctx, log)
        if options.measure_speed and publication.entries:
            _measure(ctx, log)
        entries = dict(publication.entries)
    rejected = {n: r for n, r in ctx.rejected.items() if n in variants or n not in VARIANTS}  # or a model
    return ZooBuild({n: ctx.done[n] for n in variants if n in ctx.done}, rejected, entries, options, provenance,
                    ctx.not_applicable)


def build_order(requested: list[str]) -> list[tuple[str, bool]]:
    """Each requested variant after its parents; a parent built only as a source is not published."""
    order: dict[str, bool] = {}

    def visit(name: str, publish: bool) -> None:
        parent = VARIANTS[name].parent
        if parent in VARIANTS and parent not in order:
            visit(parent, False)
        order[name] = order.get(name, False) or publish

    for name in requested:
        visit(name, True)
    return list(order.items())


def _steps(name: str, publish: bool, runtimes: list[Runtime]) -> list[Step]:
    variant = VARIANTS[name]
    return variant.steps() + ([PublishRuntime(r, variant) for r in runtimes] if publish else [])


def _build_or_reject(name: str, steps: list[Step], ctx: BuildContext, log) -> None:
    variant = VARIANTS[name]
    if variant.parent in ctx.rejected:
        ctx.rejected[name] = f"its parent {variant.parent} was rejected"
        log(f"  [{name}] skipped: {ctx.rejected[name]}")
        return
    workdir = ctx.workdir / name
    workdir.mkdir()
    state = VariantState(name=name, parent=variant.parent, tolerance=variant.tolerance, workdir=workdir)
    try:
        ctx.done[name] = Pipeline(steps).run(state, ctx, log)
    except VariantRejected as exc:
        for runtime in ctx.runtimes:
            ctx.publication.discard(model_name(ctx.options.arch, name, runtime.name))
        ctx.rejected[name] = str(exc)
        log(f"  [{name}] rejected, not published: {exc}")


def _measure(ctx: BuildContext, log) -> None:
    """Speed of every staged model in one interleaved run, then each one's peak memory."""
    entries = ctx.publication.entries
    runners = {name: RUNTIMES[e["runtime"]].runner(_version_dir(ctx, name), ctx.options.threads)
               for name, e in entries.items()}
    quick = ctx.options.profile == "quick"
    plan = SpeedPlan(rounds=2, latency_iters=20, throughput_batches=1) if quick else SpeedPlan()
    log(f"measuring {len(runners)} model(s), interleaved, {plan.rounds} rounds")
    # This CPU's peak MAC rates, the report's efficiency denominators: before and after the models' timing.
    peaks = partial(measure_peaks, ctx.options.threads, ctx.hardware.cpu_flags, 0.1 if quick else 0.5)
    before = peaks()
    speeds = measure_speeds(runners, ctx.data.test.images, plan)
    ctx.provenance["peaks"] = before.merged(peaks()).summary()
    baseline = speeds.get(model_name(ctx.options.arch, BASELINE, "onnxruntime"))
    # Each memory peak is a process of its own, so they run side by side, one per thread the build may use.
    with ThreadPoolExecutor(ctx.options.threads) as pool:
        memory = dict(zip(speeds, pool.map(
            lambda n: peak_memory_mb(entries[n]["runtime"], _version_dir(ctx, n), ctx.options.threads), speeds)))
    for name, speed in speeds.items():
        if baseline:
            speed["speedup_b1"] = round(baseline["latency_b1_p50_ms"] / speed["latency_b1_p50_ms"], 3)
            speed["speedup_b64"] = round(speed["throughput_b64_ips"] / baseline["throughput_b64_ips"], 3)
            if speed["speedup_b64"] < 1 and entries[name]["variant"] != BASELINE:
                entries[name]["flags"]["slower_than_fp32"] = (
                    f"{speed['speedup_b64']:.2f}x the throughput of {BASELINE} at batch 64 on this machine")
        entries[name]["speed"] = speed
        entries[name]["memory"] = memory[name]


def _version_dir(ctx: BuildContext, name: str) -> Path:
    return ctx.publication.staged(name) / str(ctx.publication.entries[name]["version"])


def _usable_runtimes(names: list[str], hardware: Hardware, log) -> list[Runtime]:
    usable = []
    for name in names:
        reason = RUNTIMES[name].unavailable_reason(hardware)
        if reason:
            log(f"skipping runtime {name}: {reason}")
        else:
            usable.append(RUNTIMES[name])
    if not usable:
        raise ZooError(f"none of the runtimes {names} can run on this machine")
    return usable


def code_version() -> str:
    """The git commit the build ran from, marked -dirty when the tree had local changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha
