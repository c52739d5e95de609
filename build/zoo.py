"""Build the zoo: run each requested variant's recipe, measure, then publish every runtime atomically.

Data flows one way: publish steps return each model's entry and folder (made in the variant's work folder), the
measurement returns new entries with their figures, and only then does the build hand the models that succeeded
to the publication, once; the publication numbers their versions and commits them with the manifest.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from build.card import ModelCard, check_unique
from build.clock import Clock
from build.data import Dataset, load_dataset
from build.errors import ZooError
from build.hardware import Hardware, detect
from build.pipeline import BuildContext, BuildOptions, Outcome, Pipeline, Status, Step, TechniqueStep, VariantState
from build.repository.model_config import model_io
from build.runtimes import RUNTIMES, Runtime, make_runtime
from build.sources import Teacher, load_teacher, preflight
from build.steps.distill import DistillConfig
from build.steps.measure import Made, MeasureSpeed
from build.steps.publish import PublishRuntime
from build.variants import VARIANTS, lineage, students
from serving.manifest import CardRecord, ModelEntry
from serving.provenance import code_version
from serving.publication import Publication, PublicationError

C = TypeVar("C")


@dataclass
class ZooBuild:
    """What a build did for one card: one status record per variant and per (model, variant, runtime), with the
    entry of every model it published, and the final state of each requested variant it built."""

    card: ModelCard
    classes: list[str]
    options: BuildOptions
    provenance: dict
    outcomes: list[Outcome]
    states: dict[str, VariantState] = field(default_factory=dict)

    @property
    def entries(self) -> dict[str, ModelEntry]:
        """Published model -> its manifest entry, measured figures included."""
        return {o.model: o.entry for o in self.outcomes if o.status is Status.OK and o.model and o.entry is not None}

    @property
    def rejected(self) -> dict[str, str]:
        """Variant or model -> why it was left out."""
        return {o.key: o.why for o in self.outcomes if o.status is Status.FAIL}

    @property
    def not_applicable(self) -> dict[str, str]:
        """Variant or model -> why it does not apply (its source, or its runtime)."""
        return {o.key: o.why for o in self.outcomes if o.status is Status.SKIPPED}


@dataclass
class CardInputs:
    """A card with what it was checked against: its data and its loaded source network."""

    card: ModelCard
    data: Dataset
    teacher: Teacher


@dataclass
class CardPlan:
    """Each variant this card's source can make, with its configured steps; the others, as SKIPPED outcomes."""

    recipes: dict[str, list[Step]]
    outcomes: list[Outcome]


