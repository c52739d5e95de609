"""Structured channel pruning with Torch-Pruning: iterative, with fine-tuning after every step.

Torch-Pruning traces the network's dependency graph, so channels joined by a residual addition
are removed together and the result stays a dense, smaller network that every runtime speeds up.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch_pruning as tp
from torch import nn
from torch.nn import functional as F

from build.card import ModelCard
from build.complexity import macs_and_params
from build.data import Dataset, ImageSet
from build.data.dataset import sha256_file
from build.errors import ZooError
from build.fit import FitConfig, fit, run_seconds
from build.models import Classifier, load_weights
from build.pipeline import BuildContext, BuildOptions, StepResult, TechniqueStep, VariantState
from build.shipped import model_sha256, origin_note, run_folder, run_key, ship, shipped_path, shipped_teacher
from build.teacher_logits import teacher_logits

IMPORTANCES = {
    "l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
    "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
    "taylor": lambda: tp.importance.GroupTaylorImportance(),  # first-order: |weight * gradient|
}


@dataclass(frozen=True)
class PruneConfig:
    macs_reduction: float = 2.5  # prune until the network needs this many times fewer MACs...
    ratio: float | None = None  # ...or, when set, remove this fraction of every layer's channels
    importance: str = "l2"
    round_to: int = 16  # channel counts stay multiples of this: ORT's conv kernels are blocked for such widths
    iterations: int = 3
    finetune_steps: int = 150  # after each pruning step
    final_steps: int = 450  # after the last one (the `pruned` variant fine-tunes longer: its recipe says so)
    lr: float = 0.04
    alpha: float = 0.5  # weight of the teacher's soft targets; 0.5 and lr 0.04 won on validation (README)
    shipped: bool = True  # load the network `invoke prune` shipped for this very run, when there is one

    def validate(self) -> None:
        if self.importance not in IMPORTANCES:
            raise ZooError(f"unknown pruning importance '{self.importance}'; choose one of {sorted(IMPORTANCES)}")
        if self.ratio is not None and not 0 < self.ratio < 1:
            raise ZooError(f"pruning ratio must lie in (0, 1), got {self.ratio}")
        if self.ratio is None and self.macs_reduction <= 1:
            raise ZooError(f"a MACs reduction target must exceed 1, got {self.macs_reduction}")
        if self.iterations < 1 or self.round_to < 1:
            raise ZooError(f"pruning needs iterations >= 1 and round_to >= 1, got {self.iterations}, {self.round_to}")

    def schedule(self) -> list[int]:
        """Fine-tuning steps after each pruning step."""
        return [self.finetune_steps] * (self.iterations - 1) + [self.final_steps]


def _classifier_head(model: nn.Module) -> nn.Linear:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def effective_round_to(model: nn.Module, round_to: int) -> int | None:
    """Rounding to 16 would empty a 16-channel stage (ResNet-20's first): small networks are not rounded."""
    narrowest = min(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d))
    return round_to if narrowest >= 4 * round_to else None


def _pruner(model: Classifier, ratio: float, iterations: int, importance: str,
            round_to: int | None) -> tp.pruner.MetaPruner:
    return tp.pruner.MetaPruner(model, model.example(), importance=IMPORTANCES[importance](),
                                iterative_steps=iterations, pruning_ratio=ratio,
                                ignored_layers=[_classifier_head(model)], round_to=round_to)


def ratio_for_macs(model: Classifier, reduction: float, round_to: int | None, iterations: int,
                   tol: float = 0.01) -> float:
    """The channel ratio that cuts MACs by `reduction`, by bisection over dry runs on copies. Each dry run takes all
    `iterations` steps, as the run will: channels are rounded at every step, so one big step prunes differently."""
    base = macs_and_params(model)[0]
    low, high = 0.0, 0.95
    while high - low > tol:
        mid = (low + high) / 2
        trial = copy.deepcopy(model)
        pruner = _pruner(trial, mid, iterations, "l1", round_to)
        for _ in range(iterations):
            pruner.step()
        low, high = (mid, high) if base / macs_and_params(trial)[0] < reduction else (low, mid)
    return high


