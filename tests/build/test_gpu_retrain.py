from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from build import gpu_retrain
from build.gpu_retrain import epochs_within, pack


@pytest.mark.parametrize(("budget", "per_epoch", "epochs"), [
    (215, 2.18, 95),   # the H200 run: 98.6 epochs fit, rounded down to a multiple of 5
    (30, 10.0, 5),     # never fewer than 5
    (10_000, 1.0, 200),  # never more than 200
])
def test_the_teacher_gets_the_most_epochs_that_fit_its_budget(budget: float, per_epoch: float, epochs: int) -> None:
    assert epochs_within(budget, per_epoch) == epochs


def test_a_result_too_big_to_come_back_whole_is_packed_in_pieces(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_retrain, "PART_BYTES", 4096)
    weights = tmp_path / "w.pt"
    weights.write_bytes(bytes(range(256)) * 40)  # 10 KiB
    out = tmp_path / "out"
    out.mkdir()
    pack(out, "teacher", [weights])
    pieces = sorted(out.glob("teacher.tar.*"))
    assert len(pieces) > 2 and [p.name for p in pieces] == [f"teacher.tar.{i:02d}" for i in range(len(pieces))]
    assert all(p.stat().st_size <= 4096 for p in pieces)
    whole = tmp_path / "whole.tar"
    whole.write_bytes(b"".join(p.read_bytes() for p in pieces))
    with tarfile.open(whole) as tar:
        member = tar.extractfile("w.pt")
        assert member is not None and member.read() == weights.read_bytes()


def test_a_small_result_comes_back_as_one_tar(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    pack(tmp_path, "pruned", [tmp_path / "a.json"])
    assert (tmp_path / "pruned.tar").exists() and not list(tmp_path.glob("pruned.tar.*"))
