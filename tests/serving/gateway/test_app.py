from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from serving.gateway.app import create_app, softmax_top_k
from serving.gateway.settings import GatewaySettings
from tests.serving.gateway.conftest import ADMIN

TENSOR = {"Content-Type": "application/octet-stream", "X-Tensor-Shape": "1,3,32,32"}


def image(value: int) -> bytes:
    return np.full((1, 3, 32, 32), value, np.uint8).tobytes()


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (3, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def test_catalogue_lists_models_with_metadata(client: TestClient) -> None:
    models = client.get("/v1/models").json()["models"]
    assert [m["model"] for m in models] == ["m_a", "m_b", "m_c"]
    assert models[0]["accuracy"] == {"top1": 0.9, "images": 100} and models[0]["parent"] == "teacher"
    assert client.get("/v1/models/m_b").json()["size_mb"] == 11.0


def test_predict_from_png_returns_top_k_and_the_answering_model(client: TestClient) -> None:
    r = client.post("/v1/models/m_a/predict?k=3", content=png(), headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.headers["X-Model"] == "m_a" and r.headers["X-Model-Version"] == "1"
    body = r.json()
    assert body["model"] == "m_a" and body["version"] == 1 and len(body["predictions"][0]) == 3
    assert body["predictions"][0][0]["label"] == "class3" and body["predictions"][0][0]["score"] > 0.5


def test_predict_from_raw_tensor_batch(client: TestClient) -> None:
    batch = np.stack([np.full((3, 32, 32), v, np.uint8) for v in (1, 2)])
    r = client.post("/v1/models/m_b/predict", content=batch.tobytes(),
                    headers={**TENSOR, "X-Tensor-Shape": "2,3,32,32"})
    assert [p[0]["index"] for p in r.json()["predictions"]] == [1, 2]


@pytest.mark.parametrize("path,kwargs,status,reason", [
    ("/v1/models/m_a/predict", {"content": b"x", "headers": {"Content-Type": "text/plain"}}, 415,
     "unsupported_content_type"),
    ("/v1/models/m_a/predict", {"content": b"\0" * 70000, "headers": TENSOR}, 413, "body_too_large"),
    ("/v1/models/m_a/predict", {"content": b"garbage", "headers": {"Content-Type": "image/jpeg"}}, 400,
     "undecodable_image"),
    ("/v1/models/m_a/predict", {"content": b"\0" * 10, "headers": TENSOR}, 400, "bad_tensor"),
    ("/v1/models/m_a/predict?k=99", {"content": image(1), "headers": TENSOR}, 400, "bad_request"),
    ("/v1/models/nope/predict", {"content": image(1), "headers": TENSOR}, 404, "not_found"),
    ("/v1/experiments/nope/predict", {"content": image(1), "headers": TENSOR}, 404, "not_found"),
])
def test_bad_requests_get_4xx_json_and_the_gateway_keeps_serving(client, path, kwargs, status, reason) -> None:
    r = client.post(path, **kwargs)
    assert r.status_code == status and r.json()["error"]["reason"] == reason and r.json()["error"]["message"]
    assert client.post("/v1/models/m_a/predict", content=image(4), headers=TENSOR).status_code == 200
    assert f'tritonzoo_gateway_errors_total{{reason="{reason}"}} 1.0' in client.get("/metrics").text


def test_triton_down_is_503_with_retry_after_and_recovers(client: TestClient, triton) -> None:
    triton.down = True
    r = client.post("/v1/models/m_a/predict", content=image(1), headers=TENSOR)
    assert r.status_code == 503 and r.headers["Retry-After"] == "2"
    assert client.get("/healthz").status_code == 200
    time.sleep(0.6)  # readiness is cached for half a second
    assert client.get("/readyz").status_code == 503
    triton.down = False
    time.sleep(0.6)
    assert client.get("/readyz").status_code == 200
    assert client.post("/v1/models/m_a/predict", content=image(1), headers=TENSOR).status_code == 200


def test_admin_needs_the_key(client: TestClient) -> None:
    body = {"arms": {"m_a": 1}}
    assert client.put("/admin/experiments/e", json=body).status_code == 401
    assert client.put("/admin/experiments/e", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.put("/admin/experiments/e", json=body, headers=ADMIN).status_code == 201
    bearer = {"Authorization": "Bearer admin-secret"}
    assert client.put("/admin/experiments/e", json=body, headers=bearer).status_code == 200


def test_admin_is_disabled_without_configured_keys(repo, tmp_path, triton) -> None:
    settings = GatewaySettings(repository=repo, state_file=tmp_path / "s.json", admin_keys=frozenset())
    with TestClient(create_app(settings, triton)) as c:
        r = c.put("/admin/experiments/e", json={"arms": {"m_a": 1}}, headers=ADMIN)
        assert r.status_code == 401 and "TRITONZOO_ADMIN_KEY" in r.json()["error"]["message"]


def test_inference_key_when_configured(repo, tmp_path, triton) -> None:
    settings = GatewaySettings(repository=repo, state_file=tmp_path / "s.json", api_keys=frozenset({"k1"}))
    with TestClient(create_app(settings, triton)) as c:
        assert c.post("/v1/models/m_a/predict", content=image(1), headers=TENSOR).status_code == 401
        keyed = {**TENSOR, "X-API-Key": "k1"}
        assert c.post("/v1/models/m_a/predict", content=image(1), headers=keyed).status_code == 200
        assert c.get("/v1/models").status_code == 200, "the catalogue stays open"


def test_invalid_weights_are_422(client: TestClient) -> None:
    r = client.put("/admin/experiments/e", json={"arms": {"m_a": -1}}, headers=ADMIN)
    assert r.status_code == 422 and r.json()["error"]["reason"] == "invalid_config"
    r = client.put("/admin/experiments/e", content=b"{nope", headers=ADMIN)
    assert r.status_code == 400


def test_experiment_split_sticky_pinned_and_counted(client: TestClient) -> None:
    client.put("/admin/experiments/e", json={"arms": {"m_a": 1, "m_b": 1}}, headers=ADMIN)
    def arm(key: str) -> str:
        r = client.post("/v1/experiments/e/predict", content=image(1), headers={**TENSOR, "X-Assignment-Key": key})
        return r.headers["X-Experiment-Arm"]

    arms = [arm(f"u{i}") for i in range(60)]
    assert set(arms) == {"m_a", "m_b"}
    again = [arm(f"u{i}") for i in range(60)]
    assert arms == again
    pinned = client.post("/v1/experiments/e/predict", content=image(1), headers={**TENSOR, "X-Variant": "m_b"})
    assert pinned.headers["X-Experiment-Arm"] == "m_b" and pinned.json()["experiment"] == "e"
    status = client.get("/v1/experiments/e").json()
    assert status["arm_status"]["m_a"]["ok"] + status["arm_status"]["m_b"]["ok"] == 121
    metrics = client.get("/metrics").text
    assert 'tritonzoo_gateway_request_seconds_bucket{arm="m_b",experiment="e",le="0.0005",model="m_b"}' in metrics
    assert 'tritonzoo_gateway_arm_weight{arm="m_a",experiment="e"} 0.5' in metrics


def test_shadow_mirrors_without_touching_the_primary_response(client: TestClient, triton) -> None:
    client.put("/admin/experiments/plain", json={"arms": {"m_a": 1}}, headers=ADMIN)
    client.put("/admin/experiments/shadowed", json={"arms": {"m_a": 1}, "shadow": {"model": "m_c"}}, headers=ADMIN)
    for value in range(10):
        plain = client.post("/v1/experiments/plain/predict", content=image(value), headers=TENSOR)
        shadowed = client.post("/v1/experiments/shadowed/predict", content=image(value), headers=TENSOR)
        assert plain.json()["predictions"] == shadowed.json()["predictions"]
    deadline = time.monotonic() + 5
    while (client.get("/v1/experiments/shadowed").json()["shadow_stats"] or {}).get("compared_images", 0) < 10:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stats = client.get("/v1/experiments/shadowed").json()["shadow_stats"]
    assert stats["top1_agreement"] == 0.5 and stats["errors"] == 0  # m_c disagrees on odd pixels
    assert triton.calls.count("m_c") == 10


def test_failing_shadow_never_fails_the_primary(client: TestClient, triton) -> None:
    triton.failing.add("m_c")
    client.put("/admin/experiments/e", json={"arms": {"m_a": 1}, "shadow": {"model": "m_c"}}, headers=ADMIN)
    assert all(client.post("/v1/experiments/e/predict", content=image(1), headers=TENSOR).status_code == 200
               for _ in range(5))


def test_experiments_survive_a_gateway_restart(settings, triton) -> None:
    with TestClient(create_app(settings, triton)) as c:
        c.put("/admin/experiments/e", json={"arms": {"m_a": 1, "m_b": 3}}, headers=ADMIN)
    with TestClient(create_app(settings, triton)) as c:
        assert c.get("/v1/experiments/e").json()["arms"] == {"m_a": 1.0, "m_b": 3.0}


def test_canary_ramps_to_promotion(client: TestClient, triton) -> None:
    triton.loaded.discard("m_c")
    client.put("/admin/experiments/e", json={"arms": {"m_a": 1}}, headers=ADMIN)
    r = client.post("/admin/experiments/e/canary", json={"model": "m_c", "steps": [0.5, 1.0], "interval_s": 0.05},
                    headers=ADMIN)
    assert r.status_code == 202 and "m_c" in triton.loaded
    deadline = time.monotonic() + 5
    while client.get("/v1/experiments/e").json()["canary"]["state"] == "ramping":
        client.post("/v1/experiments/e/predict", content=image(1), headers=TENSOR)
        assert time.monotonic() < deadline
    final = client.get("/v1/experiments/e").json()
    assert final["canary"]["state"] == "promoted" and final["arms"] == {"m_c": 1.0}


def test_canary_rolls_back_by_request_and_on_errors(client: TestClient, triton) -> None:
    client.put("/admin/experiments/e", json={"arms": {"m_a": 1}}, headers=ADMIN)
    client.post("/admin/experiments/e/canary", json={"model": "m_c", "interval_s": 60}, headers=ADMIN)
    r = client.post("/admin/experiments/e/canary/rollback", headers=ADMIN)
    assert r.json()["arms"] == {"m_a": 1.0} and r.json()["canary"]["state"] == "rolled_back"
    assert client.post("/admin/experiments/e/canary/rollback", headers=ADMIN).status_code == 400

    triton.failing.add("m_c")
    client.post("/admin/experiments/e/canary", json={"model": "m_c", "steps": [0.5, 1.0], "interval_s": 0.3},
                headers=ADMIN)
    deadline = time.monotonic() + 5
    while client.get("/v1/experiments/e").json()["canary"]["state"] == "ramping":
        client.post("/v1/experiments/e/predict", content=image(1), headers={**TENSOR, "X-Variant": "m_c"})
        assert time.monotonic() < deadline
    final = client.get("/v1/experiments/e").json()
    assert final["canary"]["state"] == "rolled_back" and "error rate" in final["canary"]["reason"]
    assert final["arms"] == {"m_a": 1.0}


def test_unload_refuses_models_in_use(client: TestClient, triton) -> None:
    client.put("/admin/experiments/e", json={"arms": {"m_a": 1}}, headers=ADMIN)
    assert client.post("/admin/models/m_a/unload", headers=ADMIN).status_code == 400
    r = client.post("/admin/models/m_b/unload", headers=ADMIN)
    assert r.status_code == 200 and r.json()["ready"] is False


def test_repository_api_is_not_passed_through(client: TestClient) -> None:
    r = client.post("/v2/repository/models/m_a/load")
    assert r.status_code == 404 and "admin API" in r.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/v2/models/../repository/models/m_a/unload", "/v2/repository/index",
                                  "/v2/systemsharedmemory/register", "/v2/models/m_a/trace/setting",
                                  "/v2/logging"])
def test_only_kserve_inference_and_metadata_pass_through(client: TestClient, path: str) -> None:
    r = client.post(path, content=b"{}")
    assert r.status_code == 404 and r.json()["error"]["reason"] == "not_found"


def test_image_bombs_and_other_formats_are_refused(client: TestClient) -> None:
    big = io.BytesIO()
    Image.new("RGB", (4097, 8)).save(big, format="PNG")
    r = client.post("/v1/models/m_a/predict", content=big.getvalue(), headers={"Content-Type": "image/png"})
    assert r.status_code == 400 and "exceeds 4096" in r.json()["error"]["message"]
    tiff = io.BytesIO()
    Image.new("RGB", (32, 32)).save(tiff, format="TIFF")
    r = client.post("/v1/models/m_a/predict", content=tiff.getvalue(), headers={"Content-Type": "image/png"})
    assert r.status_code == 400 and r.json()["error"]["reason"] == "undecodable_image"


@pytest.mark.parametrize("body", [{"model": "m_c", "steps": ["a"]}, {"model": "m_c", "interval_s": float("nan")},
                                  {"model": "m_c", "steps": [0.5]}, {"model": 3}, [1, 2]])
def test_bad_canary_plans_are_422(client: TestClient, body) -> None:
    client.put("/admin/experiments/e", json={"arms": {"m_a": 1}}, headers=ADMIN)
    r = client.post("/admin/experiments/e/canary", content=json.dumps(body), headers=ADMIN)
    assert r.status_code == 422, r.text


def test_experiment_cannot_change_during_a_canary(client: TestClient) -> None:
    client.put("/admin/experiments/e", json={"arms": {"m_a": 1}}, headers=ADMIN)
    client.post("/admin/experiments/e/canary", json={"model": "m_c", "interval_s": 60}, headers=ADMIN)
    assert client.delete("/admin/experiments/e", headers=ADMIN).status_code == 400
    assert client.put("/admin/experiments/e", json={"arms": {"m_b": 1}}, headers=ADMIN).status_code == 400
    assert client.post("/admin/experiments/e/canary", json={"model": "m_b"}, headers=ADMIN).status_code == 400


def test_restart_mid_canary_rejoins_the_schedule(settings, triton) -> None:
    """The ramp is a schedule in the experiments file: a restarted gateway computes the same step from the clock."""
    with TestClient(create_app(settings, triton)) as c:
        c.put("/admin/experiments/e", json={"arms": {"m_a": 1}}, headers=ADMIN)
        c.post("/admin/experiments/e/canary", json={"model": "m_c", "steps": [0.5, 1.0], "interval_s": 60},
               headers=ADMIN)
        assert c.get("/v1/experiments/e").json()["arms"] == {"m_a": 0.5, "m_c": 0.5}
    with TestClient(create_app(settings, triton)) as c:
        status = c.get("/v1/experiments/e").json()
        assert status["arms"] == {"m_a": 0.5, "m_c": 0.5} and status["canary"]["state"] == "ramping"


def test_a_ramp_left_by_an_older_gateway_is_interrupted_at_its_baseline(settings, triton) -> None:
    """Files written before schedules existed hold a mid-ramp state with no start: nothing can resume it."""
    settings.state_file.parent.mkdir(parents=True, exist_ok=True)
    settings.state_file.write_text(json.dumps({"e": {
        "name": "e", "arms": {"m_a": 0.5, "m_c": 0.5}, "shadow": None,
        "canary": {"model": "m_c", "state": "ramping", "weight": 0.5, "baseline": {"m_a": 1.0}, "steps": [0.5, 1.0],
                   "interval_s": 60}}}))
    with TestClient(create_app(settings, triton)) as c:
        status = c.get("/v1/experiments/e").json()
        assert status["arms"] == {"m_a": 1.0} and status["canary"]["state"] == "interrupted"


def test_odd_k_values_are_400(client: TestClient) -> None:
    for k in ("0", "²", "x", "-1"):
        r = client.post(f"/v1/models/m_a/predict?k={k}", content=image(1), headers=TENSOR)
        assert r.status_code == 400, k


def test_hot_routes_keep_405_and_answer_unexpected_errors_as_json(client: TestClient, triton) -> None:
    assert client.get("/v1/models/m_a/predict").status_code == 405

    async def broken(model, batch):
        raise RuntimeError("boom")

    triton.logits = broken
    r = client.post("/v1/models/m_a/predict", content=image(1), headers=TENSOR)
    assert r.status_code == 500 and r.json()["error"] == {"reason": "internal", "message": "RuntimeError: boom"}
    assert 'tritonzoo_gateway_errors_total{reason="internal"} 1.0' in client.get("/metrics").text


def test_scores_are_the_softmax_of_the_logits() -> None:
    logits = np.random.default_rng(0).normal(size=10) * 5
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    best = softmax_top_k(logits.tolist(), 3)
    assert [i for i, _ in best] == list(np.argsort(-probs)[:3])
    assert np.allclose([p for _, p in best], np.sort(probs)[::-1][:3])
