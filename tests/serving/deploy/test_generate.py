"""`invoke k8s` and the generator's choices: where models come from, which errors a user gets, what a rerun keeps."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from serving.deploy.generate import K8sOptions, generate
from serving.deploy.repository import DeployError
from tests.conftest import ROOT
from tests.serving.deploy.conftest import fake_images, write_repository
from tests.serving.deploy.k8s import base_objects, containers, one
from tests.test_tasks import assert_one_line_error, invoke


def test_a_volume_claim_is_mounted_read_only_as_the_repository(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    generate(repo, out, K8sOptions("pvc:zoo-models", locust=False), None)
    deployment = one(base_objects(out), "Deployment", "triton")
    (container,) = containers(deployment)
    assert "--model-repository=/models" in container["args"]
    assert container["volumeMounts"] == [{"name": "models", "mountPath": "/models", "readOnly": True}]
    assert deployment["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"] == {
        "claimName": "zoo-models", "readOnly": True}


@pytest.mark.parametrize("source", ["", "/data/models", "s3://", "pvc:", "http://bucket/x"])
def test_a_bad_model_source_names_both_forms(repo: Path, tmp_path: Path, source: str) -> None:
    with pytest.raises(DeployError, match="s3://BUCKET/PATH.*pvc:CLAIM"):
        generate(repo, tmp_path / "k8s", K8sOptions(source, locust=False), None)


def test_repositories_that_cannot_be_deployed_say_why(tmp_path: Path) -> None:
    odd = write_repository(tmp_path / "odd", {"x_fp32": ("m", (3, 32, 32), "backend:mybackend", 0, None)})
    with pytest.raises(DeployError, match="no backend for.*mybackend"):
        generate(odd, tmp_path / "k8s", K8sOptions("s3://b/r", locust=False), None)
    gpu = write_repository(tmp_path / "gpu", {"x_fp16": ("m", (3, 32, 32), "platform:tensorrt_plan", 0, None)})
    with pytest.raises(DeployError, match="needs a GPU"):
        generate(gpu, tmp_path / "k8s", K8sOptions("s3://b/r", locust=False), None)
    broken = write_repository(tmp_path / "broken")
    (broken / "wide_fp32" / "config.pbtxt").unlink()
    with pytest.raises(DeployError, match="config.pbtxt is missing"):
        generate(broken, tmp_path / "k8s", K8sOptions("s3://b/r", locust=False), None)
    assert not (tmp_path / "k8s" / "base").exists(), "nothing is written for a repository that fails"


def test_locust_needs_payloads_and_published_models(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="--data"):
        generate(repo, tmp_path / "k8s", K8sOptions("s3://b/r"), None)
    with pytest.raises(DeployError, match="not in"):
        generate(repo, tmp_path / "k8s", K8sOptions("s3://b/r", locust_models="nope"), fake_images)
    with pytest.raises(DeployError, match="--locust-user"):
        generate(repo, tmp_path / "k8s", K8sOptions("s3://b/r", locust_user="ftp"), fake_images)


def test_a_rerun_replaces_what_it_wrote_and_nothing_else(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    generate(repo, out, K8sOptions("s3://b/r"), fake_images)
    (out / "mine.txt").write_text("kept")
    assert (out / "base" / "locust.yaml").exists()
    generate(repo, out, K8sOptions("s3://b/r", locust=False), None)
    assert not (out / "base" / "locust.yaml").exists() and (out / "mine.txt").read_text() == "kept"
    assert "locust.yaml" not in (out / "base" / "kustomization.yaml").read_text()
    assert not list(out.glob(".staging-*"))


def test_invoke_k8s_writes_the_manifests(repo: Path, tmp_path: Path) -> None:
    proc = invoke("k8s", "--out", str(tmp_path / "k8s"), "--models-from", "s3://b/r", "--repo", str(repo),
                  "--no-locust", "--gateway-replicas", "3")
    assert proc.returncode == 0, proc.stderr
    assert "overlays/cpu" in proc.stdout
    assert one(base_objects(tmp_path / "k8s"), "Deployment", "gateway")["spec"]["replicas"] == 3


@pytest.mark.parametrize("args,words", [
    (["--models-from", "/local/folder"], ["--models-from", "s3://"]),
    (["--models-from", "s3://b/r", "--repo", "/nonexistent"], ["manifest.json not found"]),
    (["--models-from", "s3://b/r", "--min-replicas", "9"], ["--max-replicas"]),
])
def test_invoke_k8s_reports_a_user_error_in_one_line(repo: Path, tmp_path: Path, args: list[str],
                                                     words: list[str]) -> None:
    args = args if "--repo" in args else [*args, "--repo", str(repo)]
    assert_one_line_error(invoke("k8s", "--out", str(tmp_path / "k8s"), "--no-locust", *args), *words)


PLUGIN_CHECK = """
import sys, urllib.request
from types import SimpleNamespace
from serving.deploy import locust_exporter
listeners = []
events = SimpleNamespace(request=SimpleNamespace(add_listener=listeners.append))
options = SimpleNamespace(tz_public_exporter=sys.argv[1])
locust_exporter._init(SimpleNamespace(parsed_options=options, runner=SimpleNamespace(), events=events))
listeners[0](request_type="POST", name="m_fp32", response_time=1.5, exception=None)
print(urllib.request.urlopen("http://" + sys.argv[1] + "/metrics", timeout=5).read().decode())
"""


def test_the_locust_plugin_exports_on_the_address_it_is_given() -> None:
    """In a child process: importing locust monkey-patches the whole interpreter with gevent."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.run([sys.executable, "-c", PLUGIN_CHECK, f"127.0.0.1:{port}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'tritonzoo_locust_requests_total{name="m_fp32",outcome="success",request_type="POST"} 1.0' in proc.stdout


def test_a_model_whose_instances_are_on_a_gpu_is_loaded_by_the_gpu_overlay_only(tmp_path: Path) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb

    from serving.deploy.repository import read_repository

    repo = write_repository(tmp_path / "repo")
    path = repo / "wide_fp32" / "config.pbtxt"
    config = text_format.Parse(path.read_text(), pb.ModelConfig())
    config.instance_group.append(pb.ModelInstanceGroup(count=1, kind=pb.ModelInstanceGroup.KIND_GPU))
    path.write_text(text_format.MessageToString(config))
    repository = read_repository(repo)
    assert repository.gpu_models == ["m_fp16_tensorrt", "wide_fp32"]
    assert repository.cpu_models == ["m_fp32", "m_int8_openvino"]
