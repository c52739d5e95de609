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
    weights = Path(shipped["weights"])
    assert weights.exists() and weights.with_suffix(".json").exists()
    assert weights.with_suffix(".val_log.jsonl").read_text().count("val_accuracy") == 1, "its validation curve"
    assert shipped["steps"] == 1 and 0 <= shipped["val_accuracy"] <= 1 and 0 <= shipped["test_accuracy"] <= 1

    trained: list[str] = []
    real_distill = build.steps.distill.distill

    def recorded_distill(*args: Any) -> tuple[Classifier, float]:
        trained.append(args[-1])
        return real_distill(*args)

    monkeypatch.setattr(build.steps.distill, "distill", recorded_distill)

    def zoo(config: DistillConfig, train: bool = False) -> dict | None:
        # epochs as if given with --set: the distilled recipe's own 100 would win over a profile's
        options = dataclasses.replace(OPTIONS, configs=(config,), train_runs=train,
                                      user_set=frozenset({(DistillConfig, "epochs")}))
        repo = tmp_path / f"repo{len(list(tmp_path.glob('repo*')))}"  # a fresh repository each time
        build_one(data, teacher, repo, ["distilled"], ["onnxruntime"], options, log=lambda _: None)
        model = models_of(repo).get("tiny_distilled")
        return model["metrics"]["distillation"] if model else None

    loaded = zoo(cfg)
    assert loaded is not None and trained == [] and loaded["shipped"] == Path(shipped["weights"]).name
    assert loaded["run_key"] == shipped["run_key"] and loaded["trained_on"] == shipped["hardware"]
    # Other settings are another run: not trained unless the build is asked to (--train); asking for a fresh run
    # skips the shipped student. Both of those train.
    assert zoo(dataclasses.replace(cfg, alpha=0.7)) is None and trained == []
    assert (zoo(dataclasses.replace(cfg, alpha=0.7), train=True) or {})["trained_in_build"]
    assert (zoo(dataclasses.replace(cfg, shipped=False)) or {})["run_key"] == shipped["run_key"]
    assert len(trained) == 2


def test_a_missing_shipped_student_is_named(teacher: Path, mini_archive: Path, micro_student: str) -> None:
    with pytest.raises(ZooError, match="no shipped student micro_distilled_.*run `invoke distill`"):
        shipped_student(card_for(teacher), load_dataset(str(mini_archive), CIFAR), DistillConfig(student=micro_student))
