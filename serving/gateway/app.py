"""The gateway's ASGI application: Starlette, with the inference routes as raw ASGI in front (asgi.py)."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from serving.gateway.asgi import HotRoutes, RawHeaders, RawRequest, RawRoute, Reply
from serving.gateway.canary import ArmHealth, CanaryController
from serving.gateway.catalogue import Catalogue, ModelInfo, family_summary
from serving.gateway.errors import ApiError, BadRequest, NotFound, TooLarge, Unauthorized, Unavailable
from serving.gateway.experiments import CanaryPlan, Experiment, ExperimentStore, parse_experiment
from serving.gateway.kserve_check import check_infer_request
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.payloads import is_image, to_batch
from serving.gateway.settings import GatewaySettings
from serving.gateway.shadow import Primary, ShadowTraffic
from serving.gateway.triton_client import TritonInference

log = logging.getLogger("tritonzoo.gateway")
# KServe v2 paths the gateway forwards: health, server and model metadata, config, inference. Nothing else
# (repository/model control, shared memory, tracing, logging) gets through.
KSERVE_PATHS = re.compile(r"/v2(/health/(live|ready))?|/v2/models/[\w.-]+(/versions/\d+)?(/ready|/config|/infer)?")
# Bodies go through byte for byte; the pool asks for no compression, so responses come back plain.
REQUEST_HEADERS = ("content-type", "inference-header-content-length", "content-encoding")
RESPONSE_HEADERS = ("content-type", "inference-header-content-length", "content-encoding")
JSON_CONTENT_TYPE = (b"content-type", b"application/json")
JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))  # as JSONResponse's


class Gateway:
    """State shared by the routes. Built in the app's lifespan, inside the server's event loop."""

    def __init__(self, settings: GatewaySettings, triton: TritonInference | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.catalogue = Catalogue(settings.repository)
        self.store = ExperimentStore(settings.state_file, lambda: self.catalogue.models, settings.read_only_experiments)
        self.metrics = GatewayMetrics()
        self.health = ArmHealth(count=self.metrics.count_arm)
        self.triton = triton or TritonInference(settings.triton_grpc, settings.triton_http,
                                                retry_after_s=settings.retry_after_s)
        self.shadow = ShadowTraffic(self.triton, self.catalogue, self.metrics, settings.shadow_max_in_flight)
        # The clock is wall time: replicas share nothing else, and a canary's schedule is read against it.
        self.canary = CanaryController(self.store, self.catalogue, self.triton, self.health, self.on_weights, clock,
                                       settings.prometheus_url, settings.prometheus_settle_s,
                                       on_schedule=self.metrics.prepare_arm)
        self._ready_at, self._ready = 0.0, False
        self.canary.sync_weights()

    def on_weights(self, experiment: Experiment, previous: dict[str, float]) -> None:
        self.metrics.set_weights(experiment.name, experiment.arms, previous)

    async def close(self) -> None:
        await self.shadow.drain()
        await self.canary.close()
        await self.triton.close()

    async def watch(self, tick_s: float = 0.1) -> None:
        """Until cancelled: read the experiments file again every watch interval (every replica does, so all run
        what it declares), check the Triton replicas' health, and check canary steps as they end."""
        next_read = next_check = 0.0
        check_health = getattr(self.triton, "check_health", None)
        while True:
            try:
                now = time.monotonic()
                if now >= next_read:
                    next_read = now + self.settings.watch_interval_s
                    if self.store.reload_if_changed():
                        log.info("experiments reloaded from %s (sha256 %s)", self.store.path, self.store.digest[:12])
                if check_health is not None and now >= next_check:  # several Triton replicas: which are healthy
                    next_check = now + self.settings.health_interval_s
                    await check_health()
                await self.canary.tick()
            except Exception:  # a bad tick must not stop the next ones
                log.exception("experiments watch")
            await asyncio.sleep(tick_s)

    async def triton_ready(self) -> bool:
        """Cached for half a second: readiness probes must not hammer Triton."""
        now = time.monotonic()
        if now - self._ready_at > 0.5:
            self._ready, self._ready_at = await self.triton.ready(), now
            self.metrics.triton_up.set(1 if self._ready else 0)
        return self._ready

    # --- auth and bodies -------------------------------------------------------------------------
    def require(self, headers: Mapping[str, str], keys: frozenset[str], what: str) -> None:
        if what == "admin" and not keys:
            raise Unauthorized("the admin API is disabled: start the gateway with TRITONZOO_ADMIN_KEY set")
        if not keys:
            return
        given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        if not any(hmac.compare_digest(given.encode(), k.encode()) for k in keys):
            raise Unauthorized(f"{what} requests need a valid API key in the X-API-Key header")

    async def body(self, headers: Mapping[str, str], stream: AsyncIterator[bytes]) -> bytes:
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            await self.drain(stream, int(declared))
            raise TooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
        chunks, size = [], 0
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                await self.drain(stream, None)
                raise TooLarge(f"body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def drain(self, stream: AsyncIterator[bytes], declared: int | None) -> None:
        """Discard what the client is still sending, up to a bound: beyond it, the 413 goes out at once and the
        connection closes under a client still sending."""
        bound = self.settings.max_drain_bytes
        if declared is not None and declared > bound:
            return
        drained = 0
        async for chunk in stream:
            drained += len(chunk)
            if drained > bound:
                return

    # --- inference -------------------------------------------------------------------------------
    async def infer(self, request: RawRequest, model: ModelInfo, experiment: Experiment | None) -> Reply:
        k = min(top_k(request, self.settings.default_top_k, self.k_limit(model, experiment)), class_count(model))
        content_type = request.headers.get("content-type", "")
        body = await self.body(request.headers, request.stream())
        args = (body, content_type, request.headers.get("x-tensor-shape"), model.dims, model.max_batch_size)
        # Image decoding is CPU work: keep it off the event loop. Raw tensors are a cheap view.
        image = is_image(content_type)
        batch = await run_in_threadpool(to_batch, *args) if image else to_batch(*args)
        arm = (experiment.name if experiment else "", model.name)
        start = time.perf_counter()
        try:
            logits = await self.triton.logits(model, batch)
        except ApiError:
            self.health.record(*arm, success=False)
            raise
        elapsed = time.perf_counter() - start
        self.health.record(*arm, success=True)
        answer = prediction_body(model, logits, k)
        if experiment is not None:
            answer["experiment"] = experiment.name
            self.shadow.mirror(experiment, Primary(model, batch, logits.argmax(1), elapsed, body if image else None))
        headers = [JSON_CONTENT_TYPE, (b"x-model", model.name.encode("latin-1")),
                   (b"x-model-version", str(model.version).encode())]
        return 200, JSON_ENCODER.encode(answer).encode(), headers

    def k_limit(self, model: ModelInfo, experiment: Experiment | None) -> int:
        """The largest k a request may ask for. Through an experiment, whose arms may have different class counts,
        it is the largest of any arm's, so that whether a request is valid never depends on the arm it drew; each
        arm then answers with at most its own classes."""
        arms = [self.catalogue.models[m] for m in experiment.arms if m in self.catalogue.models] if experiment else []
        return max(class_count(m) for m in [model, *arms])


def class_count(model: ModelInfo) -> int:
    return max(1, len(model.labels))


def top_k(request: RawRequest, default: int, limit: int) -> int:
    """The k asked for, from 1 to `limit`; when none is asked for, the default, but no more than `limit` (a model
    may have fewer classes than the default k)."""
    raw = request.query_params.get("k")
    if raw is None:
        return max(1, min(default, limit))
    try:
        k = int(raw)
    except ValueError:
        k = 0
    if not 1 <= k <= limit:
        raise BadRequest(f"k must be an integer from 1 to {limit}, got '{raw}'")
    return k


def prediction_body(model: ModelInfo, logits: np.ndarray, k: int) -> dict:
    labels = model.labels
    return {
        "model": model.name, "variant": model.variant, "runtime": model.runtime, "version": model.version,
        "predictions": [
            [{"label": labels[i] if i < len(labels) else str(i), "index": i, "score": round(p, 6)}
             for i, p in softmax_top_k(row, k)]
            for row in logits.tolist()
        ],
    }


def softmax_top_k(row: list[float], k: int) -> list[tuple[int, float]]:
    """The k best classes of one row of logits, best first, with their softmax probabilities.

    Plain Python: for a classifier's few classes numpy's per-call overhead, not the arithmetic, is the cost,
    the more so right after a Triton call, with cold caches.
    """
    best = sorted(range(len(row)), key=row.__getitem__, reverse=True)[:k]
    top = row[best[0]]
    total = sum([math.exp(x - top) for x in row])
    return [(i, math.exp(row[i] - top) / total) for i in best]


# --- routes -------------------------------------------------------------------------------------

def gw(request: Request | RawRequest) -> Gateway:
    return request.app.state.gateway


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "alive"})


