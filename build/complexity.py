"""Model size in parameters and multiply-accumulates, counted by Torch-Pruning on one image."""

from __future__ import annotations

import torch_pruning as tp

from build.models import Classifier


def macs_and_params(model: Classifier) -> tuple[int, int]:
    """On one image of the size the classifier takes."""
    macs, params = tp.utils.count_ops_and_params(model.eval(), model.example())
    return int(macs), int(params)
