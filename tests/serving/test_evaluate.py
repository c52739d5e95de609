from __future__ import annotations

from typing import cast

import numpy as np
import pytest

from serving.client import TritonClassifier
from serving.evaluate import ServedResult, evaluate_served, format_table, not_evaluated
from serving.manifest import Accuracy
from tests.serving.manifests import entry


class FakeClassifier:
    """Answers with logits that pick class (index % 10), and fixed latencies; records the input shape per model."""

    def __init__(self) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {}

    def predict_all(self, model: str, images: np.ndarray) -> np.ndarray:
        self.shapes[model] = images.shape[1:]
        return np.eye(10)[np.arange(len(images)) % 10]

    def latencies_ms(self, model: str, images: np.ndarray, requests: int) -> np.ndarray:
        return np.array([1.0] * 98 + [5.0, 9.0])


def served(fake: FakeClassifier) -> TritonClassifier:
    """The fake where a TritonClassifier is taken: it answers the two calls evaluate_served makes."""
    return cast(TritonClassifier, fake)


def test_served_accuracy_and_latency_per_model() -> None:
    manifest = {"m_fp32": entry("m_fp32", top1=0.5)}
    labels = np.array([0, 1, 2, 3, 4, 0, 0, 0, 0, 0])
    test_sets = {"m": (np.zeros((10, 3, 32, 32), np.uint8), labels)}
    (result,) = evaluate_served(served(FakeClassifier()), manifest, test_sets)
    assert result.served_accuracy == 0.5 and result.variant == "fp32" and result.runtime == "onnxruntime"
    assert result.build_accuracy is None, "the build measured 100 images, not these 10"
    assert result.p50_ms == 1.0 and result.p99_ms > 5.0


def test_each_family_is_evaluated_on_its_own_test_set() -> None:
    manifest = {"m_fp32": entry("m_fp32"), "gray_int8": entry("gray_int8", variant="int8", dims=(1, 28, 28)),
                "other_fp32": entry("other_fp32")}
    cifar = (np.zeros((10, 3, 32, 32), np.uint8), np.arange(10) % 10)  # FakeClassifier: all right
    digits = (np.zeros((4, 1, 28, 28), np.uint8), np.zeros(4, int))  # right on the first only
    client = FakeClassifier()
    results = {r.model: r for r in evaluate_served(served(client), manifest, {"m": cifar, "gray": digits})}
    assert results["m_fp32"].images == 10 and results["m_fp32"].served_accuracy == 1.0
    assert results["gray_int8"].images == 4 and results["gray_int8"].served_accuracy == 0.25
    assert client.shapes == {"m_fp32": (3, 32, 32), "gray_int8": (1, 28, 28)}, "a family without a test set: left out"
    assert not_evaluated(manifest, {"m": cifar, "gray": digits}) == ["other_fp32"]


def test_a_test_set_of_another_shape_is_refused_before_anything_is_sent() -> None:
    manifest = {"m_fp32": entry("m_fp32"), "gray_int8": entry("gray_int8", dims=(1, 28, 28))}
    client = FakeClassifier()
    cifar = (np.zeros((10, 3, 32, 32), np.uint8), np.zeros(10, int))
    with pytest.raises(ValueError, match=r"gray_int8 takes \[1, 28, 28\], the test images of family gray are "
                                         r"\[3, 32, 32\]"):
        evaluate_served(served(client), manifest, {"m": cifar, "gray": cifar})
    assert client.shapes == {}


def test_table_lists_every_model() -> None:
    rows = [ServedResult("a", "fp32", "onnxruntime", 0.9, 0.9, 100, 1.5, 3.0),
            ServedResult("b", "int8", "onnxruntime", 0.8, 0.8, 100, 0.5, 1.0)]
    table = format_table(rows).splitlines()
    assert len(table) == 4 and table[2].startswith("a ") and "90.00%" in table[2]


def test_build_accuracy_is_taken_on_the_same_images_or_not_at_all() -> None:
    recorded = Accuracy.from_dict({"top1": 0.87, "images": 10000, "prefix": {"images": 2000, "top1": 0.86}}, "a")
    assert recorded.on(10000) == 0.87 and recorded.on(2000) == 0.86
    assert recorded.on(500) is None
    table = format_table([ServedResult("a", "fp32", "onnxruntime", None, 0.9, 500, 1.5, 3.0)])
    assert "–" in table.splitlines()[2]
