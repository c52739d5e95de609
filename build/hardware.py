"""What the target machine supports, and the quantization settings that follow from it."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from onnxruntime.quantization import QuantType


@dataclass(frozen=True)
class Hardware:
    machine: str
    cores: int
    cpu_flags: frozenset[str]
    gpu: str | None = None
    gpu_capability: tuple[int, int] | None = None
    cpu: str = ""  # the model name /proc/cpuinfo gives: every figure says which CPU it comes from

    @property
    def vnni(self) -> bool:
        return bool({"avx512_vnni", "avx_vnni"} & self.cpu_flags)

    @property
    def isa(self) -> list[str]:
        """The instruction sets that matter for inference, as the kernel names them."""
        wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
        return [f for f in wanted if f in self.cpu_flags]

    def summary(self) -> dict:
        return {"machine": self.machine, "cpu": self.cpu, "cores": self.cores, "isa": self.isa, "gpu": self.gpu,
                "gpu_capability": list(self.gpu_capability) if self.gpu_capability else None}


@dataclass(frozen=True)
class Int8Types:
    activation: QuantType
    weight: QuantType
    reduce_range: bool
    reason: str
    symmetric_activations: bool = False  # zero point 0: what TensorRT's explicit quantization takes
    quantize_bias: bool = True  # INT32 biases behind DequantizeLinear; TensorRT refuses them


def detect() -> Hardware:
    gpu, capability = None, None
    try:
        import torch

        if torch.cuda.is_available():
            gpu, capability = torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0)
    except ImportError:
        pass
    return Hardware(platform.machine(), len(os.sched_getaffinity(0)), _cpu_flags(), gpu, capability, cpu_model())


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """E.g. 'AMD EPYC 9R14 96-Core Processor, family 25 model 17', or the machine type where cpuinfo says less."""
    fields: dict[str, str] = {}
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine()
    family, model = fields.get("cpu family"), fields.get("model")
    return f"{name}, family {family} model {model}" if family and model else name


def _cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    if not cpuinfo.exists():
        return frozenset()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def int8_types(hw: Hardware, runtimes: Iterable[str] = ()) -> Int8Types:
    """The INT8 encoding for the build's runtimes (the ones requested and usable here). With TensorRT among them:
    TensorRT's (signed, symmetric, float biases). ORT CPU INT8: unsigned activations with signed weights run on
    VNNI's u8*s8 dot products.

    Signed activations leave most convolutions in FP32 between Q/DQ pairs (slower than FP32 here), and
    without VNNI the u8*s8 path can saturate, so the weights lose a bit (reduce_range). A GPU alone changes
    nothing: the CPU runtimes keep their faster encoding unless TensorRT is built too.
    """
    if "tensorrt" in runtimes:
        # One INT8 file serves every runtime of the build, and TensorRT reads only signed, symmetric Q/DQ with
        # float biases; the CPU runtimes still run it, more slowly than with unsigned activations on x86.
        return Int8Types(QuantType.QInt8, QuantType.QInt8, False, "TensorRT requested: signed symmetric "
                         "activations and float biases, as TensorRT takes them", symmetric_activations=True,
                         quantize_bias=False)
    if hw.machine in ("aarch64", "arm64"):
        return Int8Types(QuantType.QInt8, QuantType.QInt8, False, "Arm: signed activations and weights")
    if hw.vnni:
        return Int8Types(QuantType.QUInt8, QuantType.QInt8, False, "x86 with VNNI: u8 activations, s8 weights")
    return Int8Types(QuantType.QUInt8, QuantType.QInt8, True, "x86 without VNNI: u8/s8 with 7-bit weights")
