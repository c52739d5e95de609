"""Several model families behind one gateway: other input sizes, one channel, other classes; experiments, shadows and
canaries across families."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from serving.gateway.app import create_app
from serving.gateway.catalogue import Catalogue
from serving.gateway.settings import GatewaySettings
from serving.gateway.shadow import Primary, agreement, shadow_input
from tests.serving.gateway.conftest import ADMIN, GRAY, MODELS, WIDE, FakeTriton, as_triton, write_repository

MIXED = (*MODELS, "wide_fp32", "gray_fp32", "gray_int8")
FAMILY_OF = {"m_a": "m", "m_b": "m", "m_c": "m", "wide_fp32": "wide", "gray_fp32": "gray", "gray_int8": "gray"}


def png(value: int, size: tuple[int, int] = (40, 40)) -> bytes:
    """A uniform image whose red channel (and so, for these colours, its first pixel after any resize) is `value`."""
    buf = io.BytesIO()
    Image.new("RGB", size, (value, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


PNG = {"Content-Type": "image/png"}


@pytest.fixture
def mixed(tmp_path: Path, triton: FakeTriton):
    repo = write_repository(tmp_path / "mixed", MIXED)
    settings = GatewaySettings(repository=repo, state_file=tmp_path / "state.json",
                               admin_keys=frozenset({"admin-secret"}))
    with TestClient(create_app(settings, as_triton(triton))) as c:
        yield c


def labels_of(model: str) -> set[str]:
    return set({"m": "class0 class1 class2 class3 class4 class5 class6 class7 class8 class9", "wide": " ".join(
        WIDE.labels), "gray": " ".join(GRAY.labels)}[FAMILY_OF[model]].split())


def test_models_are_listed_flat_and_grouped_by_family(mixed: TestClient) -> None:
    listing = mixed.get("/v1/models").json()
    assert sorted(m["model"] for m in listing["models"]) == sorted(MIXED), "the flat list clients read is still there"
    by_name = {m["model"]: m for m in listing["models"]}
    assert by_name["gray_int8"]["family"] == "gray" and by_name["gray_int8"]["variant"] == "int8"
    assert by_name["gray_int8"]["input_dims"] == [1, 28, 28] and by_name["gray_int8"]["classes"] == 4
    families = listing["families"]
    assert sorted(families) == ["gray", "m", "wide"]
    assert families["gray"] == {"input_dims": [1, 28, 28], "classes": 4, "models": ["gray_fp32", "gray_int8"]}
    assert families["wide"] == {"input_dims": [3, 48, 48], "classes": 5, "models": ["wide_fp32"]}
    assert families["m"]["models"] == ["m_a", "m_b", "m_c"] and families["m"]["classes"] == 10


def test_each_model_is_sent_an_image_at_its_own_input(mixed: TestClient, triton: FakeTriton) -> None:
    for model, dims in (("m_a", (3, 32, 32)), ("wide_fp32", WIDE.dims), ("gray_fp32", GRAY.dims)):
        r = mixed.post(f"/v1/models/{model}/predict?k=3", content=png(7, size=(61, 37)), headers=PNG)
        assert r.status_code == 200, r.text
        name, batch = triton.batches[-1]
        assert name == model and batch.shape == (1, *dims)
        assert {p["label"] for p in r.json()["predictions"][0]} <= labels_of(model)
    luma = Image.new("RGB", (1, 1), (7, 0, 0)).convert("L").getpixel((0, 0))
    assert np.all(triton.batches[-1][1] == luma), "one channel: the image's grayscale"


def test_without_k_a_model_with_fewer_classes_than_the_default_answers_them_all(mixed: TestClient) -> None:
    r = mixed.post("/v1/models/gray_fp32/predict", content=png(5), headers=PNG)
    assert r.status_code == 200 and len(r.json()["predictions"][0]) == len(GRAY.labels) < 5  # the default k is 5
    assert len(mixed.post("/v1/models/m_a/predict", content=png(5), headers=PNG).json()["predictions"][0]) == 5


def test_a_cross_family_experiment_splits_traffic_across_input_sizes_and_class_counts(mixed: TestClient,
                                                                                   triton: FakeTriton) -> None:
    arms = {"m_a": 1, "wide_fp32": 1, "gray_fp32": 1}
    assert mixed.put("/admin/experiments/x", json={"arms": arms}, headers=ADMIN).status_code == 201
    seen: dict[str, int] = {}
    for i in range(60):
        triton.batches.clear()
        r = mixed.post("/v1/experiments/x/predict?k=10", content=png(i), headers={**PNG, "X-Assignment-Key": f"u{i}"})
        assert r.status_code == 200, r.text
        arm = r.headers["X-Experiment-Arm"]
        seen[arm] = seen.get(arm, 0) + 1
        body = r.json()
        assert body["model"] == arm and body["experiment"] == "x"
        assert len(body["predictions"][0]) == len(labels_of(arm)), "k=10 is capped at the arm's own class count"
        assert {p["label"] for p in body["predictions"][0]} == labels_of(arm)
        assert [(n, b.shape[1:]) for n, b in triton.batches] == [(arm, mixed_dims(arm))]
    assert set(seen) == set(arms), seen
    status = mixed.get("/v1/experiments/x").json()["arm_status"]
    assert {m: s["ok"] for m, s in status.items()} == seen and all(s["failed"] == 0 for s in status.values())
    # k is valid or not whatever the arm: up to the largest class count of any arm
    for i in range(10):
        r = mixed.post("/v1/experiments/x/predict?k=11", content=png(1), headers={**PNG, "X-Assignment-Key": f"u{i}"})
        assert r.status_code == 400 and "from 1 to 10" in r.json()["error"]["message"]
    # a client that knows its arm may send that arm's raw tensor
    tensor = {"Content-Type": "application/octet-stream", "X-Tensor-Shape": "1,1,28,28", "X-Variant": "gray_fp32"}
    r = mixed.post("/v1/experiments/x/predict", content=np.full((1, 1, 28, 28), 6, np.uint8).tobytes(), headers=tensor)
    assert r.status_code == 200 and r.json()["predictions"][0][0]["label"] == "digit2"  # 6 % 4 classes


def mixed_dims(model: str) -> tuple[int, int, int]:
    return {"m": (3, 32, 32), "wide": WIDE.dims, "gray": GRAY.dims}[FAMILY_OF[model]]


def wait_for_shadow(client: TestClient, experiment: str, images: int) -> dict:
    deadline = time.monotonic() + 5
    while True:
        stats = client.get(f"/v1/experiments/{experiment}").json()["shadow_stats"] or {}
        if stats.get("compared_images", 0) + stats.get("uncompared_images", 0) + stats.get("errors", 0) >= images:
            return stats
        assert time.monotonic() < deadline, stats
        time.sleep(0.05)


def test_a_shadow_of_another_family_gets_its_own_input_and_is_compared_by_class_name(mixed: TestClient,
                                                                                      triton: FakeTriton) -> None:
    body = {"arms": {"m_a": 1}, "shadow": {"model": "wide_fp32"}}
    mixed.put("/admin/experiments/s", json=body, headers=ADMIN)
    tensor = {"Content-Type": "application/octet-stream", "X-Tensor-Shape": "1,3,32,32"}
    for value in range(10):  # m_a answers class<value>, wide class<value % 5>: the same class for values 0-4
        assert mixed.post("/v1/experiments/s/predict", content=png(value), headers=PNG).status_code == 200
        raw = np.zeros((1, 3, 32, 32), np.uint8)
        raw[:, 0] = value
        assert mixed.post("/v1/experiments/s/predict", content=raw.tobytes(), headers=tensor).status_code == 200
    stats = wait_for_shadow(mixed, "s", 20)
    assert stats["errors"] == 0 and stats["compared_images"] == 20 and stats["top1_agreement"] == 0.5
    shadowed = [b for n, b in triton.batches if n == "wide_fp32"]
    assert len(shadowed) == 20 and all(b.shape == (1, *WIDE.dims) for b in shadowed)


def test_a_shadow_with_other_classes_never_agrees_by_index_alone(mixed: TestClient) -> None:
    mixed.put("/admin/experiments/g", json={"arms": {"m_a": 1}, "shadow": {"model": "gray_fp32"}}, headers=ADMIN)
    for value in range(4):  # m_a says class<v>, gray digit<v>: the same index, but not the same class
        assert mixed.post("/v1/experiments/g/predict", content=png(value), headers=PNG).status_code == 200
    stats = wait_for_shadow(mixed, "g", 4)
    assert stats["errors"] == 0 and stats["compared_images"] == 4 and stats["top1_agreement"] == 0.0


def test_a_canary_can_roll_out_a_model_of_another_family(mixed: TestClient, triton: FakeTriton) -> None:
    triton.loaded.discard("gray_int8")
    mixed.put("/admin/experiments/c", json={"arms": {"wide_fp32": 1}}, headers=ADMIN)
    r = mixed.post("/admin/experiments/c/canary", json={"model": "gray_int8", "steps": [0.5, 1.0], "interval_s": 0.05},
                   headers=ADMIN)
    assert r.status_code == 202
    deadline = time.monotonic() + 5
    while mixed.get("/v1/experiments/c").json()["canary"]["state"] == "ramping":
        assert mixed.post("/v1/experiments/c/predict", content=png(3), headers=PNG).status_code == 200
        assert time.monotonic() < deadline
    final = mixed.get("/v1/experiments/c").json()
    assert final["canary"]["state"] == "promoted" and final["arms"] == {"gray_int8": 1.0}
    assert mixed.post("/v1/experiments/c/predict", content=png(3), headers=PNG).json()["model"] == "gray_int8"


# --- the shadow's pieces ----------------------------------------------------------------------------------------


def test_agreement_by_index_within_a_family_and_by_name_across_families() -> None:
    ten, five = [f"class{i}" for i in range(10)], [f"class{i}" for i in range(5)]
    primary, shadow = np.array([0, 3, 7, 9]), np.array([0, 3, 2, 4])
    assert agreement(ten, ten, primary, shadow) == 2
    assert agreement((), (), primary, shadow) == 2, "no names on either side: one family, indices compare"
    assert agreement(ten, five, primary, shadow) == 2
    assert agreement(ten, ["cat", "dog", "class3", "x", "class9"], primary, np.array([1, 2, 0, 4])) == 2
    assert agreement(ten, [], primary, shadow) is None, "other classes, no names to match: not comparable"


def test_shadow_input_decodes_the_image_afresh_or_resizes_the_tensor(repo_dir: Path) -> None:
    catalogue = Catalogue(repo_dir)
    primary_model = catalogue.get("m_a")
    image = png(200, size=(64, 64))
    batch = np.full((1, 3, 32, 32), 200, np.uint8)
    same = Primary(primary_model, batch, np.array([0]), 0.001, image)
    assert asyncio.run(shadow_input(same, (3, 32, 32))) is batch, "the same dims: the primary's own batch"
    from_image = asyncio.run(shadow_input(same, GRAY.dims))
    from_tensor = asyncio.run(shadow_input(Primary(primary_model, batch, np.array([0]), 0.001), GRAY.dims))
    luma = Image.new("RGB", (1, 1), (200, 0, 0)).convert("L").getpixel((0, 0))
    assert from_image.shape == from_tensor.shape == (1, *GRAY.dims)
    assert np.all(from_image == luma) and np.all(from_tensor == 200)


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    return write_repository(tmp_path / "r", MIXED)
