"""Pipelines of small steps (in the manner of Triton Model Navigator): one per variant, then publish."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from build.data import Dataset
from build.export import Tolerance
from build.models import Classifier
from build.repository.model_config import TensorIO
from build.repository.publish import Publication
from build.runtimes import Runtime


@dataclass(frozen=True)
class BuildOptions:
    arch: str = "resnet18"
    verify_images: int = 1000
    eval_images: int | None = None  # None: the whole test set
    measure_speed: bool = True
    threads: int = 2


@dataclass
class BuildContext:
    """What every step may read: data, the teacher, options, runtimes and the open publication."""

    data: Dataset
    teacher: Classifier
    options: BuildOptions
    runtimes: list[Runtime]
    publication: Publication
    workdir: Path
    provenance: dict
    io: TensorIO = field(default_factory=TensorIO)
    done: dict[str, VariantState] = field(default_factory=dict)

    @property
    def verify_set(self) -> np.ndarray:
        return self.data.test.images[: self.options.verify_images]


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
    published: list[str] = field(default_factory=list)


class Step(ABC):
    name: str

    def check(self, ctx: BuildContext) -> None:  # noqa: B027 - most steps have nothing to check
        """Refuse bad settings before any step of the build runs; raise ZooError."""

    @abstractmethod
    def run(self, state: VariantState, ctx: BuildContext) -> None:
        """Advance the variant; raise ZooError to fail the build."""


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
