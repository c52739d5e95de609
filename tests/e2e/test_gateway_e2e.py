"""The gateway in front of the real tritonserver: A/B, stickiness, shadow, canary, Triton restarts."""

from __future__ import annotations

import io
import math
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import tritonclient.http as httpclient
from PIL import Image

from build.card import ModelCard
from build.data import load_dataset
from build.pipeline import BuildOptions
from build.zoo import build_zoo
from tests.byo_models import subset_archive
from tests.conftest import CIFAR, MINI_ARCHIVE, PRE, full_data_spec
from tests.e2e.stack import ADMIN, SHIPPED_TEACHER, Stack, publish

pytestmark = pytest.mark.e2e
FOUR = ["airplane", "automobile", "bird", "cat"]
TENSOR = {"Content-Type": "application/octet-stream", "X-Tensor-Shape": "1,3,32,32"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("gateway")
    data = load_dataset(full_data_spec() or str(MINI_ARCHIVE), CIFAR, root / "cache")
    repo = root / "repo"
    teacher = SHIPPED_TEACHER if SHIPPED_TEACHER.exists() else None
    models = [publish(data, repo, "resnet18", root, teacher), publish(data, repo, "tiny", root)]
    publish_other_family(repo, root)
    stack = Stack(repo, root / "experiments.json")
    yield stack, data, repo, models, root
    stack.stop()


def publish_other_family(repo: Path, root: Path) -> str:
    """A user's own network at 48x48 with 4 classes, a family of its own in the same repository."""
    subset = subset_archive(MINI_ARCHIVE, FOUR, root / "four.tar.gz")
    card = ModelCard("mynet", "torch:tests.byo_models:small_net", (3, 48, 48), PRE.mean, PRE.std, data=str(subset),
                     args={"num_classes": 4})
    build_zoo([card], repo, ["fp32"], ["onnxruntime"], BuildOptions(verify_images=60, measure_speed=False, threads=1),
              log=lambda _: None)
    return "mynet_fp32"


def png(data, i: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(data.test.images[i].transpose(1, 2, 0)).save(out, format="PNG")
    return out.getvalue()


def test_an_ab_experiment_splits_across_models_of_different_families(world) -> None:
    """One image, two families: each arm resizes it to its own input and answers with its own classes."""
    stack, data, _, (big, _), _ = world
    put(stack, "families", {"arms": {big: 0.5, "mynet_fp32": 0.5}})
    labels: dict[str, set[str]] = {}
    for i in range(40):
        r = stack.client.post("/v1/experiments/families/predict", content=png(data, i),
                              headers={"Content-Type": "image/png"})
        assert r.status_code == 200, r.text
        labels.setdefault(r.headers["X-Experiment-Arm"], set()).update(
            p["label"] for p in r.json()["predictions"][0])
    assert set(labels) == {big, "mynet_fp32"}, labels
    assert labels["mynet_fp32"] <= set(FOUR) and labels[big] - set(FOUR), labels


def images(data, n: int) -> list[bytes]:
    return [data.test.images[i].tobytes() for i in range(n)]


def put(stack: Stack, name: str, body: dict) -> None:
    r = stack.client.put(f"/admin/experiments/{name}", json=body, headers=ADMIN)
    assert r.status_code in (200, 201), r.text


def test_ab_split_is_within_statistical_bounds_of_its_weights(world) -> None:
    stack, data, _, (big, small), _ = world
    put(stack, "ab", {"arms": {big: 0.7, small: 0.3}})
    n = 300
    arms = Counter(stack.client.post("/v1/experiments/ab/predict", content=body, headers=TENSOR)
                   .headers["X-Experiment-Arm"] for body in images(data, n))
    assert abs(arms[big] / n - 0.7) < 4 * math.sqrt(0.7 * 0.3 / n), arms


def test_sticky_keys(world) -> None:
    stack, data, _, (big, small), _ = world
    put(stack, "sticky", {"arms": {big: 1, small: 1}})
    body = images(data, 1)[0]

    def arm(key: str) -> str:
        return stack.client.post("/v1/experiments/sticky/predict", content=body,
                                 headers={**TENSOR, "X-Assignment-Key": key}).headers["X-Experiment-Arm"]

    first = {f"user-{i}": arm(f"user-{i}") for i in range(40)}
    assert len(set(first.values())) == 2
    assert all(arm(k) == a for k, a in first.items() for _ in range(2))


def test_shadow_leaves_primary_responses_byte_identical(world) -> None:
    stack, data, _, (big, small), _ = world
    put(stack, "plain", {"arms": {big: 1}})
    put(stack, "shadowed", {"arms": {big: 1}, "shadow": {"model": small, "fraction": 1.0}})
    for body in images(data, 30):
        plain = stack.client.post("/v1/experiments/plain/predict", content=body, headers=TENSOR)
        shadowed = stack.client.post("/v1/experiments/shadowed/predict", content=body, headers=TENSOR)
        assert plain.status_code == shadowed.status_code == 200
        assert plain.content.replace(b'"plain"', b'"shadowed"') == shadowed.content
    deadline = time.monotonic() + 30
    while True:
        stats = stack.client.get("/v1/experiments/shadowed").json()["shadow_stats"]
        if stats and stats["compared_images"] + stats["errors"] >= 30:
            break
        assert time.monotonic() < deadline, stats
        time.sleep(0.2)
    assert stats["errors"] == 0 and 0 <= stats["top1_agreement"] <= 1
    assert stats["mean_latency_diff_ms"] is not None
    assert "tritonzoo_gateway_shadow_agreement_total" in stack.client.get("/metrics").text


class Load:
    """Concurrent clients hammering an experiment; every non-200 is kept."""

    def __init__(self, stack: Stack, experiment: str, bodies: list[bytes], threads: int = 3) -> None:
        self.stop = threading.Event()
        self.failures: list[tuple[int, str]] = []
        self.arms: Counter[str] = Counter()
        self._lock = threading.Lock()
        args = (stack.url, experiment, bodies)
        self.threads = [threading.Thread(target=self._run, args=args) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self, url: str, experiment: str, bodies: list[bytes]) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            i = 0
            while not self.stop.is_set():
                body = bodies[i % len(bodies)]
                r = client.post(f"/v1/experiments/{experiment}/predict", content=body, headers=TENSOR)
                with self._lock:
                    if r.status_code == 200:
                        self.arms[r.headers["X-Experiment-Arm"]] += 1
                    else:
                        self.failures.append((r.status_code, r.text))
                i += 1

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


def wait_canary(stack: Stack, name: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while (status := stack.client.get(f"/v1/experiments/{name}").json())["canary"]["state"] == "ramping":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    return status


def test_canary_rollout_and_rollback_with_zero_failed_requests(world) -> None:
    stack, data, repo, (big, small), root = world
    candidate = publish(data, repo, "tiny_b", root)  # published while serving: not loaded yet
    put(stack, "rollout", {"arms": {small: 1}})
    load = Load(stack, "rollout", images(data, 20))
    try:
        r = stack.client.post("/admin/experiments/rollout/canary", headers=ADMIN,
                              json={"model": candidate, "steps": [0.25, 0.5, 1.0], "interval_s": 1.5})
        assert r.status_code == 202, r.text
        assert wait_canary(stack, "rollout")["arms"] == {candidate: 1.0}
        time.sleep(0.5)
        r = stack.client.post("/admin/experiments/rollout/canary", headers=ADMIN,
                              json={"model": small, "steps": [0.5, 1.0], "interval_s": 30})
        assert r.status_code == 202, r.text
        time.sleep(1.5)
        r = stack.client.post("/admin/experiments/rollout/canary/rollback", headers=ADMIN)
        assert r.json()["arms"] == {candidate: 1.0}
        time.sleep(0.5)
    finally:
        load.finish()
    assert load.failures == []
    assert load.arms[candidate] > 0 and load.arms[small] > 0


def test_triton_kill_gives_503_then_recovers_without_restarting_the_gateway(world) -> None:
    stack, data, _, (big, _), _ = world
    body = images(data, 1)[0]
    (pid,) = stack.triton_pids()
    os.kill(pid, signal.SIGKILL)
    saw_503, deadline = False, time.monotonic() + 180
    while True:
        r = stack.client.post(f"/v1/models/{big}/predict", content=body, headers=TENSOR, timeout=15)
        if r.status_code == 503:
            saw_503 = True
            assert r.headers["Retry-After"] and r.json()["error"]["reason"] == "triton_unavailable"
        elif r.status_code == 200 and saw_503:
            break
        assert time.monotonic() < deadline, "Triton did not come back"
        time.sleep(0.2)
    assert stack.process.poll() is None and stack.triton_pids() and stack.triton_pids() != [pid]


def test_bad_requests_on_the_real_stack(world) -> None:
    stack, data, _, (big, _), _ = world
    png = {"Content-Type": "image/png"}
    assert stack.client.post(f"/v1/models/{big}/predict", content=b"xx", headers=png).status_code == 400
    assert stack.client.post(f"/v1/models/{big}/predict", content=b"\0" * 10, headers=TENSOR).status_code == 400
    assert stack.client.put("/admin/experiments/x", json={"arms": {big: 1}}).status_code == 401
    assert stack.client.post(f"/v1/models/{big}/predict", content=images(data, 1)[0], headers=TENSOR).status_code == 200


def test_kserve_v2_pass_through(world) -> None:
    stack, data, _, (big, _), _ = world
    client = httpclient.InferenceServerClient(stack.url.removeprefix("http://"))
    inp = httpclient.InferInput("images", [2, 3, 32, 32], "UINT8")
    inp.set_data_from_numpy(data.test.images[:2], binary_data=True)
    out = client.infer(big, [inp], outputs=[httpclient.InferRequestedOutput("logits", binary_data=True)])
    direct = stack.client.post(f"/v1/models/{big}/predict?k=1", content=data.test.images[:2].tobytes(),
                               headers={**TENSOR, "X-Tensor-Shape": "2,3,32,32"}).json()
    assert list(out.as_numpy("logits").argmax(1)) == [p[0]["index"] for p in direct["predictions"]]
    assert client.is_server_ready()


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"outputs": []}',
                                  b'{"inputs": [{"name": "images", "shape": [1, -3, 32, 32], "datatype": "UINT8", '
                                  b'"data": [0]}]}',
                                  b'{"inputs": [{"name": "images", "shape": [1, 3, 32, 32], "datatype": "UINT8", '
                                  b'"data": [0, 1, 2]}]}',
                                  b'{"inputs": [{"name": "images", "shape": [1, 3, 32, 32], "datatype": "UINT8", '
                                  b'"data": ["a", "b"]}]}'],
                         ids=["not-json", "json-array", "no-inputs", "negative-dim", "short-data", "strings"])
def test_malformed_kserve_requests_get_a_400_and_triton_keeps_serving(world, body: bytes) -> None:
    stack, data, _, (big, _), _ = world
    r = stack.client.post(f"/v2/models/{big}/infer", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"], r.text
    assert stack.client.post(f"/v1/models/{big}/predict", content=images(data, 1)[0], headers=TENSOR).status_code == 200


def test_an_oversized_body_gets_a_413_that_urllib_can_read(world) -> None:
    """urllib sends its whole body before it reads: the gateway reads and discards it, then answers."""
    import urllib.error
    import urllib.request

    stack, _, _, (big, _), _ = world
    request = urllib.request.Request(f"{stack.url}/v1/models/{big}/predict", data=b"\0" * (64 * 1024 * 1024),
                                     headers={"Content-Type": "application/octet-stream"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=60)
    assert info.value.code == 413 and "exceeds the limit" in info.value.read().decode()
