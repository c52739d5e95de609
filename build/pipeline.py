"""Pipelines of small steps, in the manner of Triton Model Navigator: one per variant, then publish.

A step reads the variant's state and the build's read-only context and returns a `StepResult` (Navigator's
`CommandOutput`): its status (OK, FAIL, SKIPPED), why, and what it produced. The pipeline merges what each
step produced into the next state and keeps one `Outcome` per variant and per (model, variant, runtime);
nothing is written into shared records.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from build.clock import Clock
from build.data import Dataset, ImageSet
from build.errors import RunNotShipped, VariantRejected
from build.hardware import Hardware, detect
from build.models import Classifier, load_weights
from build.runtimes import Runtime
from build.shipped import Trainer, load_or_train, ship, shipped_path
from build.sources import Teacher
from build.teacher_logits import teacher_logits
from build.verification import Tolerance
from serving.manifest import ModelEntry, ModelIO

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

C = TypeVar("C")
D = TypeVar("D", bound="DataclassInstance")  # a technique's config
EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class BuildOptions:
    verify_images: int = 1000
    eval_images: int | None = None  # None: the whole test set
    # Accuracy is also recorded on this prefix of the test images, which `invoke zoo` classifies through Triton. The
    # served models run the same files with the same ONNX Runtime and OpenVINO packages (Triton's Python backend), so
    # the check is of the serving path (request, batching, preprocessing in the graph, response): 500 images show
    # any fault there, and their accuracy must equal the build's.
    served_check_images: int = 500
    served_latency_requests: int = 100  # batch-1 requests per model that `invoke zoo` times through the server
    measure_speed: bool = True
    threads: int = 2
    # A derived variant more than this many points of test top-1 below its parent is broken, not a trade-off: it is
    # rejected. The source's own fp32 model is the user's model and is never refused for its accuracy. None: no floor.
    max_drop_points: float | None = None
    train_images: int | None = None  # None: the whole training split
    max_train_steps: int | None = None  # caps every fine-tuning and distillation run
    # The compute each training run may take, in TMAC, where the card ships no runs (see `BuildContext.run_steps`);
    # None: the recipes' steps. The default profile gives DEFAULT_TRAIN_BUDGET_TMACS.
    train_budget_tmacs: float | None = None
    # save each training run this build makes beside the teacher, keyed, so that later builds load it (`--ship`)
    ship_runs: bool = False
    # A run that a builtin card's weights/ folder should ship but does not (another teacher, other settings): train
    # it in the build (`--train`, or `--ship`, which keeps it), or leave its variant out, saying so. Cards that ship
    # no runs (a user's model) always train theirs.
    train_runs: bool = False
    profile: str = "default"
    # Technique configs (Int8Config, PruneConfig, ...) that the profile and `--set` give, at most one per type:
    # each is applied to the steps of its technique in every recipe when the build plans (see `Step.tuned`).
    configs: tuple[Any, ...] = ()
    # The (config type, field) pairs the user set with `--set`: these win over a recipe's own choices.
    user_set: frozenset[tuple[type, str]] = frozenset()

    def config(self, kind: type[C]) -> C:
        """The config of this type the build gives, else the technique's defaults (for `invoke distill`/`prune`)."""
        return next((c for c in self.configs if type(c) is kind), None) or kind()

    def train_steps(self, steps: int, train_images: int | None = None) -> int:
        """A recipe's step count, capped by `max_train_steps`. With `train_images`, a count of fine-tuning steps is
        first scaled to that training split (see `scaled_steps`); epoch-based counts (distillation) are not."""
        if train_images is not None:
            steps = scaled_steps(steps, train_images)
        return steps if self.max_train_steps is None else min(steps, self.max_train_steps)


# The recipes count their fine-tuning steps (pruning, sparsity, QAT) for a training split of this size: CIFAR-10's
# 50,000 images less the validation split, which they were chosen on.
RECIPE_TRAIN_IMAGES = 45_000


def scaled_steps(steps: int, train_images: int) -> int:
    """As many epochs as `steps` are on the recipes' split, on a smaller one (a user's 1,000 images take 1/45 of
    the steps, at least one); a larger split keeps the recipe's steps."""
    return max(1, math.ceil(steps * min(1.0, train_images / RECIPE_TRAIN_IMAGES)))


# The default profile's compute per training run for a card that ships no runs (issue 32): a user's first build of a
# 224-px ResNet-18 should take under 15 minutes on 2 CPU cores, and its full recipes would train for 25+. 8 TMAC is
# about a minute of those cores (~150 GMAC/s of training, measured at 32 px), so the six runs of the default variants
# take about 6 minutes and leave the rest for export, verification and measurement.
DEFAULT_TRAIN_BUDGET_TMACS = 8.0
# A training step costs about three forward passes of its batch: the forward, and a backward of twice its MACs.
TRAIN_MACS_PER_FORWARD_MAC = 3


