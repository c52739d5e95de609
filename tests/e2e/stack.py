"""Helpers for end-to-end tests: build a small real repository and run `invoke serve` on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from build.data import Dataset, load_dataset
from build.models import ARCHITECTURES, build_classifier, save_weights
from build.models.resnet import CifarResNet
from build.pipeline import BuildOptions
from serving.stack import StackProcess
from serving.triton import free_ports
from tests.conftest import CIFAR, MINI_ARCHIVE, PRE, ROOT, build_one

ADMIN_KEY = "e2e-admin-key"
ADMIN = {"X-API-Key": ADMIN_KEY}
SHIPPED_TEACHER = ROOT / "weights" / "resnet18_cifar10.pt"


def publish(data: Dataset, repo: Path, arch: str, work: Path, teacher: Path | None = None) -> str:
    """Build `<arch>_fp32` into `repo` from `teacher`, or from fresh weights of that architecture."""
    if arch not in ARCHITECTURES:
        ARCHITECTURES[arch] = lambda n, in_channels=3: CifarResNet([1, 1], [8, 16], n, in_channels)
    if teacher is None:
        teacher = work / f"{arch}.pt"
        save_weights(build_classifier(arch, 10, PRE), teacher, {"arch": arch, "classes": data.classes})
    build_one(data, teacher, repo, ["fp32"], ["onnxruntime"],
              BuildOptions(verify_images=100, eval_images=200, measure_speed=False, threads=1),
              log=lambda _: None, name=arch)
    return f"{arch}_fp32"


def two_tiny_models(root: Path) -> Path:
    """A repository of `tiny_fp32` and `tinyb_fp32`, small real models built on the mini archive: fast enough that a
    run measures the stack and the load generator, not the model."""
    data = load_dataset(str(MINI_ARCHIVE), CIFAR, root / "cache")
    for arch in ("tiny", "tinyb"):
        publish(data, root / "repo", arch, root)
    return root / "repo"


class Stack(StackProcess):
    """`invoke serve` in a subprocess: supervised Triton plus the gateway, on free loopback ports."""

    def __init__(self, repo: Path, state_file: Path) -> None:
        self.port, *self.triton_ports = free_ports(4)
        command = [sys.executable, "-m", "invoke", "serve", "--repo", str(repo), "--port", str(self.port),
                   "--triton-ports", ",".join(map(str, self.triton_ports)), "--state-file", str(state_file)]
        env = {**os.environ, "TRITONZOO_ADMIN_KEY": ADMIN_KEY}
        super().__init__(command, f"http://127.0.0.1:{self.port}", env, ROOT)
        self.__enter__()
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def triton_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-f", f"bin/tritonserver.*--http-port={self.triton_ports[0]}"],
                             capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if hasattr(self, "client"):
            self.client.close()
        super().stop()
