"""Run the real `tritonserver` from the nvidia-pytriton wheel: backends, readiness, clean shutdown."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import signal
import site
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from serving.cache import default_cache_dir
from serving.processes import log_tail, spawn, stop_group

BACKENDS_SRC = Path(__file__).resolve().parent / "backends"


class TritonError(RuntimeError):
    """Triton could not be started, or did not become ready."""


class TritonStalled(TritonError):
    """Triton stopped making progress while loading its models."""


@dataclass(frozen=True)
class TritonConfig:
    repository: Path
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    model_control: str = "none"  # none | poll | explicit
    log_verbose: int = 0
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def on_free_ports(cls, repository: Path, **kwargs) -> TritonConfig:
        http, grpc, metrics = free_ports(3)
        return cls(repository, http_port=http, grpc_port=grpc, metrics_port=metrics, **kwargs)

    @classmethod
    def loading(cls, repository: Path, models: tuple[str, ...] | list[str] = ()) -> TritonConfig:
        """On free ports with explicit model control: only `models` are loaded (every model when empty)."""
        loads = tuple(f"--load-model={m}" for m in models) or ("--load-model=*",)
        return cls.on_free_ports(repository, model_control="explicit", extra_args=loads)

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"


def wheel_root() -> Path:
    try:
        import pytriton
    except ImportError as exc:
        raise TritonError("tritonserver needs the nvidia-pytriton wheel: pip install 'tritonzoo[serve]'") from exc
    return Path(pytriton.__file__).resolve().parent / "tritonserver"


def prepare_backends(dest_root: Path | None = None) -> Path:
    """A backend directory: the wheel's python backend with the stub for this Python, plus ours.

    Keyed by content, so a changed backend source gets a fresh directory and a running server keeps its own.
    """
    wheel = wheel_root()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = wheel / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise TritonError(f"the nvidia-pytriton wheel has no Python backend stub for Python {sys.version.split()[0]}")
    sources = sorted(p for p in BACKENDS_SRC.rglob("*.py"))
    digest = hashlib.sha256(f"{stub}|{importlib.metadata.version('nvidia-pytriton')}".encode())
    for p in sources:
        digest.update(p.read_bytes())
    root = Path(dest_root or default_cache_dir() / "backends")
    target = root / digest.hexdigest()[:16]
    if target.exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    shutil.copytree(wheel / "backends" / "python", tmp / "python", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(stub, tmp / "python" / stub.name)
    for src in sources:
        dst = tmp / src.relative_to(BACKENDS_SRC)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    try:
        tmp.rename(target)
    except OSError:  # another process published the same content first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def command(cfg: TritonConfig, backend_dir: Path) -> list[str]:
    return [
        str(wheel_root() / "bin" / "tritonserver"),
        f"--model-repository={Path(cfg.repository).resolve()}",
        f"--backend-directory={backend_dir}",
        f"--http-address={cfg.host}", f"--http-port={cfg.http_port}",
        f"--grpc-address={cfg.host}", f"--grpc-port={cfg.grpc_port}",
        f"--metrics-address={cfg.host}", f"--metrics-port={cfg.metrics_port}",
        "--metrics-config=summary_latencies=true",
        f"--model-control-mode={cfg.model_control}",
        "--strict-readiness=true", "--exit-on-error=false",
        # Every config.pbtxt is complete: auto-complete would start one more Python stub per model at load.
        "--disable-auto-complete-config",
        f"--log-verbose={cfg.log_verbose}",
        *cfg.extra_args,
    ]


def environment() -> dict[str, str]:
    """The stub needs the wheel's bundled libraries (libcudart among them) even on a CPU machine,
    this interpreter's libpython (not another one the system has), and its packages on the path."""
    env = dict(os.environ)
    libs = str(wheel_root().parent.parent / "nvidia_pytriton.libs")
    env["LD_LIBRARY_PATH"] = _join(sysconfig.get_config_var("LIBDIR"), libs, env.get("LD_LIBRARY_PATH"))
    env["PYTHONPATH"] = _join(*site.getsitepackages(), env.get("PYTHONPATH"))
    return env


