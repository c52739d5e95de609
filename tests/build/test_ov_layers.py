from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from build.errors import ZooError
from build.ov_layers import LayerTime, conv_macs, latest_version, peak_kernel, table

ov = pytest.importorskip("openvino")


def test_convolution_macs_come_from_the_static_shapes(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=4))
    torch.onnx.export(net, (torch.zeros(2, 3, 16, 16),), tmp_path / "net.onnx", dynamo=False)
    found = sorted(conv_macs(ov.convert_model(str(tmp_path / "net.onnx"))).values())
    assert found == [(2 * 8 * 16 * 16 * 2 * 9, (2, 8, 16, 16)), (2 * 8 * 16 * 16 * 3 * 9, (2, 8, 16, 16))]


def test_the_table_ranks_layers_by_time_and_gives_each_its_share_of_the_matching_peak() -> None:
    layers = [LayerTime("fast", "brgconv_avx512_amx_I8", (64, 64, 32, 32), 2_000_000_000, 2.0),
              LayerTime("slow", "brgconv_avx512_amx_I8", (64, 512, 4, 4), 2_000_000_000, 8.0),
              LayerTime("head", "jit_avx512_FP32", (64, 10, 1, 1), 100_000_000, 1.0)]
    text = table(layers, 12.0, 2, {"int8_amx": 2000.0, "fp32_avx512": 200.0}).splitlines()
    assert text[1].startswith("slow") and text[2].startswith("fast") and text[3].startswith("head")
    assert text[1].split()[-3:] == ["250", "int8_amx", "12.5%"] and text[2].split()[-2:] == ["int8_amx", "50.0%"]
    assert text[3].split()[-3:] == ["100", "fp32_avx512", "50.0%"], "each layer against its own kernel's peak"
    assert text[-1] == ("convolutions: 11.00 of 12.00 ms per batch, 373 GMAC/s "
                        "(18.6% of the measured int8_amx peak of 2 threads)")
    no_peaks = table(layers, 12.0, 2, {}).splitlines()
    assert no_peaks[1].endswith("–") and no_peaks[-1].endswith("(no measured peak for int8_amx on this CPU)")


@pytest.mark.parametrize(("exec_type", "kernel"), [
    ("brgconv_avx512_amx_I8", "int8_amx"), ("brgconv_avx512_amx_bf16", "bf16_amx"),
    ("brgconv_avx512_core_vnni_I8", "int8_avx512_vnni"), ("jit_avx512_core_vnni_1x1_U8", "int8_avx512_vnni"),
    ("brgconv_avx2_vnni_I8", "int8_avx_vnni"), ("jit_avx2_I8", None), ("brgconv_avx512_core_bf16_BF16", "bf16_avx512"),
    ("brgconv_avx512_FP32", "fp32_avx512"), ("jit_avx2_FP32", "fp32_avx2"), ("ref_any_FP32", None),
])
def test_each_primitive_is_bounded_by_the_peak_of_its_instructions(exec_type: str, kernel: str | None) -> None:
    assert peak_kernel(exec_type) == kernel


def test_the_newest_version_is_profiled_and_a_missing_model_is_named(tmp_path: Path) -> None:
    for version in ("1", "2", "10"):
        (tmp_path / "m" / version).mkdir(parents=True)
        (tmp_path / "m" / version / "model.xml").touch()
    assert latest_version(tmp_path / "m", "model.xml").name == "10"
    with pytest.raises(ZooError, match="no OpenVINO model"):
        latest_version(tmp_path / "missing", "model.xml")
