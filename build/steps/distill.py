"""Knowledge distillation from the teacher into a smaller student network."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from build.complexity import macs_and_params
from build.errors import ZooError
from build.fit import FitConfig, fit
from build.models import ARCHITECTURES, build_classifier
from build.pipeline import BuildContext, Step, VariantState


@dataclass(frozen=True)
class DistillConfig:
    student: str = "resnet20"
    epochs: float = 8.0
    lr: float = 0.1
    batch_size: int = 128
    temperature: float = 4.0
    alpha: float = 0.9
    seed: int = 0

    def validate(self, teacher_macs: int, num_classes: int) -> None:
        if self.student not in ARCHITECTURES:
            raise ZooError(f"unknown student architecture '{self.student}'; choose one of {sorted(ARCHITECTURES)}")
        if not 0 <= self.alpha <= 1 or self.temperature <= 0 or self.epochs <= 0:
            raise ZooError(f"distillation needs 0 <= alpha <= 1, temperature > 0 and epochs > 0; got {self}")
        student_macs = macs_and_params(build_classifier(self.student, num_classes))[0]
        if student_macs >= teacher_macs:
            raise ZooError(f"student '{self.student}' needs {student_macs / 1e6:.1f}M MACs, no fewer than its "
                           f"teacher's {teacher_macs / 1e6:.1f}M; distillation must shrink the model")


class Distill(Step):
    name = "distill"

    def check(self, ctx: BuildContext) -> None:
        cfg = ctx.options.setting("distill", DistillConfig())
        cfg.validate(macs_and_params(ctx.teacher)[0], len(ctx.data.classes))

    def run(self, state: VariantState, ctx: BuildContext) -> None:
        cfg: DistillConfig = ctx.options.setting("distill", DistillConfig())
        torch.manual_seed(cfg.seed)
        student = build_classifier(cfg.student, len(ctx.data.classes))
        steps = ctx.options.train_steps(max(1, round(cfg.epochs * len(ctx.train_set) / cfg.batch_size)))
        fit_cfg = FitConfig(steps=steps, lr=cfg.lr, batch_size=cfg.batch_size, temperature=cfg.temperature,
                            alpha=cfg.alpha, seed=cfg.seed)
        loss = fit(student, ctx.train_set, ctx.soft_targets(), fit_cfg, f"{state.name}: distil into {cfg.student}")
        teacher_macs, student_macs = macs_and_params(ctx.teacher)[0], macs_and_params(student)[0]
        state.model = student
        state.metrics["distillation"] = {
            "student": cfg.student, "temperature": cfg.temperature, "alpha": cfg.alpha, "steps": steps,
            "epochs": round(steps * cfg.batch_size / len(ctx.train_set), 2), "final_loss": round(loss, 4),
            "macs_reduction_vs_teacher": round(teacher_macs / student_macs, 2),
        }
