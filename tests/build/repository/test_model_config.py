from __future__ import annotations

from pathlib import Path

from tritonclient.grpc import model_config_pb2 as pb

from build.repository.model_config import Batching, RuntimeFields, build_config, from_pbtxt, model_io, to_pbtxt
from build.runtimes.onnxruntime import OnnxRuntime


def test_onnxruntime_config_carries_what_triton_needs() -> None:
    cfg = build_config("resnet18_fp32", OnnxRuntime().triton_fields(Path("unused"), threads=2),
                       model_io((3, 32, 32)), 10,
                       batching=Batching(max_batch_size=32, max_queue_delay_us=500, instance_count=2))
    parsed = from_pbtxt(to_pbtxt(cfg))
    assert parsed == cfg
    assert parsed.platform == "onnxruntime_onnx" and parsed.default_model_filename == "model.onnx"
    assert parsed.max_batch_size == 32
    assert parsed.dynamic_batching.max_queue_delay_microseconds == 500
    (group,) = parsed.instance_group
    assert group.count == 2 and group.kind == pb.ModelInstanceGroup.KIND_CPU
    (inp,) = parsed.input
    assert inp.data_type == pb.TYPE_UINT8 and inp.format == pb.ModelInput.FORMAT_NCHW and list(inp.dims) == [3, 32, 32]
    (out,) = parsed.output
    assert out.label_filename == "labels.txt" and list(out.dims) == [10]
    assert parsed.parameters["intra_op_thread_count"].string_value == "2"


def test_backend_models_have_no_platform() -> None:
    cfg = build_config("m", RuntimeFields(backend="openvino", filename="model.xml", parameters={"NUM_STREAMS": "1"}),
                       model_io((3, 32, 32)), 10)
    text = to_pbtxt(cfg)
    assert 'backend: "openvino"' in text and "platform" not in text
