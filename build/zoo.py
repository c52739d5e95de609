"""Build the zoo: run each requested variant's recipe, measure, then publish every runtime atomically."""

from __future__ import annotations

import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from build.card import ModelCard, check_unique
from build.data import Dataset, load_dataset
from build.errors import VariantRejected, ZooError
from build.hardware import Hardware, detect
from build.measure import SpeedPlan, measure_speeds, peak_memory_mb
from build.peak import measure as measure_peaks
from build.pipeline import BuildContext, BuildOptions, Pipeline, Step, VariantState
from build.repository.model_config import TensorIO
from build.repository.publish import Publication
from build.runtimes import RUNTIMES, Runtime
from build.sources import Teacher, load_teacher, preflight
from build.steps.publish import PublishRuntime, model_name
from build.variants import VARIANTS
from serving.manifest import CardRecord

BASELINE = "fp32"  # every speedup is a ratio to this variant on ONNX Runtime, measured in the same run


@dataclass
class ZooBuild:
    """What a build did for one card: the variants built, those rejected and why, and the entries it published."""

    states: dict[str, VariantState]
    rejected: dict[str, str]
    entries: dict[str, dict]
    options: BuildOptions
    provenance: dict = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)  # model or variant -> why it does not apply
    card: ModelCard | None = None
    classes: list[str] = field(default_factory=list)


@dataclass
class CardInputs:
    """A card with what it was checked against: its data and its loaded source network."""

    card: ModelCard
    data: Dataset
    teacher: Teacher