def budgeted_steps(schedule: Sequence[int], batch_size: int, forward_macs: int | Sequence[int],
                   budget_tmacs: float) -> list[int]:
    """`schedule` (steps per phase) as is when the sum of steps x batch x 3 x `forward_macs` (one figure, or one per
    phase: a network that shrinks as it is pruned) fits in the budget, else every phase cut in the same proportion
    to fit, each to at least one step (the phases are the recipe's shape; that step may go over a budget too small
    for one step per phase)."""
    macs = [forward_macs] * len(schedule) if isinstance(forward_macs, int) else list(forward_macs)
    cost = TRAIN_MACS_PER_FORWARD_MAC * batch_size * sum(n * m for n, m in zip(schedule, macs))
    share = budget_tmacs * 1e12 / cost
    if share >= 1:
        return list(schedule)
    return [max(1, math.floor(n * share)) for n in schedule]


@dataclass(frozen=True)
class RunSteps:
    """A training run's steps per phase: the recipe's for this split, and those it trains (cut to a budget)."""

    recipe: tuple[int, ...]
    steps: tuple[int, ...]
    budget_tmacs: float | None = None  # the budget that applied to the run, if any

    def record(self) -> dict[str, Any]:
        """What the run's metrics note of its budget: nothing where none applied, so shipped runs read as before."""
        if self.budget_tmacs is None:
            return {}
        return {"train_budget": {"tmacs": self.budget_tmacs, "recipe_steps": sum(self.recipe),
                                 "steps": sum(self.steps)}}


