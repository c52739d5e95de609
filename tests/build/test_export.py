from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from build.export import MAX_IR_VERSION, OPSET, export_onnx
from build.models import build_classifier
from build.verification import Tolerance, verify
from tests.conftest import PRE


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    from build.models import ARCHITECTURES
    from build.models.resnet import CifarResNet

    ARCHITECTURES.setdefault("tiny_export", lambda n, in_channels=3: CifarResNet([1, 1], [8, 16], n, in_channels))
    model = build_classifier("tiny_export", 10, PRE).eval()
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    raw_ops = export_onnx(model, path)
    assert raw_ops["BatchNormalization"] > 0, "the counts describe the graph before the exporter's optimizer"
    return model, path


def test_export_is_opset18_dynamic_batch_uint8(exported) -> None:
    _, path = exported
    proto = onnx.load(str(path))
    assert any(o.domain in ("", "ai.onnx") and o.version == OPSET for o in proto.opset_import)
    assert proto.ir_version <= MAX_IR_VERSION
    (inp,) = proto.graph.input
    assert inp.name == "images" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert inp.type.tensor_type.shape.dim[0].dim_param, "batch axis is symbolic"
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node), "BN is folded"


def test_export_matches_torch_at_several_batch_sizes(exported) -> None:
    model, path = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        x = np.random.default_rng(batch).integers(0, 256, (batch, 3, 32, 32), dtype=np.uint8)
        ref = model(torch.from_numpy(x)).detach().numpy()
        verify("tiny", ref, session.run(None, {"images": x})[0], Tolerance())
