"""Locust as separate pods: a master (web UI, coordinating) and workers (the users), in Locust's own distributed mode.

The locustfile, the modules it imports, the run's plan (loadtest.runs.plan's LoadPlan, as JSON) and the payloads travel
in ConfigMaps, read here as files: what runs in the cluster is the project's locustfile as it is on this disk, not a
copy baked into an image some time ago. Workers export their request metrics for Prometheus through a small plugin
(locust_exporter.py) on the pod's address.
"""

from __future__ import annotations

import ast
import base64
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from serving.deploy import gateway, triton
from serving.deploy.objects import (
    Site,
    config_map,
    deployment,
    digest,
    http_probe,
    port,
    restricted,
    service,
    service_monitor,
)
from serving.deploy.repository import DeployError

ROOT = Path(__file__).resolve().parents[2]  # beside serving/: the loadtest package, in the source tree or installed
PLUGIN = Path(__file__).resolve().parent / "locust_exporter.py"
MASTER, WORKER = "locust-master", "locust-worker"
FILES, PAYLOADS = "locust-files", "locust-payloads"
FILES_DIR, PAYLOADS_DIR = "/opt/locust", "/opt/locust-payloads"
PLAN_FILE = "locust-plan.json"  # beside the files: the run's plan, which the locustfile reads (--tz-plan)
WEB_PORT, MASTER_PORT, EXPORTER_PORT = 8089, 5557, 9647
LOCUSTFILE = "loadtest/locust/locustfile.py"
SHAPES = {"constant": "loadtest/locust/constant_shape.py", "step": "loadtest/locust/step_shape.py"}
# Which user class loads which endpoint: the gateway's /v1 predict, an A/B experiment through it, or Triton itself.
USERS = {"gateway": "GatewayUser", "experiment": "GatewayExperimentUser", "http": "TritonHttpUser",
         "grpc": "TritonGrpcUser"}
PAYLOAD_BUDGET = 700 * 1024  # bytes of images: the ConfigMap stays well under Kubernetes' 1 MiB


@dataclass(frozen=True)
class LocustPlan:
    image: str
    models: tuple[str, ...]
    payloads: Mapping[str, np.ndarray]  # model -> uint8 (N, C, H, W) test images at its input dims
    user: str = "gateway"
    shape: str = "constant"
    workers: int = 2
    users: int = 8
    seconds: float = 60.0
    rate: float = 0.0
    experiment: str = "ab"
    step: dict[str, float] = field(default_factory=dict)  # the step shape's settings, e.g. {"slo_ms": 50}

    def check(self) -> None:
        if self.user not in USERS:
            raise DeployError(f"--locust-user takes one of {sorted(USERS)}, not {self.user!r}")
        if self.shape not in SHAPES:
            raise DeployError(f"--locust-shape takes one of {sorted(SHAPES)}, not {self.shape!r}")
        if self.workers < 1 or self.users < 1:
            raise DeployError("--locust-workers and --locust-users must be at least 1")


def payload_images(sources: Mapping[str, tuple[str, tuple[int, ...]]], budget: int = PAYLOAD_BUDGET) -> int:
    """How many test images per model fit the payload ConfigMap, for models given as (family, input dims). Models
    all of one family at one input share one array (.npy); otherwise each model has its own (.npz)."""
    shared = len(set(sources.values())) == 1
    per_image = sum(int(np.prod(dims)) for _, dims in (set(sources.values()) if shared else sources.values()))
    count = budget // max(per_image, 1)
    if count < 16:
        raise DeployError(f"at most {count} images per model fit a ConfigMap for {len(sources)} models: load fewer "
                          "models at once (--locust-models)")
    return int(count)


def encode_payloads(payloads: Mapping[str, np.ndarray]) -> tuple[str, bytes]:
    """The images as loadtest's --tz-images-file reads them: one .npy for every model when they are all the same
    images (models of one card at one input), else a compressed .npz with one array per model."""
    arrays = list(payloads.values())
    buffer = io.BytesIO()
    if all(a.shape == arrays[0].shape and np.array_equal(a, arrays[0]) for a in arrays):
        np.save(buffer, arrays[0])
        return "payloads.npy", buffer.getvalue()
    np.savez_compressed(buffer, **dict(payloads))
    return "payloads.npz", buffer.getvalue()


def locust_sources(shape: str, root: Path = ROOT) -> dict[str, str]:
    """The locustfile, the shape and every loadtest module they import (at any depth, in functions too), by path
    relative to `root`, as text. serving.* modules come from the image, where the package is installed."""
    wanted = [LOCUSTFILE, SHAPES[shape]]
    found: dict[str, str] = {}
    while wanted:
        rel = wanted.pop()
        if rel in found:
            continue
        # every package on the way, with its __init__.py: loadtest/, loadtest/locust/, ...
        wanted += [f"{parent}/__init__.py" for parent in Path(rel).parents if parent.parts]
        path = root / rel
        if not path.exists():
            raise DeployError(f"{path} not found: the Locust pods run the project's locustfile and its modules")
        found[rel] = path.read_text()
        wanted += [f"{m.replace('.', '/')}.py" for m in _loadtest_imports(found[rel])]
    return dict(sorted(found.items()))


def _loadtest_imports(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("loadtest."):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("loadtest."))
    return names