def accumulate_gradients(model: nn.Module, data: ImageSet, batches: int = 8, batch_size: int = 64) -> None:
    """Gradients of the loss on a few training batches, which Taylor importance reads."""
    model.eval().zero_grad()
    for i in range(batches):
        x = torch.from_numpy(data.images[i * batch_size:(i + 1) * batch_size])
        y = torch.from_numpy(data.labels[i * batch_size:(i + 1) * batch_size]).long()
        F.cross_entropy(model(x), y).backward()


ChannelPlan = tuple[float, int | None]  # the share of channels the run removes, and the rounding of their counts


def channel_plan(model: Classifier, cfg: PruneConfig) -> ChannelPlan:
    """What a pruning run of `cfg` removes from `model`: its ratio (searched for by dry runs when `cfg` names a MACs
    reduction, the costly part) and the rounding of the channel counts."""
    round_to = effective_round_to(model, cfg.round_to)
    ratio = cfg.ratio if cfg.ratio is not None else ratio_for_macs(model, cfg.macs_reduction, round_to, cfg.iterations)
    return ratio, round_to


def phase_macs(source: Classifier, cfg: PruneConfig, plan: ChannelPlan | None = None) -> list[int]:
    """The MACs per image of the network each fine-tuning phase trains: `source` after 1, 2, ... pruning steps.
    Every layer loses the same share of its channels whatever the importance, so magnitude importance counts for
    all (Taylor's would need gradients)."""
    model = copy.deepcopy(source)
    ratio, round_to = plan or channel_plan(model, cfg)
    pruner = _pruner(model, ratio, cfg.iterations, "l2", round_to)
    macs = []
    for _ in range(cfg.iterations):
        pruner.step()
        macs.append(macs_and_params(model)[0])
    return macs


def prune(source: Classifier, cfg: PruneConfig, train: ImageSet, soft_targets: np.ndarray, schedule: list[int],
          desc: str, run_dir: Path | None = None, val: ImageSet | None = None,
          plan: ChannelPlan | None = None) -> tuple[Classifier, dict]:
    """A pruned copy of `source`, fine-tuned for `schedule[i]` steps after pruning step i (one per `cfg.iterations`),
    and the run's record. With `run_dir`, each fine-tuning resumes from its checkpoint there (pruning is
    deterministic, so a restarted run prunes the same channels of the same weights again). `plan`: `channel_plan`'s
    answer, when the caller has it already."""
    model = copy.deepcopy(source)
    macs_before, params_before = macs_and_params(model)
    ratio, round_to = plan or channel_plan(model, cfg)
    pruner = _pruner(model, ratio, len(schedule), cfg.importance, round_to)
    loss = float("nan")
    for i, steps in enumerate(schedule):
        if cfg.importance == "taylor":
            accumulate_gradients(model, train)
        pruner.step()
        model.zero_grad(set_to_none=True)
        loss = fit(model, train, soft_targets, FitConfig(steps=steps, lr=cfg.lr, alpha=cfg.alpha),
                   f"{desc}: prune {i + 1}/{len(schedule)}, fine-tune", run_dir and run_dir / f"stage{i + 1}", val)
    macs, params = macs_and_params(model)
    return model, {"pruning": {
        "method": "structured", "importance": cfg.importance, "channel_ratio": round(ratio, 4), "round_to": round_to,
        "iterations": len(schedule), "finetune_steps": sum(schedule), "final_loss": round(loss, 4),
        "macs_before": macs_before, "macs_after": macs, "macs_reduction": round(macs_before / macs, 3),
        "params_before": params_before, "params_after": params,
    }}


def pruning_run(cfg: PruneConfig, source_sha256: str, teacher_sha256: str, classes: Sequence[str], train_images: int,
                schedule: list[int]) -> str:
    """The run's key: its source network, the teacher whose soft targets it fine-tunes on, the classes, the training
    split's size and the settings (see `run_key`)."""
    return run_key(cfg, source=source_sha256, teacher=teacher_sha256, classes=list(classes), train_images=train_images,
                   steps=schedule)


