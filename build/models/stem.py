"""Builtin networks at any input size: a strided stem in front of the CIFAR-shaped body for large inputs.

The builtin architectures are shaped for 32x32 images (3x3 stems, no early downsampling). Run as they are at 224x224
they would compute 49 times their CIFAR cost, more than an ImageNet ResNet-18 teacher, so a student could not be
smaller than its teacher. For inputs of 64 pixels and more, a stem halves the resolution until the body sees 32 to 63
pixels, as an ImageNet network's 7x7/2 convolution and max-pool do: one strided 3x3 convolution, then max-pools. At
32 pixels nothing changes, so networks and checkpoints made for CIFAR load as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

STEM_CHANNELS = 32
BODY_SIZE = 32  # the input size the builtin bodies are shaped for


def halvings(size: int) -> int:
    """How many times a `size`-pixel input is halved before the body: 0 below 64 pixels, 2 at 224 (56 pixels)."""
    return max(0, int(math.log2(size / BODY_SIZE)))


class DownsampleStem(nn.Sequential):
    def __init__(self, in_channels: int, times: int, out_channels: int = STEM_CHANNELS) -> None:
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
                                   nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
        layers += [nn.MaxPool2d(2) for _ in range(times - 1)]
        super().__init__(*layers)


def shaped_for(factory: Callable[..., nn.Module], num_classes: int, in_channels: int, size: int) -> nn.Module:
    """`factory`'s network for inputs of `size` pixels: the body alone, or a downsampling stem and the body."""
    times = halvings(size)
    if times == 0:
        return factory(num_classes, in_channels=in_channels)
    return nn.Sequential(DownsampleStem(in_channels, times), factory(num_classes, in_channels=STEM_CHANNELS))
