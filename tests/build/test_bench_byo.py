from __future__ import annotations

from pathlib import Path

import pytest

from build.bench_byo import ByoBenchConfig, CardTiming, archive_classes, prepare, render, variant_seconds, with_checks
from build.card import load_card
from build.errors import ZooError
from tests.conftest import MINI_ARCHIVE

LOG = """model inet: torch:build.models.imagenet:imagenet_resnet18, input [3, 224, 224], 10 classes
  [fp32] from_teacher (0.2s)
  [fp32] export_onnx (12.5s)
  [int8] from:fp32 (0.0s)
  [int8] quantize_static_int8 (41.0s)
  [fp32] publish:onnxruntime (20.0s)
  [int8] publish:openvino_bf16 (0.0s) SKIPPED: an INT8 model runs its quantized ops in INT8
time: 3 min 2 s in all: publish onnxruntime 20 s, other 5 s
"""


def test_each_variants_steps_are_summed_slowest_first() -> None:
    assert variant_seconds(LOG) == {"int8": 41.0, "fp32": 32.7}


def test_each_row_gets_its_models_verification_and_a_model_without_one_none() -> None:
    rows = with_checks([{"model": "a"}, {"model": "b"}],
                       {"a": {"max_rel_logit_diff": 1e-6, "confident_top1_agreement": 1.0, "images": 500}})
    assert rows == [{"model": "a", "max_rel_logit_diff": 1e-6, "confident_top1_agreement": 1.0},
                    {"model": "b", "max_rel_logit_diff": None, "confident_top1_agreement": None}]


def test_prepare_cuts_the_data_and_writes_a_torch_and_an_onnx_card(tmp_path: Path) -> None:
    cfg = ByoBenchConfig(size=32, train_per_class=4, test_per_class=2, width=8, train_epochs=1)
    torch_card, onnx_card = (load_card(c) for c in prepare(MINI_ARCHIVE, tmp_path, cfg))
    assert torch_card.weights == tmp_path / "inet_weights.pt" and torch_card.weights.is_file(), \
        "the user's model is trained before it is brought, and its card names its state dict"
    assert archive_classes(tmp_path / "data.tar.gz") == archive_classes(MINI_ARCHIVE) and \
        len(archive_classes(MINI_ARCHIVE)) == 10
    assert torch_card.source == "torch:build.models.imagenet:imagenet_resnet18" and torch_card.input == (3, 32, 32)
    assert torch_card.args == {"num_classes": 10, "width": 8}
    assert onnx_card.source.startswith("onnx:") and onnx_card.input == (3, 32, 32)
    assert onnx_card.data == torch_card.data, "both build from the same subset"


def test_data_that_is_not_an_archive_is_named(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="nowhere.tar.gz is not an ImageFolder archive"):
        prepare(tmp_path / "nowhere.tar.gz", tmp_path, ByoBenchConfig())


def test_the_page_names_each_build_its_time_and_its_models() -> None:
    timing = CardTiming("inet", "torch:x:y", 0, 612.0, 2300.0, ["inet_fp32", "inet_int8"], "time: 10 min 12 s",
                        {"int8": 41.0}, [{"model": "inet_int8", "runtime": "onnxruntime", "precision_ran": "int8",
                                          "top1": 0.128, "macs": 1.82e9, "throughput_b64_ips": 210.0,
                                          "speedup_b1": 2.5, "speedup_b64": 3.4, "gmacs_per_s": 382.0,
                                          "max_rel_logit_diff": 0.0213, "confident_top1_agreement": 0.991}])
    page = render(ByoBenchConfig(), [timing])
    assert "| inet | `torch:x:y` | 0 | 10.2 min | 2300 | 2 |" in page
    assert "| inet_int8 | onnxruntime | int8 | 12.80% | 1820.0 | 210 | 2.50x | 3.40x | 382 | 2.1e-02 | 99.10% |" in page
    assert "int8 41" in page and "time: 10 min 12 s" in page
