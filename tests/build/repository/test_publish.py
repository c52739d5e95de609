from __future__ import annotations

import json
from pathlib import Path

import pytest

from build.errors import ZooError
from build.repository.publish import Publication
from serving.manifest import MANIFEST, CardRecord, read_manifest


def entry(model: str, version: int, family: str = "m") -> dict:
    """The least a published model's record holds."""
    return {"model": model, "family": family, "variant": "fp32", "runtime": "onnxruntime", "version": version,
            "io": {"input": "images", "input_dims": [3, 8, 8], "output": "logits"}, "accuracy": {"top1": 0.5},
            "max_batch_size": 8}


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def publish(repo: Path, model: str, payload: bytes, entry: dict) -> None:
    with Publication(repo) as pub:
        folder = pub.stage(model)
        (folder / "1").mkdir()
        (folder / "1" / "model.onnx").write_bytes(payload)
        pub.record(model, entry)


def test_publish_then_replace(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    publish(repo, "m", b"v1", entry("m", 1))
    assert (repo / "m" / "1" / "model.onnx").read_bytes() == b"v1"
    publish(repo, "m", b"v2", entry("m", 2))
    publish(repo, "other", b"o", entry("other", 1))
    assert (repo / "m" / "1" / "model.onnx").read_bytes() == b"v2"
    assert {n: e.version for n, e in read_manifest(repo).models.items()} == {"m": 2, "other": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".repo.lock", "repo"], "no staging left behind"


def test_failed_build_leaves_repository_exactly_as_it_was(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    publish(repo, "m", b"v1", entry("m", 1))
    before = snapshot(repo)
    with pytest.raises(RuntimeError, match="boom"):
        with Publication(repo) as pub:
            folder = pub.stage("m")
            (folder / "half-written").write_bytes(b"x")
            pub.record("m", entry("m", 2))
            pub.stage("n")
            raise RuntimeError("boom")
    assert snapshot(repo) == before
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]


def test_interrupt_before_commit_publishes_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with pytest.raises(KeyboardInterrupt):
        with Publication(repo) as pub:
            pub.stage("m")
            raise KeyboardInterrupt
    assert not (repo / "m").exists() and not (repo / MANIFEST).exists()


def test_staged_model_without_metadata_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with pytest.raises(ZooError, match="staged without metadata"):
        with Publication(repo) as pub:
            pub.stage("m")
    assert not (repo / "m").exists()


def test_concurrent_builds_are_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with Publication(repo):
        with pytest.raises(ZooError, match="another build is publishing"):
            with Publication(repo):
                pass


def test_manifest_is_valid_json_after_every_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for i in range(3):
        publish(repo, f"m{i}", b"x", entry(f"m{i}", 1))
        json.loads((repo / MANIFEST).read_text())
    assert not list(repo.glob(".*tmp*"))


def test_failure_while_committing_swaps_everything_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    publish(repo, "m", b"v1", entry("m", 1))
    before = snapshot(repo)

    def disk_full(path: Path, data: dict) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("build.repository.publish.write_manifest", disk_full)
    with pytest.raises(OSError, match="No space"):
        with Publication(repo) as pub:
            for model, payload in (("m", b"v2"), ("new", b"n")):
                folder = pub.stage(model)
                (folder / "1").mkdir()
                (folder / "1" / "model.onnx").write_bytes(payload)
                pub.record(model, entry(model, 2))
    assert snapshot(repo) == before


def test_staging_left_by_a_killed_build_is_cleaned(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    stale = tmp_path / ".repo.staging-dead"
    (stale / "m").mkdir(parents=True)
    publish(repo, "m", b"v1", entry("m", 1))
    assert not stale.exists()


def test_cards_are_recorded_and_other_families_left_alone(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    publish(repo, "a_fp32", b"a", entry("a_fp32", 1, family="a"))
    before = (repo / "a_fp32" / "1" / "model.onnx").read_bytes()
    card = CardRecord("b", "onnx:/x.onnx", (1, 28, 28), (0.0,), (1.0,), ("x", "y"), "/d", "abc")
    with Publication(repo) as pub:
        (pub.stage("b_fp32") / "1").mkdir()
        pub.record("b_fp32", entry("b_fp32", 1, family="b"))
        pub.describe("b", card)
    manifest = read_manifest(repo)
    assert manifest.cards == {"b": card} and sorted(manifest.models) == ["a_fp32", "b_fp32"]
    assert manifest.models["a_fp32"].family == "a" and (repo / "a_fp32" / "1" / "model.onnx").read_bytes() == before


def test_an_entry_missing_a_field_publishes_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    bad = entry("m", 1)
    del bad["io"]
    with pytest.raises(ZooError, match=r"models\.m\.io: missing"):
        publish(repo, "m", b"x", bad)
    assert not (repo / "m").exists()
