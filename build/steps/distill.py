"""Knowledge distillation from the teacher into a smaller student network."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from build.card import ModelCard, Preprocess
from build.complexity import macs_and_params
from build.data import Dataset, ImageSet
from build.data.dataset import sha256_file
from build.errors import ZooError
from build.fit import FitConfig, fit, run_seconds
from build.models import ARCHITECTURES, Classifier, build_classifier, load_weights
from build.pipeline import BuildContext, StepResult, TechniqueStep, VariantState
from build.shipped import origin_note, run_folder, run_key, ship, shipped_path, shipped_teacher
from build.teacher_logits import teacher_logits


@dataclass(frozen=True)
class DistillConfig:
    student: str = "widenet"  # the best student within the distilled budget (docs/training.md: the ladder)
    epochs: float = 50.0  # the shipped student's; too long for a 2-core build, hence shipped (docs/training.md)
    lr: float = 0.1
    batch_size: int = 128
    temperature: float = 4.0
    alpha: float = 0.5  # chosen over 0.9 on validation accuracy (README: Measured)
    seed: int = 0
    shipped: bool = True  # load the student `invoke distill` shipped for this very run, when there is one

    def validate(self) -> None:
        if self.student not in ARCHITECTURES:
            raise ZooError(f"unknown student architecture '{self.student}'; choose one of {sorted(ARCHITECTURES)}")
        if not 0 <= self.alpha <= 1 or self.temperature <= 0 or self.epochs <= 0:
            raise ZooError(f"distillation needs 0 <= alpha <= 1, temperature > 0 and epochs > 0; got {self}")

    def no_smaller(self, teacher_macs: int | None, num_classes: int, pre: Preprocess) -> str | None:
        """Why this student cannot be distilled into from a teacher of `teacher_macs` (None where the teacher is an
        ONNX file, whose MACs Torch-Pruning cannot count): it would not be smaller."""
        if teacher_macs is None or self.student not in ARCHITECTURES:  # an unknown student fails `validate`
            return None
        student_macs = self.student_macs(num_classes, pre)
        if student_macs >= teacher_macs:
            return (f"student '{self.student}' needs {student_macs / 1e6:.1f}M MACs at this input, no fewer than the "
                    f"teacher's {teacher_macs / 1e6:.1f}M: distillation would not shrink the model")
        return None

    def steps(self, train_images: int) -> int:
        return max(1, round(self.epochs * train_images / self.batch_size))

    def student_macs(self, num_classes: int, pre: Preprocess) -> int:
        """The student's MACs per image at this input: counted on a fresh, untrained one."""
        return macs_and_params(build_classifier(self.student, num_classes, pre))[0]


def distill(cfg: DistillConfig, steps: int, train: ImageSet, soft_targets: np.ndarray, num_classes: int,
            pre: Preprocess, desc: str, run_dir: Path | None = None,
            val: ImageSet | None = None) -> tuple[Classifier, float]:
    """A fresh student, behind the teacher's preprocessing, trained for `steps` on the teacher's logits; returns it
    and its final loss. With `run_dir`, resumable from there, with its validation curve logged."""
    torch.manual_seed(cfg.seed)
    student = build_classifier(cfg.student, num_classes, pre)
    fit_cfg = FitConfig(steps=steps, lr=cfg.lr, batch_size=cfg.batch_size, temperature=cfg.temperature,
                        alpha=cfg.alpha, seed=cfg.seed)
    return student, fit(student, train, soft_targets, fit_cfg, desc, run_dir, val)


def student_run(cfg: DistillConfig, teacher_sha256: str, classes: Sequence[str], train_images: int,
                steps: int) -> tuple[str, str]:
    """The run's key (see `run_key`), and the stem its shipped student's file is named with."""
    key = run_key(cfg, teacher=teacher_sha256, classes=list(classes), train_images=train_images, steps=steps)
    return key, f"{cfg.student}_distilled"