async def readyz(request: Request) -> Response:
    if await gw(request).triton_ready():
        return JSONResponse({"status": "ready"})
    raise Unavailable("Triton is not ready", gw(request).settings.retry_after_s)


async def list_models(request: Request) -> Response:
    """Every model (the flat list clients already read), and the same models grouped by family: each family's
    input dims, class count and model names."""
    catalogue = gw(request).catalogue
    families = {name: family_summary(models) for name, models in catalogue.families().items()}
    return JSONResponse({"models": [m.summary() for m in catalogue.models.values()], "families": families})


async def show_model(request: Request) -> Response:
    return JSONResponse(gw(request).catalogue.get(request.path_params["model"]).summary())


async def predict_model(request: RawRequest) -> Reply:
    g = gw(request)
    g.require(request.headers, g.settings.api_keys, "inference")
    model = g.catalogue.get(request.path_params["model"])
    return await timed(g, model, None, None, g.infer(request, model, None))


async def predict_experiment(request: RawRequest) -> Reply:
    g = gw(request)
    g.require(request.headers, g.settings.api_keys, "inference")
    experiment = g.canary.current(request.path_params["name"])
    key = request.headers.get("x-assignment-key") or request.query_params.get("key")
    arm = experiment.assign(key, request.headers.get("x-variant"))
    model = g.catalogue.get(arm)
    status, body, headers = await timed(g, model, experiment.name, arm, g.infer(request, model, experiment))
    headers.append((b"x-experiment-arm", arm.encode("latin-1")))
    return status, body, headers


