from __future__ import annotations

import numpy as np

from serving.evaluate import ServedResult, build_accuracy, evaluate_served, format_table


class FakeClassifier:
    """Answers with logits that pick class (index % 10), and fixed latencies."""

    def predict_all(self, model: str, images: np.ndarray) -> np.ndarray:
        return np.eye(10)[np.arange(len(images)) % 10]

    def latencies_ms(self, model: str, images: np.ndarray, requests: int) -> np.ndarray:
        return np.array([1.0] * 98 + [5.0, 9.0])


def test_served_accuracy_and_latency_per_model() -> None:
    manifest = {"m_fp32": {"variant": "fp32", "runtime": "onnxruntime", "accuracy": {"top1": 0.5, "images": 10}}}
    labels = np.array([0, 1, 2, 3, 4, 0, 0, 0, 0, 0])
    (result,) = evaluate_served(FakeClassifier(), manifest, np.zeros((10, 3, 32, 32), np.uint8), labels)
    assert result.served_accuracy == 0.5 and result.build_accuracy == 0.5
    assert result.p50_ms == 1.0 and result.p99_ms > 5.0


def test_table_lists_every_model() -> None:
    rows = [ServedResult("a", "fp32", "onnxruntime", 0.9, 0.9, 100, 1.5, 3.0),
            ServedResult("b", "int8", "onnxruntime", 0.8, 0.8, 100, 0.5, 1.0)]
    table = format_table(rows).splitlines()
    assert len(table) == 4 and table[2].startswith("a ") and "90.00%" in table[2]


def test_build_accuracy_is_taken_on_the_same_images_or_not_at_all() -> None:
    recorded = {"top1": 0.87, "images": 10000, "prefix": {"images": 2000, "top1": 0.86}}
    assert build_accuracy(recorded, 10000) == 0.87 and build_accuracy(recorded, 2000) == 0.86
    assert build_accuracy(recorded, 500) is None
    table = format_table([ServedResult("a", "fp32", "onnxruntime", None, 0.9, 500, 1.5, 3.0)])
    assert "–" in table.splitlines()[2]
