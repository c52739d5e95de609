from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from build.data import ImageSet
from build.fit import Batches, FitConfig, fit, kd_loss
from build.models.resnet import CifarResNet
from tests.conftest import PRE


def test_kd_loss_is_cross_entropy_at_alpha_zero_and_zero_when_student_matches() -> None:
    logits = torch.randn(8, 10)
    labels = torch.randint(0, 10, (8,))
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.isclose(kd_loss(logits, torch.randn(8, 10), labels, 4.0, 0.0), ce)
    assert kd_loss(logits, logits, labels, 4.0, 1.0).abs() < 1e-6


def test_batches_cover_every_example_once_per_epoch() -> None:
    gen = torch.Generator().manual_seed(0)
    first_epoch = torch.cat(list(islice(Batches(10, 5, gen), 2)))
    assert sorted(first_epoch.tolist()) == list(range(10))
    assert len(list(islice(Batches(10, 4, gen), 7))) == 7, "steps, not epochs, bound the run"


def test_fit_learns_the_soft_targets() -> None:
    from build.models import Classifier

    model = Classifier(CifarResNet([1], [4], 10), PRE)
    rng = np.random.default_rng(0)
    data = ImageSet(rng.integers(0, 255, (64, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 64))
    soft = np.eye(10, dtype=np.float32)[data.labels] * 8
    first = fit(model, data, soft, FitConfig(steps=1, lr=0.05, batch_size=32), "test")
    last = fit(model, data, soft, FitConfig(steps=40, lr=0.05, batch_size=32), "test")
    assert last < first and not model.training


def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_same_weights(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import build.fit
    from build.models import Classifier

    rng = np.random.default_rng(0)
    data = ImageSet(rng.integers(0, 255, (64, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 64))
    soft = np.eye(10, dtype=np.float32)[data.labels] * 8
    cfg = FitConfig(steps=6, lr=0.05, batch_size=16)

    def model() -> Classifier:
        torch.manual_seed(0)
        return Classifier(CifarResNet([1], [4], 10), PRE)

    whole = model()
    fit(whole, data, soft, cfg, "whole")
    monkeypatch.setattr(build.fit, "CHECKPOINT_SECONDS", 0.0)  # a checkpoint after every step
    calls = {"n": 0}
    real_augment = build.fit.augment

    def interrupted(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_augment(*args, **kwargs)

    monkeypatch.setattr(build.fit, "augment", interrupted)
    try:
        fit(model(), data, soft, cfg, "interrupted", tmp_path / "run", val=data)
    except KeyboardInterrupt:
        pass
    assert torch.load(tmp_path / "run" / "fit.pt", weights_only=True)["step"] == 3
    monkeypatch.setattr(build.fit, "augment", real_augment)
    resumed = model()
    fit(resumed, data, soft, cfg, "resumed", tmp_path / "run", val=data)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert epochs == [1.0], "validation is logged once per epoch (four steps of 16 of 64 images)"


def test_a_resumed_runs_training_time_adds_up_over_its_processes(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import build.fit
    from build.fit import Checkpoint, run_seconds

    ticks = iter([0.0, 100.0, 100.0, 5000.0, 5030.0, 5030.0])  # process 1: 100 s; a day later, process 2: 30 s
    monkeypatch.setattr(build.fit.time, "monotonic", lambda: next(ticks))
    cfg = FitConfig(steps=4)

    def parts() -> tuple[torch.nn.Linear, torch.optim.SGD, Any, Batches]:
        model = torch.nn.Linear(2, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=4)
        return model, opt, sched, Batches(8, 4, torch.Generator().manual_seed(0))

    first = parts()
    Checkpoint(tmp_path / "stage1", cfg).save(2, first[0], first[1], first[2], first[3], [1.0, 0.5])
    again, (model, opt, sched, sampler) = Checkpoint(tmp_path / "stage1", cfg), parts()
    assert again.restore(model, opt, sched, sampler) == (2, [1.0, 0.5])
    again.save(4, model, opt, sched, sampler, [1.0, 0.5, 0.4, 0.3])
    assert run_seconds(tmp_path) == 130.0, "both processes' time, not the last one's"
