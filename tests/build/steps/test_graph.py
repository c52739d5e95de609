from __future__ import annotations

from pathlib import Path

import onnx
import torch

from build.export import export_onnx
from build.models import Classifier
from build.models.resnet import CifarResNet
from build.steps.graph import optimize
from tests.conftest import PRE


def test_basic_level_stays_standard_onnx_and_all_level_fuses(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Classifier(CifarResNet([1], [8], 10), PRE).eval()
    export_onnx(model, tmp_path / "m.onnx")
    basic = optimize(tmp_path / "m.onnx", tmp_path / "basic.onnx", "basic")
    assert {o.domain for o in basic.opset_import} <= {"", "ai.onnx"}, "only the domains its nodes use"
    onnx.checker.check_model(str(tmp_path / "basic.onnx"), full_check=True)
    everything = optimize(tmp_path / "basic.onnx", tmp_path / "all.onnx", "all")
    assert len(everything.graph.node) < len(basic.graph.node)
