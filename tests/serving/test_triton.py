from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from serving.triton import (
    TritonConfig,
    TritonError,
    TritonServer,
    TritonStalled,
    command,
    environment,
    free_ports,
    prepare_backends,
)


def test_backend_directory_has_python_backend_stub_and_ours(tmp_path: Path) -> None:
    root = prepare_backends(tmp_path)
    assert (root / "python" / "libtriton_python.so").exists()
    assert (root / "python" / "triton_python_backend_stub").exists()
    assert (root / "onnxruntime" / "model.py").exists()
    assert prepare_backends(tmp_path) == root, "content-addressed: prepared once"


def test_everything_binds_to_loopback_by_default(tmp_path: Path) -> None:
    args = command(TritonConfig(tmp_path), tmp_path)
    for flag in ("--http-address", "--grpc-address", "--metrics-address"):
        assert f"{flag}=127.0.0.1" in args
    assert "--metrics-config=summary_latencies=true" in args


def test_environment_reaches_wheel_libraries_and_packages() -> None:
    env = environment()
    assert "nvidia_pytriton.libs" in env["LD_LIBRARY_PATH"]
    assert "site-packages" in env["PYTHONPATH"]


def test_missing_repository_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TritonError, match="model repository .*missing does not exist"):
        TritonServer(TritonConfig(tmp_path / "missing")).start()


def test_a_load_that_stops_logging_gets_one_fresh_server_then_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[subprocess.Popen] = []

    def silent_server(*args, **kwargs) -> subprocess.Popen:  # never ready, never logs
        started.append(subprocess.Popen(["sleep", "60"], start_new_session=True))
        return started[-1]

    monkeypatch.setattr("serving.triton.spawn", silent_server)
    server = TritonServer(TritonConfig.on_free_ports(tmp_path), log_path=tmp_path / "triton.log")
    with pytest.raises(TritonStalled, match="logged nothing for 1s while loading"):
        server.start(timeout=30, stall=1)
    assert len(started) == 2 and all(p.poll() is not None for p in started), "both servers were stopped"


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
