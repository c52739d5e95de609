from __future__ import annotations

from pathlib import Path

from onnxruntime.quantization import QuantType

from build.hardware import Hardware, _cpu_flags, cpu_model, detect, int8_types


def hw(machine: str = "x86_64", *flags: str) -> Hardware:
    return Hardware(machine, 2, frozenset(flags))


def test_int8_types_follow_the_isa() -> None:
    vnni = int8_types(hw("x86_64", "avx2", "avx512f", "avx512_vnni"))
    assert (vnni.activation, vnni.weight, vnni.reduce_range) == (QuantType.QUInt8, QuantType.QInt8, False)
    plain = int8_types(hw("x86_64", "avx2"))
    assert plain.reduce_range and plain.activation == QuantType.QUInt8
    arm = int8_types(hw("aarch64"))
    assert (arm.activation, arm.weight) == (QuantType.QInt8, QuantType.QInt8)
    gpu_hw = Hardware("x86_64", 2, frozenset({"avx512_vnni"}), "H100", (9, 0))
    trt = int8_types(gpu_hw, ["onnxruntime", "tensorrt"])
    assert (trt.activation, trt.symmetric_activations, trt.quantize_bias) == (QuantType.QInt8, True, False), \
        "TensorRT's explicit quantization: signed, symmetric, float biases"
    assert int8_types(gpu_hw, ["onnxruntime", "openvino"]) == vnni, \
        "a GPU alone does not cost the CPU runtimes their faster encoding: TensorRT must be requested"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_vnni amx_int8\n\nprocessor\t: 1\n")
    assert _cpu_flags(info) == {"fpu", "avx2", "avx512_vnni", "amx_int8"}
    assert _cpu_flags(tmp_path / "missing") == frozenset()


def test_summary_lists_the_isa_that_matters() -> None:
    summary = hw("x86_64", "fpu", "avx2", "amx_int8").summary()
    assert summary["isa"] == ["avx2", "amx_int8"] and summary["cores"] == 2
    assert detect().cores >= 1


def test_the_cpu_is_named_by_its_model(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\n")
    assert cpu_model(info) == "Intel(R) Xeon(R) Platinum 8481C, family 6 model 143"
    assert detect().summary()["cpu"], "the build records which CPU its figures come from"
