"""Unstructured magnitude pruning: zero the smallest weights across the whole network.

The tensors keep their shapes, so dense runtimes do the same work: this shrinks the compressed
file, not the latency. The report shows both, so nobody mistakes one for the other.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from torch import nn
from torch.nn.utils import prune

from build.errors import ZooError
from build.fit import FitConfig, fit
from build.pipeline import BuildContext, StepResult, TechniqueStep, VariantState


@dataclass(frozen=True)
class SparsityConfig:
    sparsity: float = 0.8
    finetune_steps: int = 100  # with the zeroed weights held at zero (a full-size network: slow on CPU)
    lr: float = 0.01

    def validate(self) -> None:
        if not 0 < self.sparsity < 1:
            raise ZooError(f"sparsity must lie in (0, 1), got {self.sparsity}")


@dataclass(frozen=True)
class MagnitudeSparsify(TechniqueStep):
    config: SparsityConfig = field(default_factory=SparsityConfig)
    name = "sparsify_unstructured"

    def check(self, ctx: BuildContext) -> None:
        self.config.validate()

    def run(self, state: VariantState, ctx: BuildContext) -> StepResult:
        cfg = self.config
        assert state.model is not None
        model = copy.deepcopy(state.model)
        weights = [(m, "weight") for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        prune.global_unstructured(weights, pruning_method=prune.L1Unstructured, amount=cfg.sparsity)
        n = ctx.options.train_steps(cfg.finetune_steps)
        loss = fit(model, ctx.train_set, ctx.soft_targets(), FitConfig(steps=n, lr=cfg.lr), f"{state.name}: fine-tune")
        for module, param in weights:
            prune.remove(module, param)  # bake the masks in: plain tensors with zeros
        zeros = sum(int((m.weight == 0).sum()) for m, _ in weights)
        total = sum(m.weight.numel() for m, _ in weights)
        return StepResult.ok({"sparsity": {"method": "global magnitude (L1), unstructured", "target": cfg.sparsity,
                                           "achieved": round(zeros / total, 4), "finetune_steps": n,
                                           "final_loss": round(loss, 4)}}, model=model)
