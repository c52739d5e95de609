"""Images to a model's input: one definition of how pixels become (C, H, W) uint8, shared by the gateway (request
bodies), the shadow mirror (a batch for a model with other dims) and the load generators (payloads), so that
every path prepares an image the same way. Pillow and numpy only."""

from __future__ import annotations

import numpy as np
from PIL import Image

MODES = {1: "L", 3: "RGB"}  # grayscale for one channel (ITU-R 601-2 luma), else RGB


def check_dims(dims: tuple[int, ...]) -> tuple[int, int, int]:
    if len(dims) != 3 or dims[0] not in MODES or min(dims) < 1:
        raise ValueError(f"image input must be (C, H, W) with C = 1 or 3, got {tuple(dims)}")
    return int(dims[0]), int(dims[1]), int(dims[2])


def to_chw(img: Image.Image, dims: tuple[int, ...]) -> np.ndarray:
    """A decoded image as uint8 (C, H, W): converted to the channel count, resized (bilinear) when it differs."""
    channels, height, width = check_dims(dims)
    img = img.convert(MODES[channels])
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(img, dtype=np.uint8)
    return pixels.reshape(height, width, channels).transpose(2, 0, 1).copy()


def from_chw(image: np.ndarray) -> Image.Image:
    """A uint8 (C, H, W) array with 1 or 3 channels as a Pillow image."""
    channels = image.shape[0]
    if image.ndim != 3 or channels not in MODES:
        raise ValueError(f"expected a (C, H, W) image with 1 or 3 channels, got shape {image.shape}")
    hwc = np.ascontiguousarray(image.transpose(1, 2, 0), dtype=np.uint8)
    return Image.fromarray(hwc[:, :, 0] if channels == 1 else hwc, MODES[channels])


def refit(images: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """A uint8 (N, C, H, W) batch for a model that takes `dims`: unchanged when it already fits, else each image
    converted and resized as `to_chw` would have done from the original."""
    if tuple(images.shape[1:]) == tuple(dims):
        return images
    return np.stack([to_chw(from_chw(image), dims) for image in images]) if len(images) else \
        np.empty((0, *check_dims(dims)), np.uint8)