def file_key(rel: str) -> str:
    """A ConfigMap key for a relative path (keys cannot hold '/'): loadtest/locust/locustfile.py ->
    loadtest.locust.locustfile.py."""
    return rel.replace("/", ".")


def load_plan(plan: LocustPlan, site: Site, images_file: str, images: int) -> str:
    """What the locustfile reads (--tz-plan), shipped in the files' ConfigMap: every pod runs the same plan. A JSON
    record of loadtest.runs.plan.LoadPlan (serving/ does not import loadtest): the fields set here, the rest its
    defaults; the locustfile refuses a field it does not know."""
    triton_host = f"{triton.NAME}.{site.namespace}.svc"
    record = {"models": list(plan.models), "repo": gateway.CATALOGUE_DIR, "images_file": images_file,
              "images": images, "grpc": f"{triton_host}:{triton.PORTS['grpc']}", "experiment": plan.experiment,
              "shape": plan.shape, "constant": {"users": plan.users, "seconds": plan.seconds, "rate": plan.rate},
              "step": dict(plan.step)}
    return json.dumps(record, indent=2)


def locust_arguments(plan: LocustPlan, site: Site) -> list[str]:
    files = [f"{FILES_DIR}/{LOCUSTFILE}", f"{FILES_DIR}/{SHAPES[plan.shape]}", f"{FILES_DIR}/{PLUGIN.name}"]
    gateway_url = f"http://{gateway.NAME}.{site.namespace}.svc:{gateway.PORT}"
    triton_host = f"{triton.NAME}.{site.namespace}.svc"
    host = gateway_url if plan.user in ("gateway", "experiment") else f"http://{triton_host}:{triton.PORTS['http']}"
    return ["-f", ",".join(files), USERS[plan.user], "--host", host, "--tz-plan", f"{FILES_DIR}/{PLAN_FILE}"]


def locust_objects(site: Site, plan: LocustPlan, catalogue_volume: dict) -> list[dict]:
    plan.check()
    missing = [m for m in plan.models if m not in plan.payloads]
    if missing:
        raise DeployError(f"no payload images for {missing}")
    images_name, images_bytes = encode_payloads({m: plan.payloads[m] for m in plan.models})
    images = min(len(a) for a in plan.payloads.values())
    run_plan = load_plan(plan, site, f"{PAYLOADS_DIR}/{images_name}", images)
    sources = {**locust_sources(plan.shape), PLUGIN.name: PLUGIN.read_text(), PLAN_FILE: run_plan}
    if len(images_bytes) > PAYLOAD_BUDGET * 1.1:
        raise DeployError(f"payloads of {len(images_bytes)} bytes do not fit a ConfigMap: load fewer models or images")
    files = config_map(site, FILES, "load-generator", {file_key(k): v for k, v in sources.items()})
    payloads = config_map(site, PAYLOADS, "load-generator",
                          binary={images_name: base64.b64encode(images_bytes).decode()})
    common = locust_arguments(plan, site)
    volumes = [{"name": "files", "configMap": {"name": FILES, "items": [
                   {"key": file_key(k), "path": k} for k in sources]}},
               {"name": "payloads", "configMap": {"name": PAYLOADS}}, catalogue_volume]
    mounts = [{"name": "files", "mountPath": FILES_DIR, "readOnly": True},
              {"name": "payloads", "mountPath": PAYLOADS_DIR, "readOnly": True},
              {"name": "catalogue", "mountPath": gateway.CATALOGUE_DIR, "readOnly": True}]
    # Pods read these at start: new files or payloads roll them.
    annotations = {"tritonzoo/locust-sha256": digest(*sources.values(), images_bytes)}
    env = [{"name": "PYTHONPATH", "value": FILES_DIR}]

    def pod(name: str, args: list[str], ports: list[dict], probe: dict | None) -> dict:
        container = {"name": name, "image": plan.image, "command": ["locust"], "args": args, "ports": ports,
                     "env": env, "volumeMounts": mounts, "securityContext": restricted(read_only_root=False),
                     "resources": {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}}
        if probe:
            container["readinessProbe"] = probe
        return {"containers": [container], "volumes": volumes}

    master_args = [*common, "--master", "--master-bind-port", str(MASTER_PORT), "--web-port", str(WEB_PORT)]
    worker_args = [*common, "--worker", "--master-host", f"{MASTER}.{site.namespace}.svc",
                   "--master-port", str(MASTER_PORT), "--tz-public-exporter", f"0.0.0.0:{EXPORTER_PORT}"]
    master = deployment(site, MASTER, "load-generator",
                        pod(MASTER, master_args, [port("web", WEB_PORT), port("master", MASTER_PORT)],
                            http_probe("/", "web", period_s=10)), 1, annotations)
    worker = deployment(site, WORKER, "load-generator",
                        pod(WORKER, worker_args, [port("metrics", EXPORTER_PORT)], None), plan.workers, annotations)
    master_service = service(site, MASTER, "load-generator", {"web": WEB_PORT, "master": MASTER_PORT})
    # Headless: Prometheus scrapes each worker pod, not one of them through a virtual address.
    worker_service = service(site, WORKER, "load-generator", {"metrics": EXPORTER_PORT}, headless=True)
    return [files, payloads, master, master_service, worker, worker_service,
            service_monitor(site, worker_service, "metrics")]
