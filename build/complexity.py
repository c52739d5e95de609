"""Model size in parameters and multiply-accumulates, counted by Torch-Pruning on one image."""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn


def macs_and_params(model: nn.Module, image_shape: tuple[int, ...] = (3, 32, 32)) -> tuple[int, int]:
    example = torch.zeros((1, *image_shape), dtype=torch.uint8)
    macs, params = tp.utils.count_ops_and_params(model.eval(), example)
    return int(macs), int(params)
