"""A wide, shallow student that pools early: the network of KellerJordan/cifar10-airbench's airbench94, for CPUs.

Seven 3x3 convolutions in three groups, each group a convolution, a 2x2 max-pool, then a second convolution, so
most of the work runs on 15x15 and 7x7 maps with many channels: the shape CPU convolution kernels run fastest
(docs/training.md measures it against the CIFAR ResNets). Changed from airbench94 for serving: ReLU instead of GELU,
and each pool after its convolution's batch norm and ReLU, so that Conv+BN+ReLU fuse in every runtime and in INT8;
the stem is a learned 2x2 convolution with batch norm instead of airbench's frozen whitening layer; and the middle
group is 192 channels wide instead of 256 (5.6x the ResNet18 teacher's batch-64 throughput on ONNX Runtime, measured
here, rather than 4.2x).
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, padding: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def conv_group(cin: int, cout: int) -> nn.Sequential:
    # pooled after its batch norm and ReLU (airbench pools first), so that every convolution folds its batch norm and
    # fuses its ReLU in the exported graph, INT8 and QAT included
    return nn.Sequential(*conv_bn_relu(cin, cout), nn.MaxPool2d(2), *conv_bn_relu(cout, cout))


class GlobalMaxPool(nn.Module):
    """The largest activation of each channel. `amax` exports as one ReduceMax; AdaptiveMaxPool2d + Flatten export a
    Reshape that ONNX Runtime's quantization pre-processing cannot infer shapes through."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3))


class WideNet(nn.Module):
    def __init__(self, widths: tuple[int, int, int], num_classes: int, in_channels: int = 3, stem: int = 24) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn_relu(in_channels, stem, kernel=2, padding=0),
            conv_group(stem, widths[0]), conv_group(widths[0], widths[1]), conv_group(widths[1], widths[2]),
            GlobalMaxPool(),
        )
        self.fc = nn.Linear(widths[2], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def widenet(num_classes: int, in_channels: int = 3) -> WideNet:
    """64-192-256 channels: 90 MMACs and 1.5 M parameters at 32x32."""
    return WideNet((64, 192, 256), num_classes, in_channels)