def pruned_parent(variant: str) -> str:
    """The parent `variant` prunes: the teacher or a student; a ZooError for any other variant."""
    from build.variants import VARIANTS, students  # they list this step in their recipes: imported late

    pruned = [n for n, v in VARIANTS.items() if any(isinstance(s, StructuredPrune) for s in v.steps)]
    parent = VARIANTS[variant].parent if variant in pruned else None
    if parent != "teacher" and parent not in students():
        raise ZooError(f"'{variant}' is not a pruned variant of the teacher or of a student; choose from {pruned}")
    return parent


def prune_shipped(variant: str, card: ModelCard, data: Dataset, options: BuildOptions) -> dict:
    """Prune `variant`'s source as the build would, on the whole training split, and ship it beside the teacher."""
    from build.steps.distill import DistillConfig, shipped_student
    from build.zoo import step_config  # the build plans from the registry, which imports this module

    parent = pruned_parent(variant)
    cfg = step_config(variant, PruneConfig, options)
    cfg.validate()
    teacher_path = shipped_teacher(card)
    teacher, source_meta = load_weights(teacher_path, card.preprocess)
    source = teacher
    if parent != "teacher":
        source, source_meta = shipped_student(card, data, step_config(parent, DistillConfig, options))
    train = data.train
    schedule = [options.train_steps(n, len(train)) for n in cfg.schedule()]
    teacher_sha = sha256_file(teacher_path)
    soft = teacher_logits(teacher, train.images, teacher_sha, data.checksum)
    source_sha = model_sha256(source)
    key = pruning_run(cfg, source_sha, teacher_sha, data.classes, len(train), schedule)
    run_dir = run_folder(f"{variant}_{key}")
    model, record = prune(source, cfg, train, soft, schedule, variant, run_dir, data.val)
    meta = {"arch": source_meta["arch"], "channel_pruned": True, "run_key": key, "source_sha256": source_sha,
            "teacher_sha256": teacher_sha, "train_images": len(train), "steps": schedule, "config": asdict(cfg),
            **record, "train_seconds": round(run_seconds(run_dir))}
    last_stage = run_dir / f"stage{len(schedule)}" / "log.jsonl"  # the fine-tuning after the last pruning step
    return ship(model, shipped_path(teacher_path.parent, variant, key), data, meta, last_stage)


@dataclass(frozen=True)
class StructuredPrune(TechniqueStep):
    config: PruneConfig = field(default_factory=PruneConfig)
    name = "prune_structured"

    def check(self, ctx: BuildContext) -> None:
        self.config.validate()

    def run(self, state: VariantState, ctx: BuildContext) -> StepResult:
        cfg = self.config
        assert state.model is not None
        source = state.model
        plan = cache(lambda: channel_plan(source, cfg))  # searched once, for the budget and the run alike
        # Budgeted at the MACs of the network each phase fine-tunes: each pruning step makes it smaller.
        run = ctx.run_steps([ctx.options.train_steps(n, len(ctx.train_set)) for n in cfg.schedule()],
                            FitConfig.batch_size, lambda: phase_macs(source, cfg, plan()))
        schedule = list(run.steps)
        source_sha = model_sha256(source)
        key = pruning_run(cfg, source_sha, ctx.teacher.sha256, ctx.data.classes, len(ctx.train_set), schedule)
        meta = {"channel_pruned": True, "source_sha256": source_sha, "steps": schedule, "config": asdict(cfg)}
        model, record, origin = ctx.shipped_or_trained(
            state.name, key, cfg.shipped, lambda: prune(source, cfg, ctx.train_set, ctx.soft_targets(), schedule,
                                                        state.name, plan=plan()), meta)
        return StepResult.ok({"pruning": {**record["pruning"], "run_key": key, **run.record(), **origin}},
                             note=origin_note(origin), model=model)