def distill_student(card: ModelCard, data: Dataset, cfg: DistillConfig) -> dict:
    """Train the student the build would, on the whole training split, and ship it beside the teacher."""
    teacher_path = shipped_teacher(card)
    teacher, _ = load_weights(teacher_path, card.preprocess)
    sha, train = sha256_file(teacher_path), data.train
    soft = teacher_logits(teacher, train.images, sha, data.checksum)
    steps = cfg.steps(len(train))
    key, stem = student_run(cfg, sha, data.classes, len(train), steps)
    run_dir = run_folder(f"{stem}_{key}")
    student, loss = distill(cfg, steps, train, soft, len(data.classes), card.preprocess, f"distil into {cfg.student}",
                            run_dir, data.val)
    meta = {"arch": cfg.student, "run_key": key, "teacher_sha256": sha, "train_images": len(train), "steps": steps,
            "config": asdict(cfg), "final_loss": loss, "train_seconds": round(run_seconds(run_dir))}
    return ship(student, shipped_path(teacher_path.parent, stem, key), data, meta, run_dir / "log.jsonl")


def shipped_student(card: ModelCard, data: Dataset, cfg: DistillConfig) -> tuple[Classifier, dict]:
    """The student `distill_student` shipped for `cfg` beside the teacher; a ZooError if there is none."""
    teacher_path = shipped_teacher(card)
    steps = cfg.steps(len(data.train))
    key, stem = student_run(cfg, sha256_file(teacher_path), data.classes, len(data.train), steps)
    path = shipped_path(teacher_path.parent, stem, key)
    if not path.exists():
        raise ZooError(f"no shipped student {path.name} for these distillation settings; run `invoke distill`")
    return load_weights(path, card.preprocess)


@dataclass(frozen=True)
class Distill(TechniqueStep):
    """Distil into the student its config names; a variant sets its own student family and epochs there."""

    config: DistillConfig = field(default_factory=DistillConfig)
    name = "distill"

    def check(self, ctx: BuildContext) -> None:
        self.config.validate()

    def not_applicable(self, ctx: BuildContext) -> str | None:
        return self.config.no_smaller(_teacher_macs(ctx), len(ctx.data.classes), ctx.teacher.card.preprocess)

    def run(self, state: VariantState, ctx: BuildContext) -> StepResult:
        cfg = self.config
        pre = ctx.teacher.card.preprocess
        run = ctx.run_steps([ctx.options.train_steps(cfg.steps(len(ctx.train_set)))], cfg.batch_size,
                            lambda: cfg.student_macs(len(ctx.data.classes), pre))
        steps = run.steps[0]
        key, stem = student_run(cfg, ctx.teacher.sha256, ctx.data.classes, len(ctx.train_set), steps)

        def train() -> tuple[Classifier, dict]:
            student, loss = distill(cfg, steps, ctx.train_set, ctx.soft_targets(), len(ctx.data.classes), pre,
                                    f"{ctx.name}_{state.name}: distil into {cfg.student}")
            return student, {"final_loss": loss}

        student, record, origin = ctx.shipped_or_trained(stem, key, cfg.shipped, train,
                                                         {"steps": steps, "config": asdict(cfg)})
        teacher_macs, student_macs = _teacher_macs(ctx), macs_and_params(student)[0]
        return StepResult.ok({"distillation": {
            "student": cfg.student, "temperature": cfg.temperature, "alpha": cfg.alpha, "steps": steps,
            "epochs": round(steps * cfg.batch_size / len(ctx.train_set), 2),
            "final_loss": round(record["final_loss"], 4),
            "macs_reduction_vs_teacher": round(teacher_macs / student_macs, 2) if teacher_macs else None,
            "run_key": key, **run.record(), **origin,
        }}, note=origin_note(origin), model=student)


def _teacher_macs(ctx: BuildContext) -> int | None:
    """Counted once per build (the context's `teacher_macs`): every distilled variant asks when the build plans,
    and again when it runs."""
    return ctx.teacher_macs
