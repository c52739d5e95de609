from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from serving.manifest import MANIFEST, CardRecord, ModelEntry, read_manifest
from serving.publication import DRAFT_VERSION, Publication, PublicationError, republish_config
from serving.release import DEFAULT


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


def test_failed_publication_leaves_repository_exactly_as_it_was(tmp_path: Path) -> None:
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
    with pytest.raises(PublicationError, match="staged without metadata"):
        with Publication(repo) as pub:
            pub.stage("m")
    assert not (repo / "m").exists()


def test_concurrent_builds_are_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with Publication(repo):
        with pytest.raises(PublicationError, match="another build is publishing"):
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

    monkeypatch.setattr("serving.publication.write_manifest", disk_full)
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
    with pytest.raises(PublicationError, match=r"models\.m\.io: missing"):
        publish(repo, "m", b"x", bad)
    assert not (repo / "m").exists()


CONFIG = """name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 8
instance_group { count: 1 kind: KIND_CPU }
dynamic_batching { max_queue_delay_microseconds: 200 }
"""


def published_with_config(repo: Path) -> None:
    with Publication(repo) as pub:
        folder = pub.stage("m")
        (folder / "1").mkdir()
        (folder / "1" / "model.onnx").write_bytes(b"weights")
        (folder / "config.pbtxt").write_text(CONFIG)
        (folder / "config.pbtxt").chmod(0o640)
        pub.record("m", {**entry("m", 1), "size_mb": 1.5})


def test_a_new_config_and_its_manifest_fields_land_in_one_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    published_with_config(repo)
    served = repo / "m" / "1" / "model.onnx"
    config = text_format.Parse(CONFIG, pb.ModelConfig())
    config.max_batch_size = 32
    republish_config(repo, "m", config)
    assert text_format.Parse((repo / "m" / "config.pbtxt").read_text(), pb.ModelConfig()).max_batch_size == 32
    assert (repo / "m" / "config.pbtxt").stat().st_mode & 0o777 == 0o640
    entry_now = read_manifest(repo).models["m"]
    assert entry_now.max_batch_size == 32 and entry_now.version == 1, "a change in place, not a new version"
    assert entry_now.size_mb == 1.5, "the rest of the entry is kept"
    assert served.read_bytes() == b"weights" and sorted(p.name for p in (repo / "m").iterdir()) == ["1", "config.pbtxt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".repo.lock", "repo"], "no staging left behind"


def test_a_config_change_is_refused_while_a_build_publishes_and_then_touches_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    published_with_config(repo)
    before = snapshot(repo)
    config = text_format.Parse(CONFIG, pb.ModelConfig())
    with Publication(repo):
        with pytest.raises(PublicationError, match="another build is publishing"):
            republish_config(repo, "m", config)
    with pytest.raises(PublicationError, match="nothing to reconfigure"):
        republish_config(repo, "absent", config)
    assert snapshot(repo) == before


def publish_for(repo: Path, model: str, release: str) -> None:
    from serving.release import release_named

    with Publication(repo, release_named(release)) as pub:
        (pub.stage(model) / "model.onnx").write_bytes(b"x")
        pub.record(model, entry(model, 1))


def test_the_manifest_records_the_release_the_models_were_built_for(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    publish_for(repo, "m_fp32", "26.07")
    recorded = json.loads((repo / MANIFEST).read_text())["triton_release"]
    assert recorded["name"] == "26.07" and recorded["onnxruntime"] == "1.27.0" and recorded["tensorrt"] == "10.14.1.48"
    assert read_manifest(repo).release_name == "26.07"
    publish_for(repo, "m_fp32", "24.10")  # every model rebuilt for the other release: the repository follows it
    assert read_manifest(repo).release_name == "24.10"


def test_models_of_two_releases_are_not_mixed_in_one_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    publish_for(repo, "m_fp32", "26.07")
    before = snapshot(repo)
    with pytest.raises(PublicationError, match="holds models built for Triton 26.07 .* targets Triton 24.10"):
        publish_for(repo, "m_int8", "24.10")
    assert snapshot(repo) == before


def test_a_config_change_keeps_the_recorded_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    published_with_config(repo)  # for the default release
    monkeypatch.setenv("TRITONZOO_TRITON_RELEASE", "24.10")
    republish_config(repo, "m", text_format.Parse(CONFIG, pb.ModelConfig()))
    assert read_manifest(repo).release_name == DEFAULT, "the models were built for it, whatever the config"


def made(work: Path, model: str, payload: bytes) -> Path:
    """A model folder as a builder makes it, away from the repository: one draft version folder."""
    folder = work / model
    (folder / str(DRAFT_VERSION)).mkdir(parents=True)
    (folder / str(DRAFT_VERSION) / "model.onnx").write_bytes(payload)
    (folder / "config.pbtxt").write_text(CONFIG)
    return folder


def test_the_publication_numbers_the_versions_of_models_handed_to_it(tmp_path: Path) -> None:
    """A builder makes its folder in its own work folder and never reads the manifest: `add` takes the folder,
    names its version one past the published one, and returns the entry with that version."""
    repo, work = tmp_path / "repo", tmp_path / "work"
    publish(repo, "m", b"v1", entry("m", 1))
    with Publication(repo) as pub:
        folder = made(work, "m", b"v2")
        numbered = pub.add(ModelEntry.from_dict(entry("m", DRAFT_VERSION), "m"), folder)
        fresh = pub.add(ModelEntry.from_dict(entry("n", DRAFT_VERSION), "n"), made(work, "n", b"n1"))
        assert not folder.exists(), "the builder's folder is handed over, not copied"
        assert not (repo / "m" / "2").exists(), "nothing is visible before the commit"
    assert (numbered.version, fresh.version) == (2, 1)
    assert (repo / "m" / "2" / "model.onnx").read_bytes() == b"v2" and not (repo / "m" / "1").exists()
    assert {n: e.version for n, e in read_manifest(repo).models.items()} == {"m": 2, "n": 1}