async def timed(g: Gateway, model: ModelInfo, experiment: str | None, arm: str | None, work) -> Reply:
    labels = (model.name, experiment or "", arm or "")
    start = time.perf_counter()
    try:
        response = await work
    except ApiError as exc:
        g.metrics.requests.labels(*labels, str(exc.status)).inc()
        raise
    g.metrics.answered(labels, time.perf_counter() - start)
    return response


async def list_experiments(request: Request) -> Response:
    g = gw(request)
    store = g.store
    source = {"path": str(store.path), "sha256": store.digest, "loaded_at": store.loaded_at,
              "read_only": store.read_only, "reload_errors": store.reload_errors}
    return JSONResponse({"experiments": [experiment_status(g, e) for e in g.canary.all_current()], "source": source})


async def show_experiment(request: Request) -> Response:
    g = gw(request)
    return JSONResponse(experiment_status(g, g.canary.current(request.path_params["name"])))


def experiment_status(g: Gateway, experiment: Experiment) -> dict:
    arms = {}
    for model, weight in experiment.arms.items():
        ok, failed = g.health.snapshot(experiment.name, model)
        arms[model] = {"weight": weight, "ok": ok, "failed": failed}
    shadow = g.shadow.stats.get(experiment.name)
    return {**experiment.to_json(), "arm_status": arms, "shadow_stats": shadow.as_dict() if shadow else None}


async def json_body(g: Gateway, request: Request) -> object:
    try:
        return json.loads(await g.body(request.headers, request.stream()) or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"the body must be JSON ({exc})") from exc


async def put_experiment(request: Request) -> Response:
    g = gw(request)
    g.require(request.headers, g.settings.admin_keys, "admin")
    name = request.path_params["name"]
    experiment = parse_experiment(name, await json_body(g, request), g.catalogue.models)
    g.store.require_writable()
    previous = g.canary.current(name) if name in g.store.experiments else None
    if previous:
        refuse_during_canary(previous)
    g.store.put(experiment)
    g.canary.sync_weights()
    return JSONResponse(experiment.to_json(), status_code=200 if previous else 201)


def refuse_during_canary(experiment: Experiment) -> None:
    if experiment.ramping:
        raise BadRequest(f"experiment '{experiment.name}' has a canary in progress; promote or roll it back first")


async def delete_experiment(request: Request) -> Response:
    g = gw(request)
    g.require(request.headers, g.settings.admin_keys, "admin")
    name = request.path_params["name"]
    g.store.require_writable()
    refuse_during_canary(g.canary.current(name))
    g.store.delete(name)
    g.canary.sync_weights()
    return Response(status_code=204)


async def start_canary(request: Request) -> Response:
    g = gw(request)
    g.require(request.headers, g.settings.admin_keys, "admin")
    plan = CanaryPlan.parse(await json_body(g, request))
    experiment = await g.canary.start(request.path_params["name"], plan)
    return JSONResponse(experiment.to_json(), status_code=202)


