from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loadtest.images import load_test_images
from loadtest.payloads import ModelIO, gateway_tensor, triton_grpc, triton_http
from tests.conftest import MINI_ARCHIVE


def test_real_test_images_from_the_archive_interleave_classes() -> None:
    images = load_test_images(MINI_ARCHIVE, 25)
    assert images.shape == (25, 3, 32, 32) and images.dtype == np.uint8
    with tarfile.open(MINI_ARCHIVE) as tar:  # the second image is the first of the second class (automobile)
        first = tar.extractfile("cifar10-mini/test/automobile/0000.jpg").read()
    import io
    expected = np.asarray(Image.open(io.BytesIO(first)).convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(images[1], expected)


def test_folder_and_archive_give_the_same_images(tmp_path: Path) -> None:
    with tarfile.open(MINI_ARCHIVE) as tar:
        tar.extractall(tmp_path, filter="data")
    assert np.array_equal(load_test_images(tmp_path / "cifar10-mini", 12), load_test_images(MINI_ARCHIVE, 12))


def test_missing_source_or_no_test_split_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_test_images(tmp_path / "nope.tar.gz", 1)
    with pytest.raises(ValueError, match="no test images"):
        load_test_images(tmp_path, 1)


def test_payloads_carry_the_image_bytes() -> None:
    images = np.arange(2 * 3 * 32 * 32, dtype=np.uint64).astype(np.uint8).reshape(2, 3, 32, 32)
    http = triton_http(ModelIO("m", "x", "y"), images, "127.0.0.1:8000")[1]
    head, _, body = http.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert lines[0] == "POST /v2/models/m/infer HTTP/1.1" and headers["Host"] == "127.0.0.1:8000"
    assert int(headers["Content-Length"]) == len(body)
    n = int(headers["Inference-Header-Content-Length"])
    assert json.loads(body[:n])["inputs"][0]["name"] == "x" and body[n:] == images[1].tobytes()
    gw = gateway_tensor(images)[0]
    assert gw.headers["X-Tensor-Shape"] == "1,3,32,32" and gw.body == images[0].tobytes()
    req = triton_grpc(ModelIO("m", "x", "y"), images)[1]
    assert req.model_name == "m" and list(req.inputs[0].shape) == [1, 3, 32, 32] and req.outputs[0].name == "y"
    assert req.raw_input_contents[0] == images[1].tobytes()
