"""Locust as separate pods: a master (web UI, coordinating) and workers (the users), in Locust's own distributed mode.

The locustfile, the modules it imports, the run's plan (loadtest.runs.plan's LoadPlan, as JSON) and the payloads travel
in ConfigMaps, read here as files: what runs in the cluster is the project's locustfile as it is on this disk, not a
copy baked into an image some time ago. Workers export their request metrics for Prometheus through a small plugin
(locust_exporter.py) on the pod's address. The objects are built with serving.deploy's helpers, beside serving's
Triton and gateway objects (loadtest/ may import serving/, never the reverse).
"""

from __future__ import annotations

import ast
import base64
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from loadtest.runs.command import LOAD_TARGETS, LOCUSTFILE, SHAPE_FILES, host_for, locust_command
from loadtest.runs.plan import LoadPlan
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
from serving.deploy.repository import DeployError, Repository

ROOT = Path(__file__).resolve().parents[2]  # the folder holding the loadtest package, in the source tree or installed
PLUGIN = Path(__file__).resolve().parent / "locust_exporter.py"
MASTER, WORKER = "locust-master", "locust-worker"
FILES, PAYLOADS = "locust-files", "locust-payloads"
FILES_DIR, PAYLOADS_DIR = "/opt/locust", "/opt/locust-payloads"
PLAN_FILE = "locust-plan.json"  # beside the files: the run's plan, which the locustfile reads (--tz-plan)
WEB_PORT, MASTER_PORT, EXPORTER_PORT = 8089, 5557, 9647
PAYLOAD_BUDGET = 700 * 1024  # bytes of images: the ConfigMap stays well under Kubernetes' 1 MiB
# (models, images per model) -> each model's test images at its input dims (loadtest.protocol.images.payloads_for,
# where tasks.py has data)
ImageLoader = Callable[[list[str], int], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class LocustPods:
    """The Locust pods: the plan every pod runs (its models, none: every CPU model of the repository; its shape and
    the shape's settings; its experiment), the user class the workers run and how many workers. Where the pods find
    the repository, the payloads and Triton's gRPC port, locust_objects fills in."""

    plan: LoadPlan
    user: str = "gateway"
    workers: int = 2

    def check(self) -> None:
        if self.user not in LOAD_TARGETS:
            raise DeployError(f"--locust-user takes one of {sorted(LOAD_TARGETS)}, not {self.user!r}")
        if self.workers < 1 or self.plan.constant.users < 1:
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
    wanted = [LOCUSTFILE, SHAPE_FILES[shape]]
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


def pod_plan(pods: LocustPods, site: Site, models: tuple[str, ...], images_file: str, images: int) -> LoadPlan:
    """What the locustfile reads (--tz-plan), shipped in the files' ConfigMap: every pod runs the same plan, the
    pods' own with the catalogue, the payloads and Triton's gRPC address of this site."""
    return replace(pods.plan, models=models, repo=gateway.CATALOGUE_DIR, images_file=images_file, images=images,
                   grpc=f"{triton.NAME}.{site.namespace}.svc:{triton.PORTS['grpc']}")


def locust_arguments(pods: LocustPods, site: Site) -> list[str]:
    """Locust's arguments in both pods (the container runs `locust`), before each pod's own."""
    gateway_url = f"http://{gateway.NAME}.{site.namespace}.svc:{gateway.PORT}"
    triton_url = f"http://{triton.NAME}.{site.namespace}.svc:{triton.PORTS['http']}"
    return locust_command(pods.user, host_for(pods.user, gateway_url, triton_url), f"{FILES_DIR}/{PLAN_FILE}",
                          pods.plan.shape, root=FILES_DIR, plugins=[PLUGIN.name], program=())


def chosen_models(repo: Repository, pods: LocustPods) -> tuple[str, ...]:
    """The plan's models, else every CPU model; each must be in the repository."""
    chosen = pods.plan.models or tuple(repo.cpu_models)
    unknown = [m for m in chosen if m not in repo.models]
    if unknown:
        raise DeployError(f"--locust-models {unknown} are not in {repo.path}; it has {sorted(repo.models)}")
    return tuple(chosen)


def locust_objects(site: Site, repo: Repository, image: str, pods: LocustPods,
                   load_images: ImageLoader | None) -> list[dict]:
    """The Locust master and workers in `image` (the project's), their Services and the workers' monitor, and the
    ConfigMaps of their files and payloads."""
    pods.check()
    if load_images is None:
        raise DeployError("the Locust pods need payload images: give --data (or $TRITONZOO_DATA), or --no-locust")
    models = chosen_models(repo, pods)
    count = payload_images({m: (repo.models[m].family, repo.models[m].input_dims) for m in models})
    arrays = dict(load_images(list(models), count))
    missing = [m for m in models if m not in arrays]
    if missing:
        raise DeployError(f"no payload images for {missing}")
    images_name, images_bytes = encode_payloads({m: arrays[m] for m in models})
    images = min(len(arrays[m]) for m in models)
    run_plan = pod_plan(pods, site, models, f"{PAYLOADS_DIR}/{images_name}", images).to_json()
    sources = {**locust_sources(pods.plan.shape), PLUGIN.name: PLUGIN.read_text(), PLAN_FILE: run_plan}
    if len(images_bytes) > PAYLOAD_BUDGET * 1.1:
        raise DeployError(f"payloads of {len(images_bytes)} bytes do not fit a ConfigMap: load fewer models or images")
    files = config_map(site, FILES, "load-generator", {file_key(k): v for k, v in sources.items()})
    payloads = config_map(site, PAYLOADS, "load-generator",
                          binary={images_name: base64.b64encode(images_bytes).decode()})
    common = locust_arguments(pods, site)
    volumes = [{"name": "files", "configMap": {"name": FILES, "items": [
                   {"key": file_key(k), "path": k} for k in sources]}},
               {"name": "payloads", "configMap": {"name": PAYLOADS}}, gateway.catalogue_volume(repo)]
    mounts = [{"name": "files", "mountPath": FILES_DIR, "readOnly": True},
              {"name": "payloads", "mountPath": PAYLOADS_DIR, "readOnly": True},
              {"name": "catalogue", "mountPath": gateway.CATALOGUE_DIR, "readOnly": True}]
    # Pods read these at start: new files or payloads roll them.
    annotations = {"tritonzoo/locust-sha256": digest(*sources.values(), images_bytes)}
    env = [{"name": "PYTHONPATH", "value": FILES_DIR}]

    def pod(name: str, args: list[str], ports: list[dict], probe: dict | None) -> dict:
        container = {"name": name, "image": image, "command": ["locust"], "args": args, "ports": ports,
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
                        pod(WORKER, worker_args, [port("metrics", EXPORTER_PORT)], None), pods.workers, annotations)
    master_service = service(site, MASTER, "load-generator", {"web": WEB_PORT, "master": MASTER_PORT})
    # Headless: Prometheus scrapes each worker pod, not one of them through a virtual address.
    worker_service = service(site, WORKER, "load-generator", {"metrics": EXPORTER_PORT}, headless=True)
    return [files, payloads, master, master_service, worker, worker_service,
            service_monitor(site, worker_service, "metrics")]
