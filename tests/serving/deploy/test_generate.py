"""`invoke k8s` and the generator's choices: where models come from, which errors a user gets, what a rerun keeps."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from serving.deploy.generate import K8sOptions, generate
from serving.deploy.repository import DeployError
from serving.release import target_release
from tests.serving.deploy.conftest import write_repository
from tests.serving.deploy.k8s import base_objects, containers, one, overlay_objects
from tests.test_tasks import assert_one_line_error, invoke


def test_a_volume_claim_is_mounted_read_only_as_the_repository(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    generate(repo, out, K8sOptions("pvc:zoo-models"))
    deployment = one(base_objects(out), "Deployment", "triton")
    (container,) = containers(deployment)
    assert "--model-repository=/models" in container["args"]
    assert container["volumeMounts"] == [{"name": "models", "mountPath": "/models", "readOnly": True}]
    assert deployment["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"] == {
        "claimName": "zoo-models", "readOnly": True}


@pytest.mark.parametrize("source", ["", "/data/models", "s3://", "pvc:", "http://bucket/x"])
def test_a_bad_model_source_names_both_forms(repo: Path, tmp_path: Path, source: str) -> None:
    with pytest.raises(DeployError, match="s3://BUCKET/PATH.*pvc:CLAIM"):
        generate(repo, tmp_path / "k8s", K8sOptions(source))


def test_repositories_that_cannot_be_deployed_say_why(tmp_path: Path) -> None:
    odd = write_repository(tmp_path / "odd", {"x_fp32": ("m", (3, 32, 32), "backend:mybackend", 0, None)})
    with pytest.raises(DeployError, match="no backend for.*mybackend"):
        generate(odd, tmp_path / "k8s", K8sOptions("s3://b/r"))
    gpu = write_repository(tmp_path / "gpu", {"x_fp16": ("m", (3, 32, 32), "platform:tensorrt_plan", 0, None)})
    with pytest.raises(DeployError, match="needs a GPU"):
        generate(gpu, tmp_path / "k8s", K8sOptions("s3://b/r"))
    broken = write_repository(tmp_path / "broken")
    (broken / "wide_fp32" / "config.pbtxt").unlink()
    with pytest.raises(DeployError, match="config.pbtxt is missing"):
        generate(broken, tmp_path / "k8s", K8sOptions("s3://b/r"))
    assert not (tmp_path / "k8s" / "base").exists(), "nothing is written for a repository that fails"


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
    (["--models-from", "gs://b/r"], ["gs:// needs credentials", "--service-account", "--gcs-key-secret"]),
    (["--models-from", "s3://b/r", "--release", "24.10"], ["--release 24.10", "built for Triton"]),
])
def test_invoke_k8s_reports_a_user_error_in_one_line(repo: Path, tmp_path: Path, args: list[str],
                                                     words: list[str]) -> None:
    args = args if "--repo" in args else [*args, "--repo", str(repo)]
    assert_one_line_error(invoke("k8s", "--out", str(tmp_path / "k8s"), "--no-locust", *args), *words)


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


# --- the release, and the defects a first GPU or cluster run would hit (issue 34) ---------------------------------


def _plans_built_by(repo: Path, version: str) -> Path:
    from serving.manifest import read_manifest, write_manifest

    manifest = read_manifest(repo)
    entry = manifest.models["m_fp16_tensorrt"]
    manifest.models["m_fp16_tensorrt"] = replace(entry, runtime_info={"version": version})
    write_manifest(repo, manifest)
    return repo


def test_a_plan_of_another_tensorrt_is_refused_in_one_line(repo: Path, tmp_path: Path) -> None:
    _plans_built_by(repo, "11.4.0.106")
    release = target_release()
    proc = invoke("k8s", "--out", str(tmp_path / "k8s"), "--models-from", "s3://b/r", "--repo", str(repo),
                  "--no-locust")
    assert_one_line_error(proc, "m_fp16_tensorrt is a TensorRT 11.4.0.106 plan", f"Triton {release.name} runs "
                          f"TensorRT {release.tensorrt}", f"{release.tensorrt_wheel}=={release.tensorrt}")
    assert not (tmp_path / "k8s" / "base").exists()


def test_the_release_comes_from_the_manifest(tmp_path: Path) -> None:
    from serving.manifest import read_manifest, write_manifest
    from serving.release import release_named

    old = write_repository(tmp_path / "old", {"x_fp32": ("m", (3, 32, 32), "platform:onnxruntime_onnx", 0, None)})
    manifest = read_manifest(old)
    write_manifest(old, type(manifest)(manifest.models, manifest.cards, release_named("24.10").to_dict()))
    generate(old, tmp_path / "k8s", K8sOptions("s3://b/r"))
    (container,) = containers(one(base_objects(tmp_path / "k8s"), "Deployment", "triton"))
    assert container["image"] == "nvcr.io/nvidia/tritonserver:24.10-py3"
    write_manifest(old, type(manifest)(manifest.models, manifest.cards, None))
    with pytest.raises(DeployError, match="records no Triton release .*rebuild it, or give --release"):
        generate(old, tmp_path / "k8s", K8sOptions("s3://b/r"))
    generate(old, tmp_path / "again", K8sOptions("s3://b/r", release="26.02"))
    (container,) = containers(one(base_objects(tmp_path / "again"), "Deployment", "triton"))
    assert container["image"] == "nvcr.io/nvidia/tritonserver:26.02-py3"


def _gpu_affinity(out: Path) -> list[dict]:
    spec = one(overlay_objects(out, "gpu"), "Deployment", "triton")["spec"]["template"]["spec"]
    return spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]


def test_gpu_pods_go_only_to_gpus_their_plans_were_built_for(tmp_path: Path) -> None:
    models = {"a_fp16_tensorrt": ("m", (3, 32, 32), "platform:tensorrt_plan", 0, None),
              "b_fp32": ("m", (3, 32, 32), "platform:onnxruntime_onnx", 0, None)}
    repo = write_repository(tmp_path / "repo", models, plans=("8.6", "9.0"))
    generate(repo, tmp_path / "k8s", K8sOptions("s3://b/r"))
    assert _gpu_affinity(tmp_path / "k8s") == [
        {"matchExpressions": [{"key": "nvidia.com/gpu.compute.major", "operator": "In", "values": [major]},
                              {"key": "nvidia.com/gpu.compute.minor", "operator": "In", "values": [minor]}]}
        for major, minor in (("8", "6"), ("9", "0"))]
    cpu = one(overlay_objects(tmp_path / "k8s", "cpu"), "Deployment", "triton")["spec"]["template"]["spec"]
    assert "gpu.compute" not in str(cpu["affinity"]), "the cpu overlay keeps its own affinity"


def test_plans_for_no_common_gpu_are_refused(tmp_path: Path) -> None:
    repo = write_repository(tmp_path / "repo", plans=("9.0",))
    config = repo / "m_fp16_tensorrt" / "config.pbtxt"
    config.write_text(config.read_text().replace("9.0", "8.9").replace("sm90", "sm89"))
    second = {"n_fp16_tensorrt": ("m", (3, 32, 32), "platform:tensorrt_plan", 0, None)}
    write_repository(tmp_path / "other", second, plans=("9.0",))
    (repo / "n_fp16_tensorrt").mkdir()
    for name in ("config.pbtxt", "labels.txt"):
        (repo / "n_fp16_tensorrt" / name).write_bytes((tmp_path / "other" / "n_fp16_tensorrt" / name).read_bytes())
    from serving.manifest import read_manifest, write_manifest

    manifest, other = read_manifest(repo), read_manifest(tmp_path / "other")
    manifest.models.update(other.models)
    write_manifest(repo, manifest)
    with pytest.raises(DeployError, match="no GPU compute capability has a plan in every TensorRT model"):
        generate(repo, tmp_path / "k8s", K8sOptions("s3://b/r"))


def test_google_cloud_storage_reads_a_mounted_key_or_the_pods_identity(repo: Path, tmp_path: Path) -> None:
    generate(repo, tmp_path / "key", K8sOptions("gs://b/r", gcs_key_secret="gcs-key"))
    spec = one(base_objects(tmp_path / "key"), "Deployment", "triton")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["env"] == [{"name": "GOOGLE_APPLICATION_CREDENTIALS",
                                 "value": "/var/run/secrets/tritonzoo/gcs/key.json"}]
    assert {"name": "gcs-key", "mountPath": "/var/run/secrets/tritonzoo/gcs", "readOnly": True} in \
        container["volumeMounts"]
    assert spec["volumes"] == [{"name": "gcs-key", "secret": {"secretName": "gcs-key", "items": [
        {"key": "key.json", "path": "key.json"}]}}]
    generate(repo, tmp_path / "wi", K8sOptions("gs://b/r", service_account="triton-reader"))
    spec = one(base_objects(tmp_path / "wi"), "Deployment", "triton")["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "triton-reader" and "env" not in spec["containers"][0]


def test_monitors_can_be_left_out_where_the_operator_is_not_installed(repo: Path, tmp_path: Path) -> None:
    generate(repo, tmp_path / "with", K8sOptions("s3://b/r"))
    generate(repo, tmp_path / "without", K8sOptions("s3://b/r", monitors=False))
    kinds = {name: {o["kind"] for o in base_objects(tmp_path / name)} for name in ("with", "without")}
    assert "ServiceMonitor" in kinds["with"] and kinds["without"] == kinds["with"] - {"ServiceMonitor"}
    readme = (tmp_path / "with" / "README.md").read_text()
    assert "servicemonitors.monitoring.coreos.com" in readme and "--no-monitors" in readme


def test_the_adapter_values_keep_the_charts_other_rules(repo: Path, tmp_path: Path) -> None:
    import yaml

    generate(repo, tmp_path / "k8s", K8sOptions("s3://b/r"))
    values = yaml.safe_load((tmp_path / "k8s" / "prometheus-adapter" / "values.yaml").read_text())
    assert set(values["rules"]) == {"custom"}, "the chart's default rules stay on"
    assert "helm get values" in (tmp_path / "k8s" / "README.md").read_text()


def test_resources_planned_elsewhere_join_the_base_after_servings_own(repo: Path, tmp_path: Path) -> None:
    import yaml

    from serving.deploy.generate import plan_for
    from serving.deploy.kustomize import write_kustomize
    from serving.deploy.repository import read_repository

    repository = read_repository(repo)
    plan = plan_for(repository, K8sOptions("s3://b/r"))
    extra = {"extra.yaml": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}]}
    write_kustomize(repository, tmp_path / "k8s", plan, extra)
    resources = yaml.safe_load((tmp_path / "k8s" / "base" / "kustomization.yaml").read_text())["resources"]
    assert resources[-1] == "extra.yaml" and one(base_objects(tmp_path / "k8s"), "ConfigMap", "x")
    with pytest.raises(DeployError, match="triton.yaml"):
        write_kustomize(repository, tmp_path / "clash", plan, {"triton.yaml": []})
