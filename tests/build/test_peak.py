from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from build import peak
from build.hardware import detect

needs_compiler = pytest.mark.needs_tool("cc")


@needs_compiler
def test_every_kernel_this_cpu_has_is_timed_and_the_others_are_named() -> None:
    flags = detect().cpu_flags
    peaks = peak.measure(1, flags, seconds=0.05, repeats=1)
    for kernel, flag in peak.KERNELS.items():
        if flag in flags:
            assert peaks.gmacs_per_s[kernel] > 0, peaks.unmeasured.get(kernel)
        else:
            assert peaks.unmeasured[kernel] == f"this CPU lacks {flag}"
    assert peaks.summary()["threads"] == 1


@needs_compiler
def test_a_kernel_the_cpu_is_said_to_lack_is_not_run() -> None:
    peaks = peak.measure(1, frozenset(), seconds=0.05, repeats=1)
    assert peaks.gmacs_per_s == {}
    assert set(peaks.unmeasured) == set(peak.KERNELS)


def test_without_a_compiler_nothing_is_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    peaks = peak.measure(2, frozenset({"avx512f", "amx_int8"}))
    assert peaks.gmacs_per_s == {}
    assert all("no C compiler" in why for why in peaks.unmeasured.values())


@needs_compiler
def test_a_source_that_does_not_compile_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    broken = tmp_path / "peak.c"
    broken.write_text("int main( {")
    monkeypatch.setattr(peak, "SOURCE", broken)
    peaks = peak.measure(1, frozenset({"avx512f"}))
    assert "could not build peak.c" in peaks.unmeasured["fp32_avx512"]


def test_merged_measurements_pool_their_runs() -> None:
    before = peak.Peaks(2, {"int8_amx": [2000.0, 2100.0]}, {"bf16_amx": "this CPU lacks amx_bf16"})
    after = peak.Peaks(2, {"int8_amx": [4000.0], "fp32_avx512": [200.0]})
    merged = before.merged(after)
    assert merged.runs["int8_amx"] == [2000.0, 2100.0, 4000.0]
    assert merged.gmacs_per_s == {"int8_amx": 2100.0, "fp32_avx512": 200.0}
    assert merged.unmeasured == {"bf16_amx": "this CPU lacks amx_bf16"}
    assert "int8_amx         2100 GMAC/s on 2 thread(s), median of runs 2000, 2100, 4000" in merged.text()
    assert "bf16_amx     not measured: this CPU lacks amx_bf16" in merged.text()
