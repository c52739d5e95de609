"""`invoke k8s` with the Locust pods: what they need, what a rerun keeps, the metrics plugin they load."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.deploy.generate import generate
from serving.deploy.generate import K8sOptions
from serving.deploy.generate import generate as generate_serving
from serving.deploy.repository import DeployError
from tests.conftest import ROOT
from tests.loadtest.deploy.conftest import pods
from tests.serving.deploy.conftest import fake_images


def test_locust_needs_payloads_and_published_models(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="--data"):
        generate(repo, tmp_path / "k8s", K8sOptions("s3://b/r"), pods(), None)
    with pytest.raises(DeployError, match="not in"):
        generate(repo, tmp_path / "k8s", K8sOptions("s3://b/r"), pods(models=("nope",)), fake_images)
    with pytest.raises(DeployError, match="--locust-user"):
        generate(repo, tmp_path / "k8s", K8sOptions("s3://b/r"), pods(user="ftp"), fake_images)
    with pytest.raises(DeployError, match="--locust-workers"):
        generate(repo, tmp_path / "k8s", K8sOptions("s3://b/r"), pods(workers=0), fake_images)
    with pytest.raises(ValueError, match="unknown shape"):
        pods(shape="ramp")
    assert not (tmp_path / "k8s" / "base").exists(), "nothing is written for options that fail"


def test_a_rerun_replaces_what_it_wrote_and_nothing_else(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    generate(repo, out, K8sOptions("s3://b/r"), pods(), fake_images)
    (out / "mine.txt").write_text("kept")
    assert (out / "base" / "locust.yaml").exists()
    generate(repo, out, K8sOptions("s3://b/r"), None, None)
    assert not (out / "base" / "locust.yaml").exists() and (out / "mine.txt").read_text() == "kept"
    assert "locust.yaml" not in (out / "base" / "kustomization.yaml").read_text()
    assert not list(out.glob(".staging-*"))
    generate(repo, out, K8sOptions("s3://b/r"), pods(), fake_images)
    generate_serving(repo, out, K8sOptions("s3://b/r"))
    assert not (out / "base" / "locust.yaml").exists(), "serving's generator alone writes serving's objects only"


PLUGIN_CHECK = """
import sys, urllib.request
from types import SimpleNamespace
from loadtest.deploy import locust_exporter
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