def build_zoo(cards: list[ModelCard], repo: Path, variants: list[str], runtimes: list[str],
              options: BuildOptions = BuildOptions(), log=print, data: dict[str, Dataset] | None = None,
              clock: Clock | None = None, left_out: dict[str, str] | None = None,
              by_default: frozenset[str] = frozenset()) -> list[ZooBuild]:
    """Build `variants` for `runtimes` of every card into `repo`, in one publication. Every card, source and
    setting is checked before the first expensive step; a rejected variant is left out; any other failure
    publishes nothing, and models of other cards are never touched. `data`: datasets already loaded, by card
    name (the others are loaded from each card's data). `clock`: where the time of each phase is added up.
    `left_out`: variants not asked for, with why, which the report lists (those the default set leaves out).
    `by_default`: the variants that only the default set asked for (not named): a card that ships no training runs
    leaves their ladder students out (`Variant.ladder`)."""
    unknown = [v for v in variants if v not in VARIANTS] + [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise ZooError(f"unknown variant or runtime {unknown}; "
                       f"variants: {sorted(VARIANTS)}, runtimes: {sorted(RUNTIMES)}")
    check_unique(cards)
    hardware = detect()
    usable = _usable_runtimes(runtimes, hardware, log)
    for card in cards:  # sources are checked before any dataset is decoded
        preflight(card)
    clock = clock or Clock()
    with tempfile.TemporaryDirectory(prefix="tritonzoo-build-") as work:
        with clock.phase("load data and source"):
            inputs = [_load(card, Path(work), (data or {}).get(card.name)) for card in cards]
        try:
            with Publication(repo) as publication:
                return _build_all(inputs, variants, usable, options, publication, Path(work), hardware, log, clock,
                                  left_out or {}, by_default)
        except PublicationError as exc:
            raise ZooError(str(exc)) from exc


def _build_all(inputs: list[CardInputs], variants: list[str], usable: list[Runtime], options: BuildOptions,
               publication: Publication, work: Path, hardware: Hardware, log, clock: Clock,
               left_out: dict[str, str], by_default: frozenset[str]) -> list[ZooBuild]:
    contexts = [_context(i, options, usable, work / i.card.name, hardware, clock) for i in inputs]
    plans = [_plan(ctx, variants, usable, left_out, by_default) for ctx in contexts]
    for ctx, plan in zip(contexts, plans):  # every setting is checked before the first expensive step
        for steps in plan.recipes.values():
            for step in steps:
                step.check(ctx)
    reported = variants + list(left_out)  # what was left out is reported as such
    builds = [_build_card(ctx, plan, reported, log) for ctx, plan in zip(contexts, plans)]
    for build in builds:  # one writer: the models that succeeded, handed over once, with their figures
        build.outcomes = [_published(o, publication) for o in build.outcomes]
        publication.describe(build.card.name, card_record(build))
    return builds


def _published(outcome: Outcome, publication: Publication) -> Outcome:
    """A model made and measured: its folder handed to the publication, its entry with the version it chose."""
    if outcome.status is not Status.OK or outcome.entry is None or outcome.folder is None:
        return outcome
    return replace(outcome, entry=publication.add(outcome.entry, outcome.folder), folder=None)


def _load(card: ModelCard, work: Path, data: Dataset | None) -> CardInputs:
    data = data or load_dataset(card.data, card.input)
    return CardInputs(card, data, load_teacher(card, data, work))


def _context(inputs: CardInputs, options: BuildOptions, runtimes: list[Runtime], workdir: Path, hardware: Hardware,
             clock: Clock) -> BuildContext:
    card, data, teacher = inputs.card, inputs.data, inputs.teacher
    workdir.mkdir(exist_ok=True)
    provenance = {
        "hardware": hardware.summary(),
        "dataset": {"source": data.source, "checksum": data.checksum},
        "teacher": {"source": card.source, "file": card.weights.name if card.weights else Path(card.spec).name,
                    "sha256": teacher.sha256, "test_accuracy": teacher.test_accuracy},
        "code_version": code_version(),
    }
    return BuildContext(data, teacher, options, tuple(runtimes), workdir, provenance, model_io(card.input),
                        hardware=hardware, clock=clock,
                        weights_dir=card.weights.parent if card.kind == "builtin" and card.weights else None)


def _plan(ctx: BuildContext, variants: list[str], runtimes: list[Runtime], left_out: dict[str, str],
          by_default: frozenset[str] = frozenset()) -> CardPlan:
    plan = CardPlan({}, [Outcome(name, Status.SKIPPED, why) for name, why in left_out.items()])
    for name, publish in build_order(variants):
        steps = configured_steps(name, publish, runtimes, ctx.options)
        why = _not_for_source(name, ctx) or _ladder_without_runs(name, ctx.weights_dir is not None, by_default) or \
            next(filter(None, (s.not_applicable(ctx) for s in steps)), None)
        if why:
            plan.outcomes.append(Outcome(name, Status.SKIPPED, why))
        else:
            plan.recipes[name] = steps
    return plan


def _not_for_source(name: str, ctx: BuildContext) -> str | None:
    if not ctx.teacher.is_torch and any(VARIANTS[v].transforms_source for v in lineage(name)):
        return f"needs the PyTorch model; this card's source is ONNX ({Path(ctx.teacher.card.spec).name})"
    return None


def _ladder_without_runs(name: str, ships_runs: bool, by_default: frozenset[str]) -> str | None:
    """Why the default set leaves a ladder student out for a card that ships no training runs (a user's model)."""
    if name in by_default and VARIANTS[name].ladder and not ships_runs:
        return (f"a ladder student: for a card that ships no training runs the default set distils into `distilled` "
                f"alone, since every run is trained in the build; `--variants default,{name}` builds it")
    return None


def _build_card(ctx: BuildContext, plan: CardPlan, variants: list[str], log) -> ZooBuild:
    log(f"model {ctx.name}: {ctx.teacher.card.source}, input {list(ctx.io.input_dims)}, "
        f"{len(ctx.data.classes)} classes")
    built: dict[str, VariantState] = {}
    ended = {o.variant: o for o in plan.outcomes}  # variants not built: how they ended
    outcomes = list(plan.outcomes)
    for name, steps in plan.recipes.items():
        state, records = _build_variant(name, steps, ctx, built, ended, log)
        outcomes += records
        if state is not None:
            built[name] = state
        else:
            ended[name] = records[-1]
    provenance = dict(ctx.provenance)
    made = {o.model: Made(o.entry, o.folder) for o in outcomes
            if o.status is Status.OK and o.model and o.entry is not None and o.folder is not None}
    if ctx.options.measure_speed and made:
        with ctx.clock.phase("measure speed and memory"):
            measurement = MeasureSpeed().run(made, ctx, log)
        outcomes = [replace(o, entry=measurement.entries[o.model]) if o.model in measurement.entries else o
                    for o in outcomes]
        provenance["peaks"] = measurement.peaks
    # Parents built only as sources are not reported; models always are (only requested variants publish).
    outcomes = [o for o in outcomes if o.model or o.variant in variants]
    return ZooBuild(ctx.teacher.card, ctx.data.classes, ctx.options, provenance, outcomes,
                    {n: built[n] for n in variants if n in built})


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


def check_published(builds: list[ZooBuild]) -> None:
    """A run that published nothing for a card has failed: a ZooError with every reason, after the reports are out."""
    empty = [b for b in builds if not b.entries]
    if empty:
        reasons = "; ".join(f"{b.card.name}: " + ("; ".join(f"{k}: {why}" for k, why in b.rejected.items())
                                                 or "no variant was built") for b in empty)
        raise ZooError(f"published no model for {', '.join(b.card.name for b in empty)} ({reasons})")


def configured_steps(name: str, publish: bool, runtimes: list[Runtime], options: BuildOptions) -> list[Step]:
    """The variant's recipe with the build's technique configs applied, then one publish step per runtime."""
    variant = VARIANTS[name]
    steps = [step.tuned(options) for step in variant.steps]
    return steps + ([PublishRuntime(r, variant) for r in runtimes] if publish else [])


def step_config(variant: str, kind: type[C], options: BuildOptions) -> C:
    """The config of technique `kind` that `variant`'s recipe runs with in a build with these options."""
    configs = [s.config for s in configured_steps(variant, False, [], options) if isinstance(s, TechniqueStep)]
    return next(c for c in configs if isinstance(c, kind))


def student_config(options: BuildOptions) -> DistillConfig:
    """What `invoke distill` trains: the ladder's recipe for the student the options name (its epochs), with what
    `--set` names on top, so that it ships the very run the build loads; a student off the ladder, as set."""
    wanted = options.config(DistillConfig).student
    variant = next((name for name, c in students().items() if c.student == wanted), None)
    return step_config(variant, DistillConfig, options) if variant else options.config(DistillConfig)


def _build_variant(name: str, steps: list[Step], ctx: BuildContext, built: dict[str, VariantState],
                   ended: dict[str, Outcome], log) -> tuple[VariantState | None, list[Outcome]]:
    """The variant's final state (None when it failed or was left out) and its outcomes, its own last; a variant
    not built publishes no model, and ends its children the same way."""
    variant = VARIANTS[name]
    if variant.parent in ended:
        parent = ended[variant.parent]
        why = f"its parent {variant.parent} was " + ("rejected" if parent.status is Status.FAIL else "not built")
        log(f"  [{name}] skipped: {why}")
        return None, [Outcome(name, parent.status, why)]
    workdir = ctx.workdir / name
    workdir.mkdir()
    start = VariantState(name=name, parent=variant.parent, tolerance=variant.tolerance, workdir=workdir,
                         source=built.get(variant.parent))
    state, outcomes = Pipeline(steps).run(start, ctx, log)
    last = outcomes[-1]  # a model that failed, or whose variant failed, is never handed to the publication
    if last.status is not Status.OK:
        log(f"  [{name}] " + ("rejected, not published" if last.status is Status.FAIL else "not built") +
            f": {last.why}")
        return None, [o for o in outcomes if o.status is not Status.OK]
    return state, outcomes


def _usable_runtimes(names: list[str], hardware: Hardware, log) -> list[Runtime]:
    usable = []
    for name in names:  # this build's own instances: what a runtime learns while building ends with the build
        runtime = make_runtime(name)
        reason = runtime.unavailable_reason(hardware)
        if reason:
            log(f"skipping runtime {name}: {reason}")
        else:
            usable.append(runtime)
    if not usable:
        raise ZooError(f"none of the runtimes {names} can run on this machine")
    return usable
