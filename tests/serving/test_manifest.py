from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from serving.manifest import (
    MANIFEST,
    SCHEMA_VERSION,
    Manifest,
    ManifestError,
    load_manifest,
    read_manifest,
    write_manifest,
)
from tests.serving.manifests import card, entry, write

SCHEMA_1_ENTRY = {  # as the build wrote it before model families (one family, named by `arch`)
    "model": "resnet18_int8", "variant": "int8", "runtime": "onnxruntime", "arch": "resnet18", "version": 2,
    "parent": "fp32", "recipe": ["quantize", "publish_onnxruntime"], "size_mb": 11.2, "max_batch_size": 64,
    "accuracy": {"top1": 0.86, "images": 10000, "prefix": {"images": 2000, "top1": 0.85}},
    "speed": {"throughput_b64_ips": 1234.5, "latency_b1_ms": 1.1},
    "io": {"input": "images", "input_dtype": "UINT8", "input_dims": [3, 32, 32], "output": "logits",
           "labels": "labels.txt"},
}


def schema_2() -> dict:
    manifest = Manifest({"mynet_fp32": entry("mynet_fp32", dims=(1, 28, 28), parent="teacher")},
                        {"mynet": card("mynet", data="/data/digits.tar.gz", dims=(1, 28, 28))})
    return manifest.to_dict()


def test_schema_2_round_trips_through_the_file(tmp_path: Path) -> None:
    entries = [entry("resnet18_fp32", speed={"throughput_b64_ips": 300.0}, parent="teacher"),
               entry("mynet_int8_openvino", variant="int8", runtime="openvino", dims=(1, 28, 28))]
    cards = [card("resnet18"), card("mynet", data="/data/digits", dims=(1, 28, 28), classes=("0", "1"))]
    write(tmp_path, entries, cards)
    raw = json.loads((tmp_path / MANIFEST).read_text())
    assert raw["schema_version"] == SCHEMA_VERSION == 2
    assert raw["models"]["resnet18_fp32"]["parent"] == "teacher", "details stay flat in the JSON, as in schema 1"
    assert raw["models"]["mynet_int8_openvino"]["io"]["input_dims"] == [1, 28, 28]
    manifest = read_manifest(tmp_path)
    assert manifest.models == {e.model: e for e in entries} and manifest.cards == {c.name: c for c in cards}
    assert set(manifest.family("mynet")) == {"mynet_int8_openvino"}
    assert list(tmp_path.iterdir()) == [tmp_path / MANIFEST], "the atomic write leaves no temporary file"


def test_typed_entries_answer_what_consumers_ask() -> None:
    mynet = Manifest.from_dict(schema_2()).models["mynet_fp32"]
    assert mynet.family == "mynet" and mynet.io.channels == 1 and mynet.io.size == (28, 28)
    assert mynet.top1 == 0.9 and mynet.throughput_b64 is None and "speed" not in mynet.to_dict()
    fast = entry("a_fp32", speed={"latency_b1_p50_ms": 2.0, "latency_b1_p99_ms": 3.0, "throughput_b64_ips": 480.0})
    assert fast.throughput_b64 == 480.0


def test_a_schema_1_manifest_still_loads(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text(json.dumps({"schema_version": 1, "models": {"resnet18_int8": SCHEMA_1_ENTRY}}))
    manifest = read_manifest(tmp_path)
    assert manifest.cards == {}
    int8 = load_manifest(tmp_path)["resnet18_int8"]
    assert int8.family == "resnet18" and int8.variant == "int8" and int8.version == 2
    assert int8.io.input_dims == (3, 32, 32) and int8.throughput_b64 == 1234.5 and int8.accuracy.prefix_top1
    assert int8.recipe == ("quantize", "publish_onnxruntime") and "arch" not in int8.details
    rewritten = Manifest.from_dict(manifest.to_dict())
    assert rewritten.models == manifest.models, "a schema-1 manifest re-written as schema 2 keeps every entry"


def test_nothing_built_yet(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) == Manifest()
    with pytest.raises(FileNotFoundError, match="invoke build"):
        load_manifest(tmp_path)


def _set(data: dict, path: str, value: object) -> None:
    *parents, key = path.split(".")
    for part in parents:
        data = data[part]
    if value is _DELETE:
        del data[key]
    else:
        data[key] = value


_DELETE = object()


@pytest.mark.parametrize("path, value, named", [
    ("models.mynet_fp32.io.input_dims", [1, 28], "models.mynet_fp32.io.input_dims"),
    ("models.mynet_fp32.io.input_dims", [1, 0, 28], "models.mynet_fp32.io.input_dims"),
    ("models.mynet_fp32.io.input_dims", "1x28x28", "models.mynet_fp32.io.input_dims"),
    ("models.mynet_fp32.io.input", _DELETE, "models.mynet_fp32.io.input"),
    ("models.mynet_fp32.io.labels", 3, "models.mynet_fp32.io.labels"),
    ("models.mynet_fp32.io", [], "models.mynet_fp32.io"),
    ("models.mynet_fp32.version", "1", "models.mynet_fp32.version"),
    ("models.mynet_fp32.max_batch_size", True, "models.mynet_fp32.max_batch_size"),
    ("models.mynet_fp32.accuracy.top1", _DELETE, "models.mynet_fp32.accuracy.top1"),
    ("models.mynet_fp32.accuracy.top1", "high", "models.mynet_fp32.accuracy.top1"),
    ("models.mynet_fp32.family", _DELETE, "models.mynet_fp32.family"),
    ("models.mynet_fp32.speed", "fast", "models.mynet_fp32.speed"),
    ("models.mynet_fp32", ["not", "an", "entry"], "models.mynet_fp32"),
    ("cards.mynet.mean", ["grey"], "cards.mynet.mean"),
    ("cards.mynet.classes", [0, 1], "cards.mynet.classes"),
    ("cards.mynet.input", [28, 28], "cards.mynet.input"),
    ("cards.mynet.data", _DELETE, "cards.mynet.data"),
    ("cards.mynet", "mynet.toml", "cards.mynet"),
    ("cards", ["mynet"], "cards"),
    ("models", [], "models"),
])
def test_a_bad_field_is_named_in_the_error(tmp_path: Path, path: str, value: object, named: str) -> None:
    data = copy.deepcopy(schema_2())
    _set(data, path, value)
    (tmp_path / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(ManifestError) as caught:
        read_manifest(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / MANIFEST}: {named}: "), message


@pytest.mark.parametrize("text, match", [
    ('{"schema_version": 3, "models": {}}', "schema 3"),
    ('{"models": {}}', "schema None"),
    ("[]", "an object at the top level"),
    ("{not json", "not valid JSON"),
])
def test_an_unreadable_manifest_says_what_to_do(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / MANIFEST).write_text(text)
    with pytest.raises(ManifestError, match=match):
        load_manifest(tmp_path)


def test_write_replaces_the_manifest_whole(tmp_path: Path) -> None:
    write(tmp_path, [entry("a_fp32")])
    write_manifest(tmp_path, Manifest({"b_int8": entry("b_int8", variant="int8")}))
    assert set(load_manifest(tmp_path)) == {"b_int8"}