def _join(*parts: str | None) -> str:
    return os.pathsep.join(p for p in parts if p)


class TritonServer:
    """Context manager around one tritonserver process group; stops it on exit, error or Ctrl-C."""

    def __init__(self, cfg: TritonConfig, log_path: Path | None = None) -> None:
        self.cfg = cfg
        self.log_path = Path(log_path or Path(tempfile.gettempdir()) / f"tritonserver-{cfg.http_port}.log")
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 300.0, stall: float = 90.0) -> None:
        # Every model's Python stub imports its runtime at load: the 26 quick-profile models took over 120 s to
        # load on 2 busy cores. A load that stops logging for `stall` seconds is stuck (seen here with 26 models,
        # one of them never initialising); it gets one fresh server before the error.
        if not Path(self.cfg.repository).is_dir():
            raise TritonError(f"model repository {self.cfg.repository} does not exist; build it with `invoke build`")
        backend_dir = prepare_backends()
        _exit_on_sigterm()
        for attempt in (1, 2):
            # Appended log: a restart must not erase why the last run died. The group (server and Python stubs)
            # is stopped together.
            self.process = spawn(command(self.cfg, backend_dir), self.log_path, env=environment())
            try:
                self.wait_ready(timeout, stall)
                return
            except BaseException as exc:
                self.stop()
                if attempt == 2 or not isinstance(exc, TritonStalled):
                    raise

    def wait_ready(self, timeout: float, stall: float) -> None:
        deadline = time.monotonic() + timeout
        progress, logged = time.monotonic(), -1
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise TritonError(f"tritonserver exited with {self.process.returncode}:\n{self.log_tail()}")
            if is_ready(self.cfg.http_url):
                return
            failed = failed_models(self.cfg.http_url)
            if failed:
                raise TritonError("models failed to load: " + "; ".join(f"{m}: {r}" for m, r in failed.items()))
            size = self.log_path.stat().st_size if self.log_path.exists() else 0
            if size != logged:
                progress, logged = time.monotonic(), size
            elif time.monotonic() - progress > stall:
                raise TritonStalled(f"tritonserver logged nothing for {stall:.0f}s while loading:\n{self.log_tail()}")
            time.sleep(0.25)
        raise TritonError(f"tritonserver not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, grace: float = 15.0) -> None:
        proc, self.process = self.process, None
        stop_group(proc, grace=grace)  # SIGKILL after the grace: Python stubs outlive a crashed server

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that `with TritonServer(...)` blocks clean up as on Ctrl-C."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (all held open while choosing, so none repeats)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def failed_models(http_url: str) -> dict[str, str]:
    """Models the server gave up on (state UNAVAILABLE with a reason), from the repository index."""
    req = urllib.request.Request(f"http://{http_url}/v2/repository/index", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=1) as resp:
            index = json.load(resp)
    except OSError:
        return {}
    return {m["name"]: m.get("reason", "") for m in index if m.get("state") == "UNAVAILABLE" and m.get("reason")}


def model_stats(http_url: str, model: str) -> dict[str, int]:
    """Triton's own counts for the model: successful and failed requests, inferences and executions."""
    with urllib.request.urlopen(f"http://{http_url}/v2/models/{model}/stats", timeout=10) as resp:
        stats = json.load(resp)["model_stats"]
    return {"success": sum(int(s["inference_stats"]["success"]["count"]) for s in stats),
            "failure": sum(int(s["inference_stats"]["fail"]["count"]) for s in stats),
            "inferences": sum(int(s["inference_count"]) for s in stats),
            "executions": sum(int(s["execution_count"]) for s in stats)}


def is_ready(http_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{http_url}/v2/health/ready", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False