@dataclass(frozen=True)
class BuildContext:
    """What every step may read, and nothing a step writes: the card's data and teacher, options, this build's
    runtimes and the provenance every entry records. No publication: steps return what they made, and the build
    hands the models that succeeded to the publication once (build/zoo.py).

    Values derived from these fields are computed at most once, on first use (`cached_property`): the teacher's
    soft targets, its test top-1 and its MACs. They are functions of the frozen fields, not state a step writes."""

    data: Dataset
    teacher: Teacher
    options: BuildOptions
    runtimes: Sequence[Runtime]
    workdir: Path
    provenance: Mapping[str, Any]
    io: ModelIO
    hardware: Hardware = field(default_factory=detect)
    weights_dir: Path | None = None  # the teacher's folder, where shipped training runs are looked up
    clock: Clock = field(default_factory=Clock, repr=False, compare=False)  # the pipeline times each step into it

    @property
    def name(self) -> str:
        """The card's name: the prefix of every model this build publishes."""
        return self.teacher.card.name

    @property
    def verify_set(self) -> np.ndarray:
        return self.data.test.images[: self.options.verify_images]

    @property
    def test_set(self) -> ImageSet:
        n = self.options.eval_images
        return self.data.test if n is None else self.data.test.head(n)

    @property
    def train_set(self) -> ImageSet:
        n = self.options.train_images
        return self.data.train if n is None else self.data.train.head(n)

    @property
    def train_budget_tmacs(self) -> float | None:
        """The options' budget per training run where the card ships no runs (no `weights_dir`: a user's model,
        whose build trains them all); none for a builtin card, so its runs keep the keys of the files it ships."""
        return self.options.train_budget_tmacs if self.weights_dir is None else None

    def run_steps(self, recipe: Sequence[int], batch_size: int,
                  forward_macs: Callable[[], int | Sequence[int]]) -> RunSteps:
        """The steps per phase of a run whose recipe (as `BuildOptions.train_steps` gives it) is `recipe`, of a
        network of `forward_macs()` per image (counted only where a budget applies), within the budget. The steps
        key the run, so a budgeted run is as deterministic and resumable as any other."""
        budget = self.train_budget_tmacs
        if budget is None:
            return RunSteps(tuple(recipe), tuple(recipe))
        batch = min(batch_size, len(self.train_set))  # as `fit` draws them from a small split
        return RunSteps(tuple(recipe), tuple(budgeted_steps(recipe, batch, forward_macs(), budget)), budget)

    def shipped(self, stem: str, key: str, wanted: bool) -> Path | None:
        """Where `invoke distill` or `invoke prune` ships this run's result, when the build should look for it."""
        return shipped_path(self.weights_dir, stem, key) if wanted and self.weights_dir else None

    def shipped_or_trained(self, stem: str, key: str, wanted: bool, train: Trainer,
                           meta: Mapping[str, Any]) -> tuple[Classifier, dict, dict]:
        """The run's shipped result when the teacher's folder has one, else a fresh run: the model, its record and
        where it came from. With `ship_runs`, a fresh run is saved there under its key, with `meta` and its accuracy."""
        path = self.shipped(stem, key, wanted)
        if path is not None and not path.exists() and not (self.options.train_runs or self.options.ship_runs):
            raise RunNotShipped(
                f"{path.parent.name}/ ships no run {path.name} for this teacher, its classes and these settings; "
                "--train trains it in the build (slow on a CPU), or ship it once with `invoke distill`, "
                "`invoke prune` or `invoke build --ship`")
        start = time.perf_counter()
        model, record, origin = load_or_train(path, self.teacher.card.preprocess, train)
        if not origin.get("trained_in_build"):
            return model, record, origin
        origin = {**origin, "train_seconds": round(time.perf_counter() - start)}
        if self.options.ship_runs and self.weights_dir:
            target = shipped_path(self.weights_dir, stem, key)
            ship(model, target, self.data, {"arch": model.arch, **meta, **record, "run_key": key,
                                            "teacher_sha256": self.teacher.sha256, "train_images": len(self.train_set),
                                            "train_seconds": origin["train_seconds"]})
            # what follows starts from the shipped file, as a later build will, so their keys agree
            model = load_weights(target, self.teacher.card.preprocess)[0]
            origin = {**origin, "shipped_to": target.name}
        return model, record, origin

    def soft_targets(self) -> np.ndarray:
        """The teacher's logits on `train_set`: computed once, and cached on disk across builds."""
        return self._soft_targets

    @cached_property
    def _soft_targets(self) -> np.ndarray:
        module = self.teacher.module  # a torch teacher, else its ONNX file run by ONNX Runtime
        source = module if module is not None else self.teacher.runner(self.options.threads)
        return teacher_logits(source, self.train_set.images, self.teacher.sha256, self.data.checksum)

    @cached_property
    def teacher_macs(self) -> int | None:
        """The source network's MACs (None for an ONNX source, whose MACs are not counted), counted once."""
        from build.complexity import macs_and_params

        module = self.teacher.module
        return macs_and_params(module)[0] if module is not None else None

    def parent_top1(self, state: VariantState) -> float | None:
        """Test top-1 of what `state` was made from: its parent variant's own file (None when that was not
        published), or the source model itself: its checkpoint's record, else measured once on the same images."""
        if state.source is not None:
            return state.source.reference_top1
        if self.options.eval_images is None and self.teacher.test_accuracy is not None:
            return self.teacher.test_accuracy  # what its checkpoint records on the whole test set: not run again
        return self._teacher_top1

    @cached_property
    def _teacher_top1(self) -> float:
        """The source model's top-1 on `test_set`, measured once."""
        from build.evaluate import accuracy, torch_logits

        module, images = self.teacher.module, self.test_set.images
        logits = torch_logits(module, images) if module is not None else \
            self.teacher.runner(self.options.threads)(images)
        return accuracy(logits, self.test_set.labels)


class Status(Enum):
    OK = "OK"
    FAIL = "FAIL"
    SKIPPED = "SKIPPED"


@dataclass(frozen=True)
class Published:
    """The one runtime's model a publish step is about; when it was made, its manifest entry and its model folder
    (config.pbtxt, labels, one version folder), in the variant's own work folder until the build publishes it."""

    model: str
    runtime: str
    entry: ModelEntry | None = None
    folder: Path | None = None


@dataclass(frozen=True)
class StepResult:
    """What one step did: its status, why (FAIL, SKIPPED), and what it produced."""

    status: Status = Status.OK
    why: str = ""  # why it failed or was skipped; for OK, a note the build log shows (e.g. a size it adapted)
    produced: Mapping[str, Any] = field(default_factory=dict)  # VariantState fields it sets: model, onnx_path...
    metrics: Mapping[str, Any] = field(default_factory=dict)  # merged into the variant's metrics
    published: Published | None = None  # a publish step's model: its FAIL leaves out that model only
    ends: bool = False  # a SKIPPED that ends the variant: there is nothing to build it from (see RunNotShipped)

    @classmethod
    def ok(cls, metrics: Mapping[str, Any] = EMPTY, note: str = "", **produced: Any) -> StepResult:
        return cls(Status.OK, note, produced=produced, metrics=metrics)

    @classmethod
    def failed(cls, why: str) -> StepResult:
        """The variant fails: it and what derives from it are not published."""
        return cls(Status.FAIL, why)

    @classmethod
    def skipped(cls, why: str) -> StepResult:
        return cls(Status.SKIPPED, why)


