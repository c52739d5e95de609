from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

import build.steps.prune
from build.complexity import macs_and_params
from build.data import load_dataset
from build.errors import ZooError
from build.models import Classifier
from build.models.resnet import CifarResNet
from build.pipeline import BuildOptions
from build.steps.distill import DistillConfig, distill_student
from build.steps.prune import (
    PruneConfig,
    _pruner,
    effective_round_to,
    phase_macs,
    prune_shipped,
    ratio_for_macs,
)
from tests.conftest import CIFAR, PRE, build_one, card_for, models_of


@pytest.fixture
def model() -> Classifier:
    return Classifier(CifarResNet([1, 1], [16, 32], 10), PRE).eval()


@pytest.mark.parametrize("iterations", [1, 3])
def test_ratio_for_macs_reaches_the_target(model: Classifier, iterations: int) -> None:
    """The search dry-runs the run's own steps: rounding at each step prunes differently from one big step."""
    base = macs_and_params(model)[0]
    ratio = ratio_for_macs(model, 2.0, 4, iterations)
    pruned = copy.deepcopy(model)
    pruner = _pruner(pruned, ratio, iterations, "l2", 4)
    for _ in range(iterations):
        pruner.step()
    assert 0 < ratio < 1 and base / macs_and_params(pruned)[0] >= 2.0
    assert macs_and_params(model)[0] == base, "the search prunes copies only"


def test_each_fine_tuning_phase_is_counted_at_the_network_it_trains(model: Classifier) -> None:
    """The training budget counts each phase at the MACs of the network left after its pruning step."""
    base = macs_and_params(model)[0]
    macs = phase_macs(model, PruneConfig(macs_reduction=2.0, iterations=3))
    assert len(macs) == 3 and base > macs[0] > macs[1] > macs[2] and base / macs[2] >= 2.0
    assert macs_and_params(model)[0] == base, "counted on a copy"


@pytest.mark.parametrize("importance", ["l1", "l2", "taylor"])
def test_pruning_keeps_residual_shapes_consistent(model: Classifier, importance: str) -> None:
    import torch

    x = torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8)
    if importance == "taylor":
        torch.nn.functional.cross_entropy(model(x), torch.zeros(4, dtype=torch.long)).backward()
    _pruner(model, 0.5, 1, importance, None).step()
    assert model(x).shape == (4, 10), "the head keeps its classes"
    fc = model.backbone.fc
    assert isinstance(fc, torch.nn.Linear) and fc.in_features < 32, "channels feeding the head were pruned"


def test_channels_are_rounded_unless_the_network_is_too_narrow(model: Classifier) -> None:
    assert effective_round_to(model, 4) == 4 and effective_round_to(model, 16) is None
    _pruner(model, 0.3, 1, "l2", 4).step()
    assert all(m.out_channels % 4 == 0 for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_a_build_loads_the_networks_invoke_prune_shipped_for_its_runs(
        tmp_path: Path, teacher: Path, mini_archive: Path, micro_student: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_dataset(str(mini_archive), CIFAR)
    distill = DistillConfig(student=micro_student, epochs=1)
    distill_student(card_for(teacher), data, distill)
    cfg = PruneConfig(iterations=2, finetune_steps=1, final_steps=2)
    # the cap shortens `pruned`, whose recipe's own fine-tuning lengths win over a build-wide config
    options = BuildOptions(verify_images=100, measure_speed=False, threads=1, max_train_steps=2,
                           configs=(distill, cfg), user_set=frozenset({(DistillConfig, "epochs")}))
    variants = ["pruned", "pruned_distilled"]
    shipped = {v: prune_shipped(v, card_for(teacher), data, options) for v in variants}
    # each recipe's steps scaled to the 90-image training split (at least one), then capped at 2
    assert shipped["pruned"]["steps"] == [1, 2] and shipped["pruned_distilled"]["steps"] == [1, 1]
    assert all(r["pruning"]["macs_reduction"] >= 2.5 for r in shipped.values())
    assert shipped["pruned_distilled"]["arch"] == micro_student
    assert all(Path(r["weights"]).with_suffix(".val_log.jsonl").exists() for r in shipped.values())

    trained: list[str] = []
    real_prune = build.steps.prune.prune

    def recorded_prune(*args: Any, **kwargs: Any) -> tuple[Classifier, dict]:
        trained.append(args[-1])
        return real_prune(*args, **kwargs)

    monkeypatch.setattr(build.steps.prune, "prune", recorded_prune)

    def zoo(prune: PruneConfig) -> dict:
        build_one(data, teacher, tmp_path / "repo", variants, ["onnxruntime"],
                  dataclasses.replace(options, configs=(distill, prune), train_runs=True), log=lambda _: None)
        return {v: models_of(tmp_path / "repo")[f"tiny_{v}"]["metrics"]["pruning"] for v in variants}

    loaded = zoo(cfg)
    assert trained == [], "both pruned networks come from weights/, pruned_distilled's from the shipped student"
    for v in variants:
        assert loaded[v]["shipped"] == Path(shipped[v]["weights"]).name
        assert loaded[v]["run_key"] == shipped[v]["run_key"]
        assert loaded[v]["macs_after"] == shipped[v]["pruning"]["macs_after"]
    assert all(r["trained_in_build"] for r in zoo(dataclasses.replace(cfg, lr=0.01)).values())
    assert trained == variants


def test_only_pruned_variants_can_be_shipped(teacher: Path, mini_archive: Path) -> None:
    with pytest.raises(ZooError, match="'int8' is not a pruned variant.*'pruned', 'pruned_distilled'"):
        prune_shipped("int8", card_for(teacher), load_dataset(str(mini_archive), CIFAR), BuildOptions())
