"""`invoke serve`: a supervised Triton (explicit model control) with the gateway in front of it."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import subprocess
import time
from contextlib import nullcontext
from pathlib import Path

import httpx

from serving.gateway.server import serve
from serving.gateway.settings import GatewaySettings
from serving.manifest import load_manifest
from serving.supervisor import SupervisedTriton
from serving.triton import TritonConfig, TritonError


def explicit_triton(repo: Path, ports: str) -> TritonConfig:
    """Triton on loopback with explicit model control (all models loaded at start), ports 'HTTP,GRPC,METRICS'."""
    http, grpc, metrics = (int(p) for p in ports.split(","))
    return TritonConfig(repo, http_port=http, grpc_port=grpc, metrics_port=metrics, model_control="explicit",
                        extra_args=("--load-model=*",))


def run_stack(repo: Path, host: str, port: int, triton: TritonConfig, state_file: Path,
              external_triton: tuple[str, str] | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM; Triton is stopped with the gateway.

    `external_triton` (grpc_url, http_url) skips starting one. Triton itself binds to loopback, so its
    model-control API is reachable only through the gateway's admin endpoints.
    """
    preflight(repo, host, port, triton, external_triton)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    grpc_url, http_url = external_triton or (triton.grpc_url, triton.http_url)
    settings = GatewaySettings(repository=repo, triton_grpc=grpc_url, triton_http=http_url, state_file=state_file)
    with nullcontext() if external_triton else SupervisedTriton(triton):
        logging.getLogger("tritonzoo").info("gateway on http://%s:%d, Triton gRPC %s", host, port, grpc_url)
        serve(settings, host, port)


def preflight(repo: Path, host: str, port: int, triton: TritonConfig,
              external_triton: tuple[str, str] | None) -> None:
    """Find a user's mistake before anything starts, so it is one line and not a failed server's traceback."""
    load_manifest(repo)  # a missing or unreadable repository
    ports = [(host, port, "--port")]
    if external_triton is None:
        ports += [("127.0.0.1", p, "--triton-ports") for p in (triton.http_port, triton.grpc_port, triton.metrics_port)]
    for address, number, option in ports:
        require_free_port(address, number, option)
    if external_triton is not None:
        url = f"http://{external_triton[1]}/v2/health/ready"
        try:
            httpx.get(url, timeout=5).raise_for_status()
        except httpx.HTTPError as exc:
            raise TritonError(f"no ready Triton at {url} ({exc}): start it, or fix --triton-url") from None


def require_free_port(host: str, port: int, option: str) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise TritonError(f"cannot listen on {host}:{port} ({exc.strerror}): stop what uses it or pass another "
                              f"{option}") from None


class StackProcess:
    """`command` (one that runs the stack) in a child process, ready on entry, stopped like Ctrl-C on exit."""

    def __init__(self, command: list[str], url: str, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.command, self.url, self.env, self.cwd = command, url, env, cwd
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> StackProcess:
        self.process = subprocess.Popen(self.command, env=self.env, cwd=self.cwd)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_ready(self, timeout: float = 180.0) -> None:
        assert self.process is not None, "wait_ready after __enter__ started the process"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{' '.join(self.command)} exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the stack at {self.url} did not become ready in {timeout:.0f}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a supervised Triton with the gateway in front of it.")
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--triton-ports", default="8000,8001,8002", help="HTTP,GRPC,METRICS on loopback")
    parser.add_argument("--state-file", type=Path, default=Path("runs/gateway/experiments.json"))
    args = parser.parse_args()
    triton = explicit_triton(args.repo, args.triton_ports)
    run_stack(args.repo, args.host, args.port, triton, args.state_file)


if __name__ == "__main__":
    main()