@dataclass(frozen=True)
class Outcome:
    """One status record: of a whole variant (model None), or of one runtime's model of it."""

    variant: str
    status: Status
    why: str = ""
    model: str | None = None
    runtime: str | None = None
    entry: ModelEntry | None = None  # a made model's manifest entry
    folder: Path | None = None  # a made model's folder, for the publication

    @property
    def key(self) -> str:
        """The name the report lists it under: the model, or the variant when it concerns the whole variant."""
        return self.model or self.variant


@dataclass(frozen=True, eq=False)  # compared by identity: it holds a network and arrays
class VariantState:
    """One variant as it moves through its steps: each state is the last one plus what a step produced."""

    name: str
    parent: str
    tolerance: Tolerance
    workdir: Path
    source: VariantState | None = None  # the parent variant's finished state, when the variant starts from one
    model: Classifier | None = None
    onnx_path: Path | None = None
    reference_logits: np.ndarray | None = None
    recipe: tuple[str, ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict)
    reference_top1: float | None = None  # test top-1 of the variant's own file (the reference runtime's model)

    def advanced(self, step: str, result: StepResult) -> VariantState:
        return replace(self, **result.produced, recipe=(*self.recipe, step), metrics={**self.metrics, **result.metrics})


def keep_own(own: D, given: D, user_set: Collection[str] = ()) -> D:
    """`given` (the build's config for a technique) with the fields a recipe set away from the technique's defaults
    kept: a variant's own choice (its student family, its epochs) wins over a profile's setting, but not over a field
    the user set by name (`user_set`, from `--set`): a setting asked for is never silently dropped."""
    default = type(own)()
    mine = {f.name: getattr(own, f.name) for f in fields(own)
            if getattr(own, f.name) != getattr(default, f.name) and f.name not in user_set}
    return replace(given, **mine)


class Step(ABC):
    name: str

    def tuned(self, options: BuildOptions) -> Step:
        """This step with the build's config for its technique applied; a step without a config is as it is."""
        return self

    def check(self, ctx: BuildContext) -> None:  # noqa: B027 - most steps have nothing to check
        """Refuse bad settings before any step of the build runs; raise ZooError."""

    def not_applicable(self, ctx: BuildContext) -> str | None:
        """Why this step cannot make anything of this card (its variant is then SKIPPED, with the reason), if so."""
        return None

    @abstractmethod
    def run(self, state: VariantState, ctx: BuildContext) -> StepResult:
        """What the step made of the variant; raise ZooError to fail the whole build."""


class TechniqueStep(Step):
    """A step of one technique holding its config, as in torchao: the settings travel with the transform, so two
    variants can carry two settings. Subclasses are frozen dataclasses with a `config` field."""

    config: Any

    def tuned(self, options: BuildOptions) -> Step:
        kind = type(self.config)
        given = next((c for c in options.configs if type(c) is kind), None)
        if given is None:
            return self
        user_set = [name for k, name in options.user_set if k is kind]
        return replace(self, config=keep_own(self.config, given, user_set))  # type: ignore[type-var]


class Pipeline:
    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = steps

    def run(self, state: VariantState, ctx: BuildContext,
            log: Callable[[str], object] = print) -> tuple[VariantState, list[Outcome]]:
        """The variant's final state and its outcomes: one per model a publish step made or left out, then the
        variant's own, last. A FAIL of a publish step leaves out its model; any other FAIL ends the variant."""
        outcomes = []
        for step in self.steps:
            start = time.perf_counter()
            with ctx.clock.phase(step.name.replace(":", " ")):  # publish:openvino -> "publish openvino"
                result = _run(step, state, ctx)
            state = state.advanced(step.name, result)
            if result.published:
                outcomes.append(Outcome(state.name, result.status, result.why, **vars(result.published)))
            elif result.status is Status.FAIL or result.ends:
                return state, [*outcomes, Outcome(state.name, result.status, result.why)]
            suffix = f" {result.status.value}: {result.why}" if result.status is not Status.OK else \
                (f": {result.why}" if result.why else "")
            log(f"  [{state.name}] {step.name} ({time.perf_counter() - start:.1f}s){suffix}")
        return state, [*outcomes, Outcome(state.name, Status.OK)]


def _run(step: Step, state: VariantState, ctx: BuildContext) -> StepResult:
    """A VariantRejected raised deep inside a step (e.g. by verification) is that step's FAIL; a RunNotShipped
    leaves the variant out as SKIPPED."""
    try:
        return step.run(state, ctx)
    except RunNotShipped as exc:
        return StepResult(Status.SKIPPED, str(exc), ends=True)
    except VariantRejected as exc:
        return StepResult.failed(str(exc))
