from __future__ import annotations

import copy

import pytest
import torch

from build.complexity import macs_and_params
from build.models import Classifier
from build.models.resnet import CifarResNet
from build.steps.prune import _pruner, effective_round_to, ratio_for_macs


@pytest.fixture
def model() -> Classifier:
    return Classifier(CifarResNet([1, 1], [16, 32], 10)).eval()


def test_ratio_for_macs_reaches_the_target(model: Classifier) -> None:
    base = macs_and_params(model)[0]
    ratio = ratio_for_macs(model, 2.0, 4)
    pruned = copy.deepcopy(model)
    _pruner(pruned, ratio, 1, "l2", 4).step()
    assert 0 < ratio < 1 and base / macs_and_params(pruned)[0] >= 2.0
    assert macs_and_params(model)[0] == base, "the search prunes copies only"


@pytest.mark.parametrize("importance", ["l1", "l2", "taylor"])
def test_pruning_keeps_residual_shapes_consistent(model: Classifier, importance: str) -> None:
    import torch

    x = torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8)
    if importance == "taylor":
        torch.nn.functional.cross_entropy(model(x), torch.zeros(4, dtype=torch.long)).backward()
    _pruner(model, 0.5, 1, importance, None).step()
    assert model(x).shape == (4, 10), "the head keeps its classes"
    assert model.backbone.fc.in_features < 32, "channels feeding the head were pruned"


def test_channels_are_rounded_unless_the_network_is_too_narrow(model: Classifier) -> None:
    assert effective_round_to(model, 4) == 4 and effective_round_to(model, 16) is None
    _pruner(model, 0.3, 1, "l2", 4).step()
    assert all(m.out_channels % 4 == 0 for m in model.modules() if isinstance(m, torch.nn.Conv2d))
