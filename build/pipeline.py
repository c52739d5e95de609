"""Pipelines of small steps (in the manner of Triton Model Navigator): one per variant, then publish."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from torch import nn

from build.data import Dataset, ImageSet
from build.hardware import Hardware, detect
from build.repository.model_config import TensorIO
from build.repository.publish import Publication
from build.runtimes import Runtime
from build.shipped import shipped_path
from build.sources import Teacher
from build.teacher_logits import teacher_logits
from build.verification import Tolerance

T = TypeVar("T")


@dataclass(frozen=True)
class BuildOptions:
    verify_images: int = 1000
    eval_images: int | None = None  # None: the whole test set
    served_check_images: int = 2000  # accuracy is also recorded on this prefix, which `invoke zoo` serves
    served_latency_requests: int = 200  # batch-1 requests per model that `invoke zoo` times through the server
    measure_speed: bool = True
    threads: int = 2
    min_accuracy: float = 0.0  # a variant below this test accuracy is rejected, not published
    train_images: int | None = None  # None: the whole training split
    max_train_steps: int | None = None  # caps every fine-tuning and distillation run
    profile: str = "default"
    settings: dict[str, Any] = field(default_factory=dict)  # technique name -> its config dataclass

    def setting(self, name: str, default: T) -> T:
        return self.settings.get(name, default)

    def train_steps(self, steps: int) -> int:
        return steps if self.max_train_steps is None else min(steps, self.max_train_steps)


@dataclass
class BuildContext:
    """What every step may read: the card's data and teacher, options, runtimes and the open publication."""

    data: Dataset
    teacher: Teacher
    options: BuildOptions
    runtimes: list[Runtime]
    publication: Publication
    workdir: Path
    provenance: dict
    io: TensorIO
    hardware: Hardware = field(default_factory=detect)
    done: dict[str, VariantState] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)  # variant or model -> why it was left out
    not_applicable: dict[str, str] = field(default_factory=dict)  # model -> why its runtime does not apply
    weights_dir: Path | None = None  # the teacher's folder, where shipped training runs are looked up
    _soft_targets: np.ndarray | None = None

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

    def shipped(self, stem: str, key: str, wanted: bool) -> Path | None:
        """Where `invoke distill` or `invoke prune` ships this run's result, when the build should look for it."""
        return shipped_path(self.weights_dir, stem, key) if wanted and self.weights_dir else None

    def soft_targets(self) -> np.ndarray:
        """The teacher's logits on `train_set`: computed once, and cached on disk across builds."""
        if self._soft_targets is None:
            source = self.teacher.module if self.teacher.is_torch else self.teacher.runner(self.options.threads)
            self._soft_targets = teacher_logits(source, self.train_set.images, self.teacher.sha256,
                                                self.data.checksum)
        return self._soft_targets


@dataclass
class VariantState:
    """One variant as it moves through its steps."""

    name: str
    parent: str
    tolerance: Tolerance
    workdir: Path
    model: nn.Module | None = None
    onnx_path: Path | None = None
    reference_logits: np.ndarray | None = None
    recipe: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    reference_top1: float | None = None  # test top-1 of the variant's own file (the reference runtime's model)
    published: list[str] = field(default_factory=list)


class Step(ABC):
    name: str

    def check(self, ctx: BuildContext) -> None:  # noqa: B027 - most steps have nothing to check
        """Refuse bad settings before any step of the build runs; raise ZooError."""

    @abstractmethod
    def run(self, state: VariantState, ctx: BuildContext) -> None:
        """Advance the variant; raise VariantRejected to drop it, ZooError to fail the whole build."""


class Pipeline:
    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps

    def run(self, state: VariantState, ctx: BuildContext, log=print) -> VariantState:
        for step in self.steps:
            start = time.perf_counter()
            step.run(state, ctx)
            state.recipe.append(step.name)
            log(f"  [{state.name}] {step.name} ({time.perf_counter() - start:.1f}s)")
        return state
