"""The generated manifests: valid against the Kubernetes schemas offline, and wired together (Services select their
pods, every named port exists, the HPA's metric is one the adapter rule exports). No cluster runs here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from serving.deploy import autoscaling
from serving.deploy.gateway import CATALOGUE
from serving.deploy.objects import MONITORING
from serving.release import target_release
from tests.conftest import ROOT
from tests.serving.deploy.conftest import MODELS
from tests.serving.deploy.k8s import base_objects, containers, documents, find, kustomize_build, one, overlay_objects

# The oldest release the manifests target (autoscaling/v2 and policy/v1 are GA from 1.23) and the newest the
# schemas know.
K8S_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
# A structural schema of the ServiceMonitor fields the generator writes (the Prometheus Operator's CRD is not in
# kubernetes-validate's schemas): written here from the CRD's documented fields, unknown fields refused.
DURATION = r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
LABEL_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
SERVICE_MONITOR = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": MONITORING}, "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name", "namespace"],
                     "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                                    "labels": LABEL_MAP}},
        "spec": {"type": "object", "required": ["selector", "endpoints"], "additionalProperties": False,
                 "properties": {
                     "selector": {"type": "object", "required": ["matchLabels"], "additionalProperties": False,
                                  "properties": {"matchLabels": LABEL_MAP}},
                     "namespaceSelector": {"type": "object", "additionalProperties": False,
                                           "properties": {"matchNames": {"type": "array",
                                                                         "items": {"type": "string"}},
                                                          "any": {"type": "boolean"}}},
                     "endpoints": {"type": "array", "minItems": 1, "items": {
                         "type": "object", "required": ["port"], "additionalProperties": False,
                         "properties": {"port": {"type": "string"}, "path": {"type": "string", "pattern": "^/"},
                                        "interval": {"type": "string", "pattern": DURATION}}}}}},
    },
}


def all_variants(out: Path) -> dict[str, list[dict]]:
    return {"base": base_objects(out), "cpu": overlay_objects(out, "cpu"), "gpu": overlay_objects(out, "gpu")}


def test_every_object_validates_against_the_kubernetes_schemas(generated: Path) -> None:
    variants = all_variants(generated)
    variants["prometheus-adapter"] = documents(generated / "prometheus-adapter" / "rules.yaml")
    kinds = set()
    for name, objects in variants.items():
        for obj in objects:
            kinds.add(obj["kind"])
            if obj["apiVersion"] == MONITORING:
                continue  # a CRD: checked structurally below
            for version in K8S_VERSIONS:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    pytest.fail(f"{name}: {obj['kind']} {obj['metadata']['name']} on {version}: {exc.message} "
                                f"at {list(exc.absolute_path)}")
    assert {"Namespace", "Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "ServiceMonitor"} <= kinds


def test_service_monitors_follow_the_operators_schema(generated: Path) -> None:
    monitors = find(base_objects(generated), "ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {"triton", "gateway"}
    for monitor in monitors:
        jsonschema.validate(monitor, SERVICE_MONITOR)
        assert monitor["metadata"]["labels"]["release"] == "kps", "the labels Prometheus selects monitors by"
    bad = {**monitors[0], "spec": {**monitors[0]["spec"], "endpoints": [{"port": "metrics", "interval": "5 s"}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SERVICE_MONITOR)


def pods_of(objects: list[dict], selector: dict[str, str]) -> list[dict]:
    """The Deployments whose pods carry every label of `selector`."""
    return [d for d in find(objects, "Deployment")
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]


@pytest.mark.parametrize("variant", ["base", "cpu", "gpu"])
def test_services_select_their_pods_and_name_ports_they_have(generated: Path, variant: str) -> None:
    objects = all_variants(generated)[variant]
    for svc in find(objects, "Service"):
        (deployment,) = pods_of(objects, svc["spec"]["selector"])
        assert deployment["metadata"]["name"] == svc["metadata"]["name"]
        named = {p["name"] for c in containers(deployment) for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in named, f"{svc['metadata']['name']} targets port {p['targetPort']}"
    for deployment in find(objects, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("variant", ["base", "cpu", "gpu"])
def test_every_port_a_probe_or_monitor_names_exists(generated: Path, variant: str) -> None:
    objects = all_variants(generated)[variant]
    for deployment in find(objects, "Deployment"):
        for container in containers(deployment):
            named = {p["name"] for p in container.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe in container:
                    assert container[probe]["httpGet"]["port"] in named, (container["name"], probe)
    for monitor in find(objects, "ServiceMonitor"):
        services = [s for s in find(objects, "Service")
                    if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
        assert len(services) == 1, monitor["metadata"]["name"]
        ports = {p["name"] for p in services[0]["spec"]["ports"]}
        assert all(e["port"] in ports for e in monitor["spec"]["endpoints"])
        assert monitor["spec"]["namespaceSelector"]["matchNames"] == [services[0]["metadata"]["namespace"]]


def test_probes_are_tritons_health_endpoints(generated: Path) -> None:
    (container,) = containers(one(base_objects(generated), "Deployment", "triton"))
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]


def test_volumes_and_config_maps_are_wired(generated: Path) -> None:
    objects = base_objects(generated)
    maps = {m["metadata"]["name"]: m for m in find(objects, "ConfigMap")}
    for deployment in find(objects, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            assert {m["name"] for m in container.get("volumeMounts", [])} <= volumes.keys()
        for volume in volumes.values():
            if "configMap" in volume:
                held = maps[volume["configMap"]["name"]]
                keys = {**held.get("data", {}), **held.get("binaryData", {})}
                assert {i["key"] for i in volume["configMap"].get("items", [])} <= keys.keys()


def test_the_hpa_metric_is_one_the_adapter_rule_exports(generated: Path) -> None:
    hpa = one(base_objects(generated), "HorizontalPodAutoscaler", "triton")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "triton"}
    assert "replicas" not in one(base_objects(generated), "Deployment", "triton")["spec"], "the HPA owns the count"
    (metric,) = hpa["spec"]["metrics"]
    (config_map,) = documents(generated / "prometheus-adapter" / "rules.yaml")
    (rule,) = yaml.safe_load(config_map["data"]["config.yaml"])["rules"]
    series = rule["seriesQuery"].split("{")[0]
    assert re.sub(rule["name"]["matches"], rule["name"]["as"], series) == metric["pods"]["metric"]["name"]
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}, "per pod, as a Pods metric asks"
    helm = yaml.safe_load((generated / "prometheus-adapter" / "values.yaml").read_text())
    assert helm["rules"]["custom"] == [rule]
    # The rule reads Triton's own counters, by the names the load reports read from a real Triton in the e2e tests.
    promql = (ROOT / "loadtest" / "metrics" / "promql.py").read_text()
    for name in re.findall(r"\b(nv_inference_\w+)\{", rule["metricsQuery"]):
        assert name in promql, name


def test_queue_target_follows_the_models_batching_delay(repo: Path, tmp_path: Path) -> None:
    from serving.deploy.repository import read_repository

    repository = read_repository(repo)
    assert autoscaling.queue_target(repository, autoscaling.ScalePlan()) == 2 * max(m[3] for m in MODELS.values())
    assert autoscaling.queue_target(repository, autoscaling.ScalePlan(queue_target_us=5000)) == 5000


def test_triton_runs_the_repositorys_release_and_the_gpu_overlay_adds_gpu_models(generated: Path) -> None:
    variants = all_variants(generated)
    (base,) = containers(one(variants["base"], "Deployment", "triton"))
    assert base["image"] == target_release().image, "the release the manifest records"
    # The image's entrypoint (driver compatibility set-up) must run: tritonserver is its argument, not the command.
    assert "command" not in base and base["args"][0] == "tritonserver"
    assert "--model-repository=s3://zoo-bucket/repository" in base["args"]
    loads = {variant: {a.split("=", 1)[1] for a in containers(one(objects, "Deployment", "triton"))[0]["args"]
                       if a.startswith("--load-model=")} for variant, objects in variants.items()}
    assert loads["base"] == loads["cpu"] == {"m_fp32", "m_int8_openvino", "wide_fp32"}
    assert loads["gpu"] == loads["cpu"] | {"m_fp16_tensorrt"}
    (gpu,) = containers(one(variants["gpu"], "Deployment", "triton"))
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    (cpu,) = containers(one(variants["cpu"], "Deployment", "triton"))
    assert cpu["resources"]["limits"]["cpu"] == cpu["resources"]["requests"]["cpu"] and "nvidia.com/gpu" not in \
        cpu["resources"]["limits"]


def test_memory_comes_from_the_builds_measured_peaks(generated: Path) -> None:
    (base,) = containers(one(base_objects(generated), "Deployment", "triton"))
    # 1024 MiB for the server; m_fp32 300 and m_int8_openvino 120 measured; wide_fp32 unmeasured counts as 300.
    assert base["resources"]["requests"]["memory"] == f"{(1024 + 300 + 120 + 300 + 63) // 64 * 64}Mi"


def test_the_catalogue_map_mounts_as_a_repository_the_gateway_reads(generated: Path, tmp_path: Path) -> None:
    from serving.gateway.catalogue import Catalogue

    objects = base_objects(generated)
    data = one(objects, "ConfigMap", CATALOGUE)["data"]
    volumes = one(objects, "Deployment", "gateway")["spec"]["template"]["spec"]["volumes"]
    volume = next(v for v in volumes if v["name"] == "catalogue")
    for item in volume["configMap"]["items"]:
        path = tmp_path / "mounted" / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data[item["key"]])
    catalogue = Catalogue(tmp_path / "mounted")
    assert set(catalogue.models) == set(MODELS)
    assert all(len(m.labels) == 10 for m in catalogue.models.values())


@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_kustomize_builds_each_overlay_as_the_tests_read_it(generated: Path, overlay: str) -> None:
    built = kustomize_build(generated / "overlays" / overlay)
    if built is None:
        pytest.skip("no kubectl with kustomize v4+ on PATH (Debian's kubernetes-client 1.20 has v2): the overlays "
                    "were checked through this test's own JSON-patch reading only")
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(built, key=key) == sorted(overlay_objects(generated, overlay), key=key)


def test_gateway_arguments_are_ones_the_gateway_takes(generated: Path) -> None:
    from serving.gateway.__main__ import parser, settings_from

    objects = base_objects(generated)
    (container,) = containers(one(objects, "Deployment", "gateway"))
    assert container["command"] == ["python", "-m", "serving.gateway"]
    settings = settings_from(parser().parse_args(container["args"]))
    assert settings.read_only_experiments and settings.prometheus_url.startswith("http://")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(settings.state_file.parent) in mounts and str(settings.repository) in mounts
    experiments = one(objects, "ConfigMap", "gateway-experiments")["data"][settings.state_file.name]
    assert json.loads(experiments) == {}
    volumes = one(objects, "Deployment", "gateway")["spec"]["template"]["spec"]["volumes"]
    experiments_volume = next(v for v in volumes if v.get("configMap", {}).get("name") == "gateway-experiments")
    assert "items" not in experiments_volume["configMap"], "mounted whole, so the kubelet updates it in place"
    triton_service = one(objects, "Service", "triton")
    ports = {p["name"]: p["port"] for p in triton_service["spec"]["ports"]}
    assert settings.triton_http.endswith(f":{ports['http']}") and settings.triton_grpc.endswith(f":{ports['grpc']}")
    assert settings.triton_http.startswith(f"triton.{triton_service['metadata']['namespace']}.svc")


def test_the_store_credential_variants_validate_too(repo: Path, tmp_path: Path) -> None:
    """The Google key file mount, the service account and --no-monitors, in both overlays, against the schemas."""
    from serving.deploy.generate import K8sOptions, generate

    options = K8sOptions("gs://b/r", gcs_key_secret="gcs-key", service_account="triton-reader",
                         monitors=False)
    generate(repo, tmp_path / "k8s", options)
    for overlay in ("cpu", "gpu"):
        for obj in overlay_objects(tmp_path / "k8s", overlay):
            assert obj["apiVersion"] != MONITORING
            for version in K8S_VERSIONS:
                kubernetes_validate.validate(obj, version, strict=True)