def build_zoo(cards: list[ModelCard], repo: Path, variants: list[str], runtimes: list[str],
              options: BuildOptions = BuildOptions(), log=print, data: dict[str, Dataset] | None = None
              ) -> list[ZooBuild]:
    """Build `variants` for `runtimes` of every card into `repo`, in one publication. Every card, source and
    setting is checked before the first expensive step; a rejected variant is left out; any other failure
    publishes nothing, and models of other cards are never touched. `data`: datasets already loaded, by card
    name (the others are loaded from each card's data)."""
    unknown = [v for v in variants if v not in VARIANTS] + [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise ZooError(f"unknown variant or runtime {unknown}; "
                       f"variants: {sorted(VARIANTS)}, runtimes: {sorted(RUNTIMES)}")
    check_unique(cards)
    hardware = detect()
    usable = _usable_runtimes(runtimes, hardware, log)
    for card in cards:  # sources are checked before any dataset is decoded
        preflight(card)
    with tempfile.TemporaryDirectory(prefix="tritonzoo-build-") as work:
        inputs = [_load(card, Path(work), (data or {}).get(card.name)) for card in cards]
        with Publication(repo) as publication:
            return _build_all(inputs, variants, usable, options, publication, Path(work), hardware, log)


def _build_all(inputs: list[CardInputs], variants: list[str], usable: list[Runtime], options: BuildOptions,
               publication: Publication, work: Path, hardware: Hardware, log) -> list[ZooBuild]:
    contexts = [_context(i, options, usable, publication, work / i.card.name, hardware) for i in inputs]
    plans = [_plan(ctx, variants, usable) for ctx in contexts]
    for ctx, plan in zip(contexts, plans):  # every setting is checked before the first expensive step
        for _, steps in plan:
            for step in steps:
                step.check(ctx)
    builds = [_build_card(ctx, plan, variants, log) for ctx, plan in zip(contexts, plans)]
    for build in builds:
        publication.describe(build.card.name, card_record(build))
    return builds


def _load(card: ModelCard, work: Path, data: Dataset | None) -> CardInputs:
    data = data or load_dataset(card.data, card.input)
    return CardInputs(card, data, load_teacher(card, data, work))


def _context(inputs: CardInputs, options: BuildOptions, runtimes: list[Runtime], publication: Publication,
             workdir: Path, hardware: Hardware) -> BuildContext:
    card, data, teacher = inputs.card, inputs.data, inputs.teacher
    workdir.mkdir(exist_ok=True)
    provenance = {
        "hardware": hardware.summary(),
        "dataset": {"source": data.source, "checksum": data.checksum},
        "teacher": {"source": card.source, "file": card.weights.name if card.weights else Path(card.spec).name,
                    "sha256": teacher.sha256, "test_accuracy": teacher.test_accuracy},
        "code_version": code_version(),
    }
    io = TensorIO(input_dims=card.input, num_classes=len(data.classes))
    return BuildContext(data, teacher, options, runtimes, publication, workdir, provenance, io, hardware=hardware,
                        weights_dir=card.weights.parent if card.kind == "builtin" and card.weights else None)


def _plan(ctx: BuildContext, variants: list[str], runtimes: list[Runtime]) -> list[tuple[str, list[Step]]]:
    """The variants this card's source can make, each with its steps; the others are recorded as not applicable."""
    plan = []
    for name, publish in build_order(variants):
        why = _not_for_source(name, ctx)
        if why:
            ctx.not_applicable[name] = why
            continue
        plan.append((name, _steps(name, publish, runtimes)))
    return plan


def _not_for_source(name: str, ctx: BuildContext) -> str | None:
    lineage = [name]
    while lineage[-1] in VARIANTS:
        lineage.append(VARIANTS[lineage[-1]].parent)
    if not ctx.teacher.is_torch and any(VARIANTS[v].transforms_source for v in lineage if v in VARIANTS):
        return f"needs the PyTorch model; this card's source is ONNX ({Path(ctx.teacher.card.spec).name})"
    return None


def _build_card(ctx: BuildContext, plan: list[tuple[str, list[Step]]], variants: list[str], log) -> ZooBuild:
    log(f"model {ctx.name}: {ctx.teacher.card.source}, input {list(ctx.io.input_dims)}, "
        f"{len(ctx.data.classes)} classes")
    for name, steps in plan:
        _build_or_reject(name, steps, ctx, log)
    entries = {n: e for n, e in ctx.publication.entries.items() if e["family"] == ctx.name}
    if ctx.options.measure_speed and entries:
        _measure(ctx, entries, log)
    rejected = {n: r for n, r in ctx.rejected.items() if n in variants or n not in VARIANTS}  # or a model
    not_applicable = {n: r for n, r in ctx.not_applicable.items() if n not in VARIANTS or n in variants}
    return ZooBuild({n: ctx.done[n] for n in variants if n in ctx.done}, rejected, entries, ctx.options,
                    ctx.provenance, not_applicable, ctx.teacher.card, ctx.data.classes)


def card_record(build: ZooBuild) -> CardRecord:
    card = build.card
    return CardRecord(name=card.name, source=card.source, input=card.input, mean=card.mean, std=card.std,
                      classes=tuple(build.classes), data=build.provenance["dataset"]["source"],
                      data_checksum=build.provenance["dataset"]["checksum"], normalized=card.normalize)


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
            ctx.publication.discard(model_name(ctx.name, name, runtime.name))
        ctx.rejected[name] = str(exc)
        log(f"  [{name}] rejected, not published: {exc}")


def _measure(ctx: BuildContext, entries: dict[str, dict], log) -> None:
    """Speed of the card's staged models in one interleaved run, then each one's peak memory."""
    runners = {name: RUNTIMES[e["runtime"]].runner(_version_dir(ctx, name), ctx.options.threads)
               for name, e in entries.items()}
    quick = ctx.options.profile == "quick"
    plan = SpeedPlan(rounds=2, latency_iters=20, throughput_batches=1) if quick else SpeedPlan()
    log(f"measuring {len(runners)} model(s), interleaved, {plan.rounds} rounds")
    # This CPU's peak MAC rates, the report's efficiency denominators: before and after the models' timing.
    peaks = partial(measure_peaks, ctx.options.threads, ctx.hardware.cpu_flags, 0.1 if quick else 0.5)
    before = peaks()
    speeds = measure_speeds(runners, ctx.data.test.images, plan)
    for name, run in runners.items():  # a GPU runner also timed itself on the device (CUDA events), optional
        speeds[name].update(getattr(run, "device_speed", dict)())
    ctx.provenance["peaks"] = before.merged(peaks()).summary()
    baseline = speeds.get(model_name(ctx.name, BASELINE, "onnxruntime"))
    # Each memory peak is a process of its own, so they run side by side, one per thread the build may use.
    with ThreadPoolExecutor(ctx.options.threads) as pool:
        memory = dict(zip(speeds, pool.map(
            lambda n: peak_memory_mb(entries[n]["runtime"], _version_dir(ctx, n), ctx.options.threads,
                                     ctx.io.input_dims), speeds)))
    for name, speed in speeds.items():
        if baseline:
            speed["speedup_b1"] = round(baseline["latency_b1_p50_ms"] / speed["latency_b1_p50_ms"], 3)
            speed["speedup_b64"] = round(speed["throughput_b64_ips"] / baseline["throughput_b64_ips"], 3)
            if speed["speedup_b64"] < 1 and entries[name]["variant"] != BASELINE:
                entries[name]["flags"]["slower_than_fp32"] = (
                    f"{speed['speedup_b64']:.2f}x the throughput of {BASELINE} at batch 64 on this machine")
        entries[name]["speed"] = speed
        entries[name]["memory"] = {**memory[name], **getattr(runners[name], "device_memory", dict)()}


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
