from __future__ import annotations

import io
import itertools
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loadtest.locust.workload import Workload, load_workload
from loadtest.protocol.images import load_test_images, save_payloads
from loadtest.protocol.payloads import (
    ModelIO,
    experiment_payloads,
    gateway_image,
    gateway_tensor,
    triton_grpc,
    triton_http,
)
from loadtest.runs.plan import LoadPlan
from tests.conftest import CIFAR, MINI_ARCHIVE
from tests.serving.manifests import entry, write


def test_real_test_images_from_the_archive_interleave_classes() -> None:
    images = load_test_images(MINI_ARCHIVE, 25, CIFAR)
    assert images.shape == (25, 3, 32, 32) and images.dtype == np.uint8
    with tarfile.open(MINI_ARCHIVE) as tar:  # the second image is the first of the second class (automobile)
        member = tar.extractfile("cifar10-mini/test/automobile/0000.jpg")
        assert member is not None
        first = member.read()
    expected = np.asarray(Image.open(io.BytesIO(first)).convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(images[1], expected)


def test_folder_and_archive_give_the_same_images(tmp_path: Path) -> None:
    with tarfile.open(MINI_ARCHIVE) as tar:
        tar.extractall(tmp_path, filter="data")
    from_folder = load_test_images(tmp_path / "cifar10-mini", 12, CIFAR)
    assert np.array_equal(from_folder, load_test_images(MINI_ARCHIVE, 12, CIFAR))


def test_missing_source_or_no_test_split_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_test_images(tmp_path / "nope.tar.gz", 1, CIFAR)
    with pytest.raises(ValueError, match="no test images"):
        load_test_images(tmp_path, 1, CIFAR)


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


def test_gateway_images_are_lossless_pngs_of_the_payload() -> None:
    images = np.random.default_rng(0).integers(0, 256, (2, 1, 28, 28), dtype=np.uint8)
    (first, _) = gateway_image(images)
    assert first.headers == {"Content-Type": "image/png"}
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(first.body)))[None], images[0])


def test_an_experiment_is_sent_tensors_when_its_arms_share_an_input_else_pngs_of_the_largest() -> None:
    small, large = np.zeros((3, 1, 28, 28), np.uint8), np.full((3, 3, 48, 48), 9, np.uint8)
    same = experiment_payloads({"a": large, "b": large})
    assert same[0].headers["X-Tensor-Shape"] == "1,3,48,48" and same[0].body == large[0].tobytes()
    mixed = experiment_payloads({"gray": small, "wide": large})
    decoded = np.asarray(Image.open(io.BytesIO(mixed[0].body)))
    assert mixed[0].headers == {"Content-Type": "image/png"} and decoded.shape == (48, 48, 3) and np.all(decoded == 9)


def test_each_model_of_a_workload_is_sent_its_own_images() -> None:
    gray = np.arange(2 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(2, 1, 28, 28)
    rgb = np.full((2, 3, 32, 32), 5, np.uint8)
    work = Workload([ModelIO("g_fp32"), ModelIO("c_fp32", "x", "y")], {"g_fp32": gray, "c_fp32": rgb}, "h:1")
    sent = list(itertools.islice(work.cycle("grpc"), 6))
    assert {model.name for model, _ in sent} == {"g_fp32", "c_fp32"}, "models side by side"
    for model, request in sent:
        assert list(request.inputs[0].shape) == [1, *work.images[model.name].shape[1:]]
        assert request.raw_input_contents[0] in {image.tobytes() for image in work.images[model.name]}
    for model, payload in itertools.islice(work.cycle("gateway"), 4):
        assert payload.headers["X-Tensor-Shape"] == "1," + ",".join(map(str, work.images[model.name].shape[1:]))
    assert {p.headers["Content-Type"] for p in itertools.islice(work.experiment_cycle(), 3)} == {"image/png"}


def test_workloads_load_per_model_payload_files_or_the_models_own_data(tmp_path: Path) -> None:
    repo = write(tmp_path / "repo", [entry("c_fp32"), entry("g_fp32", dims=(1, 28, 28))])
    files = save_payloads({"c_fp32": np.ones((5, 3, 32, 32), np.uint8), "g_fp32": np.ones((5, 1, 28, 28), np.uint8)},
                          tmp_path / "images.npz")
    work = load_workload(LoadPlan(repo=str(repo), images_file=str(files), images=3), "http://h:1")
    assert [m.name for m in work.models] == ["c_fp32", "g_fp32"] and work.host == "h:1"
    assert {m: a.shape for m, a in work.images.items()} == {"c_fp32": (3, 3, 32, 32), "g_fp32": (3, 1, 28, 28)}
    from_data = load_workload(LoadPlan(repo=str(repo), models=("g_fp32",), data=str(MINI_ARCHIVE), images=3), None)
    assert from_data.images["g_fp32"].shape == (3, 1, 28, 28)
    with pytest.raises(SystemExit, match=r"no images for \['x_fp32'\]"):
        load_workload(LoadPlan(models=("x_fp32",), images_file=str(files), images=3), None)
    with pytest.raises(SystemExit, match="needs its repo, whose manifest gives each model's input shape"):
        load_workload(LoadPlan(models=("x_fp32",), data=str(MINI_ARCHIVE)), None)
