from __future__ import annotations

import subprocess
import sys

from tests.conftest import MINI_ARCHIVE, ROOT


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
