from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.manifest import Manifest, write_manifest
from tests.conftest import MINI_ARCHIVE, ROOT, present


def invoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    """A user error: exit status 1, one line on stderr that names the problem, and no traceback anywhere."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def empty_repo(tmp_path: Path) -> Path:
    """A repository with a valid manifest and no models: the servers' checks run, nothing heavy does."""
    repo = tmp_path / "repo"
    repo.mkdir()
    write_manifest(repo, Manifest())
    return repo


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# One user error per task (a missing or bad file, a bad option, a missing repository), each of a kind that task meets.
TASK_ERRORS = {
    "train": (["train", "--data", "/nonexistent/cifar.tar.gz"], ["dataset not found"]),
    "distill": (["distill", "--set", "distill.bogus=1", "--data", str(MINI_ARCHIVE)], ["no setting 'bogus'"]),
    "export-onnx": (["export-onnx", "--out", "/tmp/x.onnx", "--card", "/nonexistent.toml"], ["/nonexistent.toml"]),
    "peak": (["peak", "--threads=-1"], ["--threads"]),
    "ov-layers": (["ov-layers", "nosuch", "--repo", "/nonexistent"], ["no OpenVINO model"]),
    "zoo": (["zoo", "--runtimes", "bogus", "--data", str(MINI_ARCHIVE)], ["unknown variant or runtime", "bogus"]),
    "bench-gateway": (["bench-gateway", "--repo", "/nonexistent"], ["manifest.json not found", "invoke build"]),
    "loadtest": (["loadtest", "--data", str(MINI_ARCHIVE), "--repo", "/nonexistent"], ["manifest.json not found"]),
    "report": (["report", "--root", "/nonexistent"], ["no load runs", "invoke loadtest"]),
    "bench-loadgen": (["bench-loadgen"], ["--data"]),
    "tune-config": (["tune-config", "nosuch", "--repo", "/nonexistent", "--data", str(MINI_ARCHIVE)], ["nosuch"]),
    "serve": (["serve", "--repo", "/nonexistent"], ["manifest.json not found"]),
    "soak": (["soak", "--schedule", "/nonexistent.json"], ["no schedule", "short"]),
}


