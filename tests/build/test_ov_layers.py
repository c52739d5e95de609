from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from build.errors import ZooError
from build.ov_layers import LayerTime, conv_macs, latest_version, table

ov = pytest.importorskip("openvino")


def test_convolution_macs_come_from_the_static_shapes(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=4))
    torch.onnx.export(net, (torch.zeros(2, 3, 16, 16),), tmp_path / "net.onnx", dynamo=False)
    found = sorted(conv_macs(ov.convert_model(str(tmp_path / "net.onnx"))).values())
    assert found == [(2 * 8 * 16 * 16 * 2 * 9, (2, 8, 16, 16)), (2 * 8 * 16 * 16 * 3 * 9, (2, 8, 16, 16))]


def test_the_table_ranks_layers_by_time_and_sums_them() -> None:
    layers = [LayerTime("fast", "brgconv_avx512_amx_I8", (64, 64, 32, 32), 2_000_000_000, 2.0),
              LayerTime("slow", "brgconv_avx512_amx_I8", (64, 512, 4, 4), 2_000_000_000, 8.0)]
    text = table(layers, 12.0, 2, ceiling=2000.0).splitlines()
    assert text[1].startswith("slow") and text[2].startswith("fast")
    assert "250" in text[1] and "1000" in text[2], "GMAC/s per layer"
    assert text[-1] == ("convolutions: 10.00 of 12.00 ms per batch, 400 GMAC/s "
                        "(20.0% of the measured AMX-INT8 peak of 2 threads)")
    assert table(layers, 12.0, 2, ceiling=None).splitlines()[-1].endswith("400 GMAC/s"), "no peak, no share"


def test_the_newest_version_is_profiled_and_a_missing_model_is_named(tmp_path: Path) -> None:
    for version in ("1", "2", "10"):
        (tmp_path / "m" / version).mkdir(parents=True)
        (tmp_path / "m" / version / "model.xml").touch()
    assert latest_version(tmp_path / "m", "model.xml").name == "10"
    with pytest.raises(ZooError, match="no OpenVINO model"):
        latest_version(tmp_path / "missing", "model.xml")
