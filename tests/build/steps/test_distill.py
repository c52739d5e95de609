from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import build.steps.distill
from build.data import load_dataset
from build.errors import ZooError
from build.models import Classifier
from build.pipeline import BuildOptions
from build.steps.distill import DistillConfig, distill_student, shipped_student
from tests.conftest import CIFAR, build_one, card_for, models_of

OPTIONS = BuildOptions(verify_images=100, measure_speed=False, threads=1)


def test_a_build_loads_the_student_invoke_distill_shipped_for_its_run(
        tmp_path: Path, teacher: Path, mini_archive: Path, micro_student: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_dataset(str(mini_archive), CIFAR)
    cfg = DistillConfig(student=micro_student, epochs=1)
    shipped = distill_student(card_for(teacher), data, cfg)
    assert Path(shipped["weights"]).exists() and Path(shipped["weights"]).with_suffix(".json").exists()
    assert shipped["steps"] == 1 and 0 <= shipped["val_accuracy"] <= 1 and 0 <= shipped["test_accuracy"] <= 1

    trained: list[str] = []
    real_distill = build.steps.distill.distill

    def recorded_distill(*args: Any) -> tuple[Classifier, float]:
        trained.append(args[-1])
        return real_distill(*args)

    monkeypatch.setattr(build.steps.distill, "distill", recorded_distill)

    def zoo(config: DistillConfig) -> dict:
        options = dataclasses.replace(OPTIONS, configs=(config,))
        build_one(data, teacher, tmp_path / "repo", ["distilled"], ["onnxruntime"], options, log=lambda _: None)
        return models_of(tmp_path / "repo")["tiny_distilled"]["metrics"]["distillation"]

    loaded = zoo(cfg)
    assert trained == [] and loaded["shipped"] == Path(shipped["weights"]).name
    assert loaded["run_key"] == shipped["run_key"] and loaded["trained_on"] == shipped["hardware"]
    # Other settings are another run, and asking for a fresh one skips the shipped student: both train.
    assert zoo(dataclasses.replace(cfg, alpha=0.7))["trained_in_build"]
    assert zoo(dataclasses.replace(cfg, shipped=False))["run_key"] == shipped["run_key"]
    assert len(trained) == 2


def test_a_missing_shipped_student_is_named(teacher: Path, mini_archive: Path, micro_student: str) -> None:
    with pytest.raises(ZooError, match="no shipped student micro_distilled_.*run `invoke distill`"):
        shipped_student(card_for(teacher), load_dataset(str(mini_archive), CIFAR), DistillConfig(student=micro_student))
