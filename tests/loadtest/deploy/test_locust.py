"""The Locust pods' objects: valid against the Kubernetes schemas offline, wired to each other and to serving's
objects, shipping the project's locustfile, its modules, the plan and the payloads. No cluster runs here."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import numpy as np

from loadtest.deploy import locust
from loadtest.runs.command import USERS
from loadtest.runs.plan import LoadPlan
from tests.conftest import ROOT
from tests.serving.deploy.conftest import MODELS
from tests.serving.deploy.k8s import base_objects, containers, documents, find, one
from tests.serving.deploy.test_manifests import K8S_VERSIONS, SERVICE_MONITOR, pods_of


def test_the_locust_objects_validate_and_select_their_pods(generated: Path) -> None:
    objects = documents(generated / "base" / "locust.yaml")
    assert [o["kind"] for o in objects] == ["ConfigMap", "ConfigMap", "Deployment", "Service", "Deployment",
                                             "Service", "ServiceMonitor"]
    for obj in objects:
        if obj["kind"] == "ServiceMonitor":
            jsonschema.validate(obj, SERVICE_MONITOR)
            assert obj["metadata"]["labels"]["release"] == "kps"
            continue
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
    everything = base_objects(generated)
    assert objects == [o for o in everything if o["metadata"]["name"].startswith("locust-")], "listed in the base"
    for svc in find(objects, "Service"):
        (deployment,) = pods_of(everything, svc["spec"]["selector"])
        named = {p["name"] for c in containers(deployment) for p in c.get("ports", [])}
        assert deployment["metadata"]["name"] == svc["metadata"]["name"]
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= named
    volumes = one(objects, "Deployment", locust.MASTER)["spec"]["template"]["spec"]["volumes"]
    catalogue = next(v for v in volumes if v["name"] == "catalogue")
    gateway_volumes = one(everything, "Deployment", "gateway")["spec"]["template"]["spec"]["volumes"]
    assert catalogue in gateway_volumes, "the pods read the gateway's catalogue"


def test_locust_ships_the_locustfile_its_modules_and_payloads(generated: Path) -> None:
    from loadtest.protocol.images import load_payloads

    objects = base_objects(generated)
    files = one(objects, "ConfigMap", locust.FILES)["data"]
    shipped = {k for k in files}
    for key, text in files.items():
        for module in locust._loadtest_imports(text) if key.endswith(".py") else ():
            assert locust.file_key(module.replace(".", "/") + ".py") in shipped, f"{key} imports {module}"
    assert files["loadtest.locust.locustfile.py"] == (ROOT / "loadtest" / "locust" / "locustfile.py").read_text()
    assert "loadtest.locust.__init__.py" in files and "loadtest.runs.__init__.py" in files
    plan = LoadPlan.from_dict(json.loads(files[locust.PLAN_FILE]))  # the locustfile reads it as it stands
    assert files[locust.PLAN_FILE] == plan.to_json(), "a LoadPlan, whole"
    assert plan.grpc == "triton.tritonzoo.svc:8001" and plan.constant.users == 8 and plan.shape == "constant"
    assert plan.repo == "/etc/tritonzoo/catalogue" and plan.images_file.startswith(locust.PAYLOADS_DIR)
    assert set(plan.models) <= set(MODELS)
    (name, encoded), = one(objects, "ConfigMap", locust.PAYLOADS)["binaryData"].items()
    path = generated.parent / name
    path.write_bytes(base64.b64decode(encoded))
    images = load_payloads(path)
    cpu_models = {m for m, spec in MODELS.items() if "tensorrt" not in spec[2]}
    assert isinstance(images, dict) and set(images) == cpu_models
    assert all(images[m].shape[1:] == MODELS[m][1] and images[m].dtype == np.uint8 for m in images)


def test_locust_arguments_name_real_users_options_and_files(generated: Path) -> None:
    objects = base_objects(generated)
    sources = (ROOT / "loadtest" / "locust" / "locustfile.py").read_text() + locust.PLUGIN.read_text()
    defined = set(re.findall(r'"(--tz-[\w-]+)"', sources))
    for name in (locust.MASTER, locust.WORKER):
        deployment = one(objects, "Deployment", name)
        (container,) = containers(deployment)
        args = container["args"]
        assert args[args.index("-f") + 2] in USERS.values()
        used = {a for a in args if a.startswith("--tz-")}
        assert used <= defined, used - defined
        assert args[args.index("--tz-plan") + 1] == f"{locust.FILES_DIR}/{locust.PLAN_FILE}"
        mounted = {f"{m['mountPath']}/{i['path']}" for m in container["volumeMounts"]
                   for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == m["name"]
                   for i in v.get("configMap", {}).get("items", [])}
        assert set(args[args.index("-f") + 1].split(",")) <= mounted
    worker = containers(one(objects, "Deployment", locust.WORKER))[0]["args"]
    assert worker[worker.index("--master-host") + 1].startswith(f"{locust.MASTER}.")


def test_payload_budget_keeps_the_config_map_small() -> None:
    assert locust.payload_images({"a": ("m", (3, 32, 32)), "b": ("m", (3, 32, 32))}) == \
        locust.PAYLOAD_BUDGET // (3 * 32 * 32)
    assert locust.payload_images({"a": ("m", (3, 32, 32)), "b": ("w", (3, 48, 48))}) == \
        locust.PAYLOAD_BUDGET // (3 * 32 * 32 + 3 * 48 * 48)
    shared = {"a": np.zeros((4, 3, 8, 8), np.uint8), "b": np.zeros((4, 3, 8, 8), np.uint8)}
    name, raw = locust.encode_payloads(shared)
    assert name == "payloads.npy" and np.load(io.BytesIO(raw)).shape == (4, 3, 8, 8)
