"""Unstructured magnitude pruning: zero the smallest weights across the whole network.

The tensors keep their shapes, so dense runtimes do the same work: this shrinks the compressed
file, not the latency. The report shows both, so nobody mistakes one for the other.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

from torch import nn
from torch.nn.utils import prune

from build.complexity import macs_and_params
from build.errors import ZooError
from build.fit import FitConfig, fit
from build.models import Classifier
from build.pipeline import BuildContext, StepResult, TechniqueStep, VariantState
from build.shipped import model_sha256, origin_note, run_key


@dataclass(frozen=True)
class SparsityConfig:
    sparsity: float = 0.8
    finetune_steps: int = 100  # with the zeroed weights held at zero (a full-size network: slow on CPU)
    lr: float = 0.01
    shipped: bool = True  # load the network `invoke build --ship` shipped for this very run, when there is one

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
        source = state.model
        run = ctx.run_steps([ctx.options.train_steps(cfg.finetune_steps, len(ctx.train_set))], FitConfig.batch_size,
                            lambda: macs_and_params(source)[0])  # the zeros still cost MACs in dense training
        n = run.steps[0]
        source_sha = model_sha256(source)
        key = run_key(cfg, source=source_sha, teacher=ctx.teacher.sha256, classes=list(ctx.data.classes),
                      train_images=len(ctx.train_set), steps=n)
        model, record, origin = ctx.shipped_or_trained(
            state.name, key, cfg.shipped, lambda: sparsify(source, cfg, n, ctx, state.name),
            {"source_sha256": source_sha, "steps": n, "config": asdict(cfg)})
        weights = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        zeros, total = sum(int((w == 0).sum()) for w in weights), sum(w.numel() for w in weights)
        return StepResult.ok({"sparsity": {"method": "global magnitude (L1), unstructured", "target": cfg.sparsity,
                                           "achieved": round(zeros / total, 4), "finetune_steps": n,
                                           "final_loss": round(record["final_loss"], 4), "run_key": key,
                                           **run.record(), **origin}},
                             note=origin_note(origin), model=model)


def sparsify(source: Classifier, cfg: SparsityConfig, steps: int, ctx: BuildContext,
             desc: str) -> tuple[Classifier, dict]:
    """A copy of `source` with its smallest weights zeroed, fine-tuned with the zeros held, and its final loss."""
    model = copy.deepcopy(source)
    weights = [(m, "weight") for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    prune.global_unstructured(weights, pruning_method=prune.L1Unstructured, amount=cfg.sparsity)
    loss = fit(model, ctx.train_set, ctx.soft_targets(), FitConfig(steps=steps, lr=cfg.lr), f"{desc}: fine-tune")
    for module, param in weights:
        prune.remove(module, param)  # bake the masks in: plain tensors with zeros
    return model, {"final_loss": loss}
