from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from build.data import load_dataset
from build.errors import ZooError
from build.train import TrainConfig, Trainer, augment, compact_checkpoint, seed_run, train
from tests.conftest import CIFAR, PRE


def test_augment_crops_and_flips_deterministically() -> None:
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    a = augment(x, torch.Generator().manual_seed(1))
    b = augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, x)


def test_augment_with_no_padding_only_flips() -> None:
    x = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8)
    out = augment(x, torch.Generator().manual_seed(0), pad=0)
    assert all(torch.equal(o, i) or torch.equal(o, i.flip(2)) for o, i in zip(out, x))


def test_training_resumes_exactly(tmp_path: Path, mini_archive: Path, tiny_arch: str) -> None:
    """Two epochs straight, or one epoch, a restart from the checkpoint, then the second: same weights."""
    data = load_dataset(str(mini_archive), CIFAR)
    cfg = TrainConfig(arch=tiny_arch, epochs=2, warmup_epochs=1, batch_size=30, device="cpu")
    straight = Trainer(cfg, data, tmp_path / "straight", PRE)
    for _ in range(2):
        straight.train_epoch()
    interrupted = Trainer(cfg, data, tmp_path / "resumed", PRE)
    interrupted.train_epoch()
    interrupted.epoch = 1
    (tmp_path / "resumed").mkdir()
    interrupted.save()
    resumed = Trainer(cfg, data, tmp_path / "resumed", PRE)
    assert resumed.resume() and resumed.epoch == 1
    resumed.train_epoch()
    for p, q in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(p, q)
    with pytest.raises(ZooError, match="was made with"):
        Trainer(TrainConfig(arch=tiny_arch, epochs=3, warmup_epochs=1, batch_size=30), data,
                tmp_path / "resumed", PRE).resume()


def test_a_compact_checkpoint_resumes_on_another_machine(tmp_path: Path, mini_archive: Path, tiny_arch: str) -> None:
    """FP16 weights and momentum, cast back on resume: the run goes on where it stopped, within FP16 rounding."""
    data = load_dataset(str(mini_archive), CIFAR)
    cfg = TrainConfig(arch=tiny_arch, epochs=2, warmup_epochs=1, batch_size=30, device="cpu")
    first = Trainer(cfg, data, tmp_path / "here", PRE)
    first.train_epoch()
    first.epoch = 1
    (tmp_path / "here").mkdir()
    first.save()
    compact = compact_checkpoint(tmp_path / "here", tmp_path / "shipped" / "run.pt")
    saved = torch.load(compact, weights_only=True)
    assert {v.dtype for v in saved["model"].values() if v.is_floating_point()} == {torch.float16}
    assert {v.dtype for s in saved["opt"]["state"].values() for v in s.values()} <= {torch.float16, torch.int64}
    assert seed_run(tmp_path / "there", compact) and not seed_run(tmp_path / "there", compact), "only an empty run"
    moved = Trainer(cfg, data, tmp_path / "there", PRE)
    assert moved.resume() and moved.epoch == 1
    assert all(p.dtype == torch.float32 for p in moved.model.parameters())
    assert all(v.dtype == torch.float32 for s in moved.opt.state.values() for v in s.values() if v.is_floating_point())
    for p, q in zip(first.model.state_dict().values(), moved.model.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), rtol=1e-3, atol=1e-3)
    moved.train_epoch()
    with pytest.raises(ZooError, match="holds no checkpoint"):
        compact_checkpoint(tmp_path / "empty", tmp_path / "x.pt")


def test_train_writes_teacher_and_log(tmp_path: Path, mini_archive: Path, tiny_arch: str) -> None:
    data = load_dataset(str(mini_archive), CIFAR)
    cfg = TrainConfig(arch=tiny_arch, epochs=2, warmup_epochs=1, batch_size=30, device="cpu")
    result = train(cfg, data, tmp_path / "run", tmp_path / "teacher.pt", PRE)
    assert result.weights.exists() and 0.0 <= result.test_accuracy <= 1.0
    assert (tmp_path / "run" / "train_log.jsonl").read_text().count("\n") == 2
    assert (tmp_path / "teacher.train_log.jsonl").exists()
    assert "test_accuracy" in (tmp_path / "teacher.json").read_text()
    meta = torch.load(result.weights, weights_only=True)
    assert meta["arch"] == tiny_arch and meta["classes"] == data.classes


def test_warmup_must_be_shorter_than_training(tmp_path: Path, mini_archive: Path, tiny_arch: str) -> None:
    with pytest.raises(ZooError, match="warm-up must be shorter"):
        Trainer(TrainConfig(arch=tiny_arch, epochs=2, warmup_epochs=2), load_dataset(str(mini_archive), CIFAR),
                tmp_path, PRE)


def test_cutout_zeroes_one_square_per_image() -> None:
    from build.train import apply_cutout

    x = torch.full((8, 3, 32, 32), 255, dtype=torch.uint8)
    out = apply_cutout(x, torch.Generator().manual_seed(0), 12)
    zeroed = (out[:, 0] == 0).sum(dim=(1, 2))
    assert (zeroed > 0).all() and (zeroed <= 12 * 12).all()
    assert torch.equal(out[:, 0] == 0, out[:, 2] == 0)  # the same square in every channel


def test_a_second_phase_starts_from_a_finished_runs_weights(tmp_path: Path, mini_archive: Path,
                                                           tiny_arch: str) -> None:
    """--init-from: a finished run's weights (FP16 on disk), fresh optimiser and schedule; another arch is refused."""
    data = load_dataset(str(mini_archive), CIFAR)
    cfg = TrainConfig(arch=tiny_arch, epochs=2, warmup_epochs=1, batch_size=30, device="cpu")
    first = train(cfg, data, tmp_path / "one", tmp_path / "one.pt", PRE)
    second = Trainer(replace(cfg, init_from=str(first.weights)), data, tmp_path / "two", PRE)
    saved = torch.load(first.weights, weights_only=True)["state_dict"]
    for key, value in second.model.state_dict().items():
        assert torch.equal(value, saved[key].to(value.dtype)), key
    assert second.epoch == 0 and not second.opt.state, "fresh optimiser"
    assert second.sched.last_epoch == 0, "fresh schedule"
    torch.save({**torch.load(first.weights, weights_only=True), "arch": "resnet18"}, tmp_path / "other.pt")
    with pytest.raises(ZooError, match="holds a resnet18 network"):
        Trainer(replace(cfg, init_from=str(tmp_path / "other.pt")), data, tmp_path / "three", PRE)
