"""ONNX export (dynamo exporter, opset 18, dynamic batch) with the checker, and its verification."""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path

import onnx
import torch
from torch import nn

from build.errors import ZooError
from build.models import Classifier
from build.repository.model_config import INPUT as INPUT_NAME  # the tensor names clients see: defined once
from build.repository.model_config import OUTPUT as OUTPUT_NAME

# It warns at every export that torchvision's ops are not registered; this project has no torchvision.
logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
OPSET = 18
MAX_IR_VERSION = 10  # ONNX Runtime 1.19, as in Triton 24.10's native backend, reads IR <= 10


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    return dict(Counter(node.op_type for node in model.graph.node).most_common())


def export_onnx(model: Classifier, path: Path) -> dict[str, int]:
    """Export to `path`, folded and fused by the exporter's optimizer; return the op counts before it ran."""
    model = model.eval().cpu()
    example = model.example(2)
    batch = torch.export.Dim("batch", min=1, max=4096)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter is chatty about internals we do not control
        program = torch.onnx.export(
            model, (example,), dynamo=True, opset_version=OPSET, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_shapes={"images": {0: batch}},  # Classifier.forward(images)
            verbose=False, optimize=False,
        )
        assert program is not None  # the dynamo exporter returns its program
        raw = op_counts(program.model_proto)
        program.optimize()  # constant folding, BatchNorm into Conv, dead-code removal
    program.save(str(path), external_data=False)
    check_onnx(path)
    return raw


def check_onnx(path: Path) -> None:
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ZooError(f"exported model {path} fails onnx.checker: {str(exc).splitlines()[0]}") from exc
    ir_version = onnx.load(str(path), load_external_data=False).ir_version
    if ir_version > MAX_IR_VERSION:
        raise ZooError(f"exported model {path} has ONNX IR version {ir_version}; Triton's native onnxruntime "
                       f"backend reads at most {MAX_IR_VERSION}")


def export_float_onnx(model: nn.Module, path: Path, image_shape: tuple[int, int, int]) -> Path:
    """A network alone, without the zoo's preprocessing: float NCHW in (normalised as it was trained), logits out,
    exported by the plain dynamo exporter. What a user brings as an `onnx:` source."""
    example = torch.zeros((2, *image_shape))
    batch = torch.export.Dim("batch", min=1, max=4096)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model.eval().cpu(), (example,), dynamo=True, opset_version=OPSET,
                                    input_names=["x"], output_names=["y"], dynamic_shapes={"x": {0: batch}},
                                    verbose=False)
    assert program is not None  # the dynamo exporter returns its program
    program.save(str(path), external_data=False)
    check_onnx(path)
    return path
