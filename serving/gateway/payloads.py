"""Request bodies to model inputs: images (PNG/JPEG) or raw uint8 tensors, validated against the model."""

from __future__ import annotations

import io
import json
import math

import numpy as np
from PIL import Image, UnidentifiedImageError

from serving.gateway.errors import BadImage, BadRequest, BadShape, UnsupportedMediaType
from serving.pixels import to_chw

IMAGE_TYPES = {"image/png", "image/jpeg"}
MAX_IMAGE_SIDE = 4096  # a small compressed body can claim a huge canvas: refuse before decoding pixels
TENSOR_TYPE = "application/octet-stream"
JSON_TYPE = "application/json"
SUPPORTED = sorted(IMAGE_TYPES | {TENSOR_TYPE, JSON_TYPE})


def to_batch(body: bytes, content_type: str, shape_header: str | None, dims: tuple[int, ...],
             max_batch: int) -> np.ndarray:
    """Decode a request body into a uint8 batch of shape (N, *dims)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind in IMAGE_TYPES:
        batch = decode_image(body, dims)
    elif kind == TENSOR_TYPE:
        batch = raw_tensor(body, shape_header, dims)
    elif kind == JSON_TYPE:
        batch = json_tensor(body, dims)
    else:
        raise UnsupportedMediaType(f"content type '{kind or '(none)'}' is not supported; send one of {SUPPORTED}")
    if not 1 <= len(batch) <= max_batch:
        raise BadShape(f"batch of {len(batch)} images; this model takes 1 to {max_batch} per request")
    return batch


def decode_image(body: bytes, dims: tuple[int, ...]) -> np.ndarray:
    """One PNG or JPEG as a batch of one for a model taking `dims` (C, H, W): converted to grayscale for one
    channel, RGB for three, and resized (bilinear) to H x W whatever its own size."""
    try:
        with Image.open(io.BytesIO(body), formats=["PNG", "JPEG"]) as img:
            if max(img.size) > MAX_IMAGE_SIDE:
                raise BadImage(f"image of {img.size[0]}x{img.size[1]} pixels exceeds {MAX_IMAGE_SIDE} on a side")
            return to_chw(img, dims)[None]
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise BadImage(f"the body is not a decodable PNG or JPEG image ({exc})") from exc


def is_image(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() in IMAGE_TYPES


def raw_tensor(body: bytes, shape_header: str | None, dims: tuple[int, ...]) -> np.ndarray:
    """Raw uint8 bytes in C order; X-Tensor-Shape gives N,C,H,W (or C,H,W for one image)."""
    if not shape_header:
        raise BadShape("a raw tensor needs an X-Tensor-Shape header, e.g. 'X-Tensor-Shape: 1,3,32,32'")
    try:
        shape = tuple(int(s) for s in shape_header.split(","))
    except ValueError:
        raise BadShape(f"X-Tensor-Shape '{shape_header}' is not a comma-separated list of integers") from None
    shape = _with_batch(shape, dims)
    expected = math.prod(shape)
    if len(body) != expected:
        raise BadShape(f"shape {list(shape)} of uint8 needs {expected} bytes, the body has {len(body)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def json_tensor(body: bytes, dims: tuple[int, ...]) -> np.ndarray:
    """{"inputs": nested lists of integers 0-255, shape N,C,H,W or C,H,W}."""
    try:
        data = np.asarray(json.loads(body)["inputs"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BadRequest(f"JSON body must be an object with an 'inputs' array ({exc})") from exc
    if data.dtype.kind not in "iu" or (data.size and (data.min() < 0 or data.max() > 255)):
        raise BadShape(f"inputs must be integers 0-255 (uint8 pixels), got dtype {data.dtype}")
    return np.ascontiguousarray(data.reshape(_with_batch(data.shape, dims)), dtype=np.uint8)


def _with_batch(shape: tuple[int, ...], dims: tuple[int, ...]) -> tuple[int, ...]:
    if tuple(shape) == dims:
        return (1, *dims)
    if len(shape) == len(dims) + 1 and tuple(shape[1:]) == dims:
        return tuple(shape)
    raise BadShape(f"tensor shape {list(shape)} does not match the model input [N, {', '.join(map(str, dims))}]")