async def finish_canary(request: Request) -> Response:
    g = gw(request)
    g.require(request.headers, g.settings.admin_keys, "admin")
    name, action = request.path_params["name"], request.path_params["action"]
    if action not in ("promote", "rollback"):
        raise NotFound(f"unknown canary action '{action}': use promote or rollback")
    experiment = g.canary.promote(name) if action == "promote" else g.canary.rollback(name)
    return JSONResponse(experiment.to_json())


async def model_control(request: Request) -> Response:
    """Load or unload a model in Triton (explicit model control), behind the admin key."""
    g = gw(request)
    g.require(request.headers, g.settings.admin_keys, "admin")
    name, action = request.path_params["model"], request.path_params["action"]
    if action == "load":
        g.catalogue.reload(name)
        await g.triton.load(name)
    elif action == "unload":
        users = [e.name for e in g.canary.all_current() if name in e.models()]
        if users:
            raise BadRequest(f"'{name}' still serves experiments {users}; change them first")
        await g.triton.unload(name)
    else:
        raise NotFound(f"unknown model action '{action}': use load or unload")
    return JSONResponse({"model": name, "action": action, "ready": await g.triton.model_ready(name)})


async def metrics(request: Request) -> Response:
    return Response(generate_latest(gw(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def kserve_pass_through(request: RawRequest) -> Reply:
    """KServe v2 inference and metadata, forwarded to Triton's HTTP endpoint as they are."""
    g = gw(request)
    path = request.path
    if ".." in path or not KSERVE_PATHS.fullmatch(path):
        raise NotFound(f"{path} is not exposed by the gateway (model control is in the admin API)")
    if request.method == "POST":
        g.require(request.headers, g.settings.api_keys, "inference")
    # Header names are lowercase on both sides: ASGI servers and the pool's parser lowercase them.
    headers = {k: v for k, v in request.headers.items() if k in REQUEST_HEADERS}
    query = f"?{request.query}" if request.query else ""
    body = await g.body(request.headers, request.stream())
    if request.method == "POST" and path.endswith("/infer"):
        check_infer_request(body, request.headers)  # Triton answers some client errors with a 500
    upstream = await g.triton.forward(request.method, path + query, body, headers)
    out: RawHeaders = [(k.encode(), v.encode("latin-1")) for k, v in upstream.headers.items() if k in RESPONSE_HEADERS]
    return upstream.status, upstream.body, out


async def api_error(request: Request, exc: ApiError) -> Response:
    gw(request).metrics.errors.labels(exc.reason).inc()
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
    gw(request).metrics.errors.labels("client_disconnected").inc()
    return Response(status_code=499)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path)
    gw(request).metrics.errors.labels("internal").inc()
    return JSONResponse({"error": {"reason": "internal", "message": f"{exc.__class__.__name__}: {exc}"}},
                        status_code=500)


# Inference: raw ASGI, served ahead of Starlette's middleware (asgi.HotRoutes).
HOT_ROUTES = [
    Route("/v1/models/{model}/predict", RawRoute(predict_model), methods=["POST"]),
    Route("/v1/experiments/{name}/predict", RawRoute(predict_experiment), methods=["POST"]),
    Route("/v2", RawRoute(kserve_pass_through), methods=["GET"]),
    Route("/v2/{path:path}", RawRoute(kserve_pass_through), methods=["GET", "POST"]),
]
ROUTES = [
    *HOT_ROUTES,
    Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics),
    Route("/v1/models", list_models), Route("/v1/models/{model}", show_model),
    Route("/v1/experiments", list_experiments), Route("/v1/experiments/{name}", show_experiment),
    Route("/admin/experiments/{name}", put_experiment, methods=["PUT"]),
    Route("/admin/experiments/{name}", delete_experiment, methods=["DELETE"]),
    Route("/admin/experiments/{name}/canary", start_canary, methods=["POST"]),
    Route("/admin/experiments/{name}/canary/{action}", finish_canary, methods=["POST"]),
    Route("/admin/models/{model}/{action}", model_control, methods=["POST"]),
]


def create_app(settings: GatewaySettings, triton: TritonInference | None = None,
               clock: Callable[[], float] = time.time) -> HotRoutes:
    @asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.gateway = Gateway(settings, triton, clock)
        watcher = asyncio.create_task(app.state.gateway.watch())
        try:
            yield
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await app.state.gateway.close()

    # Each handler takes the exception class it is registered for.
    handlers: dict[type[Exception], Callable[[Request, Any], Awaitable[Response]]] = {
        ApiError: api_error, ClientDisconnect: client_gone, Exception: unexpected_error}
    app = Starlette(routes=ROUTES, lifespan=lifespan, exception_handlers=handlers)
    return HotRoutes(app, HOT_ROUTES)
