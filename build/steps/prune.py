"""Structured channel pruning with Torch-Pruning: iterative, with fine-tuning after every step.

Torch-Pruning traces the network's dependency graph, so channels joined by a residual addition
are removed together and the result stays a dense, smaller network that every runtime speeds up.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn
from torch.nn import functional as F

from build.complexity import macs_and_params
from build.errors import ZooError
from build.fit import FitConfig, fit
from build.pipeline import BuildContext, Step, VariantState

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
    final_steps: int = 450  # after the last one
    lr: float = 0.04
    alpha: float = 0.5  # weight of the teacher's soft targets; 0.5 and lr 0.04 won on validation (README)

    def validate(self) -> None:
        if self.importance not in IMPORTANCES:
            raise ZooError(f"unknown pruning importance '{self.importance}'; choose one of {sorted(IMPORTANCES)}")
        if self.ratio is not None and not 0 < self.ratio < 1:
            raise ZooError(f"pruning ratio must lie in (0, 1), got {self.ratio}")
        if self.ratio is None and self.macs_reduction <= 1:
            raise ZooError(f"a MACs reduction target must exceed 1, got {self.macs_reduction}")
        if self.iterations < 1 or self.round_to < 1:
            raise ZooError(f"pruning needs iterations >= 1 and round_to >= 1, got {self.iterations}, {self.round_to}")


def _classifier_head(model: nn.Module) -> nn.Linear:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def effective_round_to(model: nn.Module, round_to: int) -> int | None:
    """Rounding to 16 would empty a 16-channel stage (ResNet-20's first): small networks are not rounded."""
    narrowest = min(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d))
    return round_to if narrowest >= 4 * round_to else None


def _pruner(model: nn.Module, ratio: float, iterations: int, importance: str,
            round_to: int | None) -> tp.pruner.MetaPruner:
    example = torch.zeros((1, 3, 32, 32), dtype=torch.uint8)
    return tp.pruner.MetaPruner(model, example, importance=IMPORTANCES[importance](), iterative_steps=iterations,
                                pruning_ratio=ratio, ignored_layers=[_classifier_head(model)], round_to=round_to)


def ratio_for_macs(model: nn.Module, reduction: float, round_to: int | None, tol: float = 0.01) -> float:
    """The channel ratio that cuts MACs by `reduction`, by bisection over dry runs on copies."""
    base = macs_and_params(model)[0]
    low, high = 0.0, 0.95
    while high - low > tol:
        mid = (low + high) / 2
        trial = copy.deepcopy(model)
        _pruner(trial, mid, 1, "l1", round_to).step()
        low, high = (mid, high) if base / macs_and_params(trial)[0] < reduction else (low, mid)
    return high


def accumulate_gradients(model: nn.Module, ctx: BuildContext, batches: int = 8, batch_size: int = 64) -> None:
    """Gradients of the loss on a few training batches, which Taylor importance reads."""
    model.eval().zero_grad()
    data = ctx.train_set
    for i in range(batches):
        x = torch.from_numpy(data.images[i * batch_size:(i + 1) * batch_size])
        y = torch.from_numpy(data.labels[i * batch_size:(i + 1) * batch_size]).long()
        F.cross_entropy(model(x), y).backward()


class StructuredPrune(Step):
    name = "prune_structured"

    def check(self, ctx: BuildContext) -> None:
        ctx.options.setting("prune", PruneConfig()).validate()

    def run(self, state: VariantState, ctx: BuildContext) -> None:
        cfg: PruneConfig = ctx.options.setting("prune", PruneConfig())
        assert state.model is not None
        model = copy.deepcopy(state.model)
        macs_before, params_before = macs_and_params(model)
        round_to = effective_round_to(model, cfg.round_to)
        ratio = cfg.ratio if cfg.ratio is not None else ratio_for_macs(model, cfg.macs_reduction, round_to)
        pruner = _pruner(model, ratio, cfg.iterations, cfg.importance, round_to)
        steps, loss = 0, float("nan")
        for i in range(cfg.iterations):
            if cfg.importance == "taylor":
                accumulate_gradients(model, ctx)
            pruner.step()
            model.zero_grad(set_to_none=True)
            n = ctx.options.train_steps(cfg.final_steps if i == cfg.iterations - 1 else cfg.finetune_steps)
            loss = fit(model, ctx.train_set, ctx.soft_targets(), FitConfig(steps=n, lr=cfg.lr, alpha=cfg.alpha),
                       f"{state.name}: prune {i + 1}/{cfg.iterations}, fine-tune")
            steps += n
        macs, params = macs_and_params(model)
        state.model = model
        state.metrics["pruning"] = {
            "method": "structured", "importance": cfg.importance, "channel_ratio": round(ratio, 4),
            "round_to": round_to,
            "iterations": cfg.iterations, "finetune_steps": steps, "final_loss": round(loss, 4),
            "macs_before": macs_before, "macs_after": macs, "macs_reduction": round(macs_before / macs, 3),
            "params_before": params_before, "params_after": params,
        }
