from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from serving.gateway.errors import BadImage, BadRequest, BadShape, UnsupportedMediaType
from serving.gateway.payloads import to_batch

DIMS = (3, 32, 32)


def encoded(fmt: str, size=(32, 32), color=(10, 20, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,ctype", [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_images_decode_to_one_nchw_uint8_image(fmt: str, ctype: str) -> None:
    batch = to_batch(encoded(fmt, size=(64, 48)), ctype, None, DIMS, 8)
    assert batch.shape == (1, 3, 32, 32) and batch.dtype == np.uint8
    assert abs(int(batch[0, 0, 5, 5]) - 10) <= 3 and abs(int(batch[0, 2, 5, 5]) - 30) <= 3


def test_raw_tensor_with_shape_header() -> None:
    data = np.arange(2 * 3 * 32 * 32, dtype=np.uint8).reshape(2, 3, 32, 32)
    assert np.array_equal(to_batch(data.tobytes(), "application/octet-stream", "2,3,32,32", DIMS, 8), data)
    single = to_batch(data[0].tobytes(), "application/octet-stream", "3,32,32", DIMS, 8)
    assert single.shape == (1, 3, 32, 32)


def test_json_tensor() -> None:
    data = np.full((1, 3, 32, 32), 7, np.uint8)
    body = json.dumps({"inputs": data.tolist()}).encode()
    assert np.array_equal(to_batch(body, "application/json", None, DIMS, 8), data)


@pytest.mark.parametrize("body,ctype,shape,error,match", [
    (b"abc", "text/plain", None, UnsupportedMediaType, "text/plain"),
    (b"abc", "", None, UnsupportedMediaType, r"\(none\)"),
    (b"not an image", "image/png", None, BadImage, "not a decodable PNG or JPEG"),
    (b"\0" * 3072, "application/octet-stream", None, BadShape, "X-Tensor-Shape"),
    (b"\0" * 3072, "application/octet-stream", "1,3,x,32", BadShape, "integers"),
    (b"\0" * 100, "application/octet-stream", "1,3,32,32", BadShape, "needs 3072 bytes"),
    (b"\0" * 2352, "application/octet-stream", "1,3,28,28", BadShape, r"shape \[1, 3, 28, 28\] does not match"),
    (b"\0" * 3072 * 9, "application/octet-stream", "9,3,32,32", BadShape, "1 to 8"),
    (b"{", "application/json", None, BadRequest, "'inputs'"),
    (json.dumps({"inputs": [[[0.5] * 32] * 32] * 3}).encode(), "application/json", None, BadShape, "integers 0-255"),
    (json.dumps({"inputs": [[[300] * 32] * 32] * 3}).encode(), "application/json", None, BadShape, "integers 0-255"),
])
def test_bad_bodies_name_the_problem(body, ctype, shape, error, match) -> None:
    with pytest.raises(error, match=match):
        to_batch(body, ctype, shape, DIMS, 8)


WIDE = (3, 48, 48)
GRAY = (1, 28, 28)


@pytest.mark.parametrize("fmt,ctype", [("PNG", "image/png"), ("JPEG", "image/jpeg")])
@pytest.mark.parametrize("size", [(32, 32), (64, 40), (48, 48)])
def test_images_are_resized_to_a_model_that_is_not_32x32(fmt: str, ctype: str, size: tuple[int, int]) -> None:
    batch = to_batch(encoded(fmt, size=size, color=(200, 100, 50)), ctype, None, WIDE, 8)
    assert batch.shape == (1, *WIDE) and batch.dtype == np.uint8
    assert all(abs(int(batch[0, c].mean()) - v) <= 3 for c, v in enumerate((200, 100, 50)))


def test_a_one_channel_model_gets_the_grayscale_of_a_colour_image() -> None:
    color = (90, 160, 30)
    batch = to_batch(encoded("PNG", size=(56, 40), color=color), "image/png", None, GRAY, 8)
    luma = Image.new("RGB", (1, 1), color).convert("L").getpixel((0, 0))  # ITU-R 601-2, as Pillow computes it
    assert batch.shape == (1, *GRAY) and np.all(batch == luma)


def test_a_grayscale_image_for_a_colour_model_fills_every_channel() -> None:
    buf = io.BytesIO()
    Image.new("L", (20, 20), 77).save(buf, format="PNG")
    batch = to_batch(buf.getvalue(), "image/png", None, WIDE, 8)
    assert batch.shape == (1, *WIDE) and np.all(batch == 77)


def test_tensors_for_a_one_channel_model() -> None:
    data = np.arange(3 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(3, *GRAY)
    assert np.array_equal(to_batch(data.tobytes(), "application/octet-stream", "3,1,28,28", GRAY, 8), data)
    body = json.dumps({"inputs": data[0].tolist()}).encode()
    assert np.array_equal(to_batch(body, "application/json", None, GRAY, 8), data[:1])
    with pytest.raises(BadShape, match=r"shape \[1, 3, 32, 32\] does not match the model input \[N, 1, 28, 28\]"):
        to_batch(b"\0" * 3072, "application/octet-stream", "1,3,32,32", GRAY, 8)
