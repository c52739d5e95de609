from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from loadtest.soak.run import pick_arms, private_copy


def test_the_soak_serves_a_hard_linked_copy_the_publish_fault_cannot_write_through(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "1" / "model.onnx").write_bytes(b"weights")
    copy = private_copy(repo, tmp_path / "out" / "repo")
    assert os.path.samefile(copy / "m" / "1" / "model.onnx", repo / "m" / "1" / "model.onnx")
    (copy / "m" / "2").mkdir()
    assert not (repo / "m" / "2").exists()
    assert private_copy(repo, copy) == copy and not (copy / "m" / "2").exists()  # a fresh copy every run


def test_arms_are_the_models_given_or_the_first_two(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("loadtest.soak.run.load_manifest", lambda repo: {"a": 1, "b": 2, "c": 3})
    assert pick_arms(tmp_path, []) == {"a": 1.0, "b": 1.0}
    assert pick_arms(tmp_path, ["c"]) == {"c": 1.0}
    with pytest.raises(SystemExit, match="nosuch"):
        pick_arms(tmp_path, ["nosuch"])
    assert json.dumps(pick_arms(tmp_path, ["b", "c"]))