@pytest.mark.parametrize("task", sorted(TASK_ERRORS))
def test_each_task_reports_a_user_error_in_one_line(task: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITONZOO_DATA", raising=False)  # bench-loadgen's case: no payload source given
    args, words = TASK_ERRORS[task]
    assert_one_line_error(invoke(*args, env=dict(os.environ)), *words)


def test_serve_names_a_port_in_use(empty_repo: Path, busy_port: int) -> None:
    assert_one_line_error(invoke("serve", "--repo", str(empty_repo), "--port", str(busy_port)),
                          f"127.0.0.1:{busy_port}", "--port")
    assert_one_line_error(invoke("serve", "--repo", str(empty_repo), "--triton-ports", f"{busy_port},0,0"),
                          "--triton-ports")


def test_serve_names_an_unreachable_triton(empty_repo: Path, busy_port: int) -> None:
    proc = invoke("serve", "--repo", str(empty_repo), "--triton-url", f"127.0.0.1:1,127.0.0.1:{busy_port}",
                  "--port", "0")
    assert_one_line_error(proc, "no ready Triton", "--triton-url")


def test_loadtest_names_a_missing_prometheus_before_starting_anything(empty_repo: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # PATH with a shell and nothing else: no prometheus
    bin_dir.mkdir()
    for tool in ("bash", "env"):
        (bin_dir / tool).symlink_to(present(shutil.which(tool)))
    proc = invoke("loadtest", "--data", str(MINI_ARCHIVE), "--repo", str(empty_repo), "--out", str(tmp_path / "out"),
                  env={**os.environ, "PATH": str(bin_dir)})
    assert_one_line_error(proc, "`prometheus` not found", "./setup.sh")


def test_a_bug_still_shows_its_traceback() -> None:
    from tasks import friendly

    @friendly
    def broken() -> None:
        raise KeyError("a bug, not a user error")

    with pytest.raises(KeyError):
        broken()


def test_invoke_lists_every_task_with_help() -> None:
    out = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    for name in ("train", "distill", "prune", "build", "serve", "zoo", "test"):
        line = next(row for row in out.splitlines() if row.strip().startswith(name + " "))
        assert len(line.split()) > 2, f"task {name} has no help text"


def test_bad_dataset_path_is_one_line_error(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "invoke", "build", "--data", str(tmp_path / "missing.tar.gz"),
                           "--repo", str(tmp_path / "repo")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "dataset not found" in proc.stderr
    assert not (tmp_path / "repo").exists()


def test_prune_names_a_variant_it_cannot_ship() -> None:
    proc = subprocess.run([sys.executable, "-m", "invoke", "prune", "--variants", "int8", "--data", str(MINI_ARCHIVE)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.startswith("error: 'int8' is not a pruned variant"), proc.stderr
    assert proc.stderr.count("\n") == 1, "it fails before loading any data"


def test_a_bad_card_is_one_line_error_before_any_data_is_read(tmp_path) -> None:
    card = tmp_path / "mine.toml"
    card.write_text('name = "mine"\nsource = "torch:nowhere.nets:net"\ninput = [3, 32, 32]\nmean = [0, 0, 0]\n'
                    'std = [1, 1, 1]\n')
    proc = subprocess.run([sys.executable, "-m", "invoke", "build", "--card", str(card), "--data",
                           str(tmp_path / "missing.tar.gz"), "--repo", str(tmp_path / "repo")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: card {card}: source: cannot import net from nowhere.nets")
    assert not (tmp_path / "repo").exists()


def test_a_corrupt_manifest_is_one_line_error(tmp_path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "manifest.json").write_text('{"schema_version": 2, "models": {"m": {"model": "m"}}}')
    proc = subprocess.run([sys.executable, "-m", "invoke", "bench-served", "--repo", str(repo), "--models", "all",
                           "--data", str(MINI_ARCHIVE)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "models.m" in proc.stderr, proc.stderr


def test_invoke_train_defaults_are_the_shipped_teachers_recipe() -> None:
    """`invoke train` with no options reproduces the shipped teacher's run (its file records its config)."""
    import dataclasses
    import inspect
    import json

    import tasks
    from build.train import TrainConfig

    shipped = json.loads((ROOT / "weights" / "resnet18_cifar10.json").read_text())["config"]
    assert dataclasses.asdict(TrainConfig()) == shipped
    options = inspect.signature(tasks.train.body).parameters
    assert {k: options[k].default for k in shipped if k in options and k != "device"} == \
        {k: v for k, v in shipped.items() if k in options and k != "device"}


def test_the_default_set_reports_what_it_leaves_out_and_all_builds_everything() -> None:
    from build.hardware import detect
    from build.variants import VARIANTS, optional_variants
    from tasks import _variants

    chosen, left_out, by_default = _variants("default")
    assert set(chosen) | set(left_out) == set(VARIANTS) and not set(chosen) & set(left_out)
    assert set(left_out) == set(optional_variants(detect())) and "sparse" in left_out
    assert all("--variants all" in why for why in left_out.values()), "each says how to build it"
    assert by_default == set(chosen), "nothing named: every variant came from the default set"
    assert _variants("all") == (list(VARIANTS), {}, frozenset())
    assert _variants("fp32,int8") == (["fp32", "int8"], {}, frozenset())
    plus, rest, _ = _variants("default,sparse")
    assert plus == [*chosen, "sparse"] and set(rest) == set(left_out) - {"sparse"}, "the default set plus one"
    _, _, by_default = _variants("default,distilled_mobilenetv2_int8")
    assert not {"distilled_mobilenetv2_int8", "distilled_mobilenetv2"} & by_default and "distilled" in by_default, \
        "naming a variant names its parents"


def test_refresh_reports_rebuilds_from_an_empty_repository_in_order(tmp_path: Path) -> None:
    import tasks

    class Recorder:
        def __init__(self) -> None:
            self.commands: list[str] = []

        def run(self, command: str, pty: bool = False) -> None:
            self.commands.append(command)

    old = tmp_path / "repo"
    (old / "resnet18_fp32" / "7").mkdir(parents=True)
    c = Recorder()
    tasks.refresh_reports.body(c, data="d.tar.gz", steps="zoo,served", repo=str(old))
    assert not old.exists(), "the one build starts from an empty repository"
    assert c.commands == [f"invoke zoo --data d.tar.gz --repo {old} --report reports/zoo",
                          f"invoke bench-served --repo {old} --data d.tar.gz --models all --rounds 7 --seconds 2"]
    with pytest.raises(SystemExit, match="unknown report steps"):
        tasks.refresh_reports.body(c, steps="zoo,speed")
