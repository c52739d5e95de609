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
    for kernel, needs in peak.KERNELS.items():
        if set(needs) <= flags:
            assert peaks.gmacs_per_s[kernel] > 0, peaks.unmeasured.get(kernel)
        else:
            assert peaks.unmeasured[kernel].startswith("this CPU lacks ")
    assert peaks.summary()["threads"] == 1


@needs_compiler
@pytest.mark.parametrize("kernel", sorted(peak.KERNELS))
def test_a_cpu_said_to_have_a_kernels_flags_times_that_kernel(kernel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever this machine is: the flags alone decide what runs (a fake run stands in for the binary)."""
    ran: list[str] = []

    def fake_run(binary: Path, name: str, threads: int, seconds: float) -> float:
        ran.append(name)
        return 100.0

    monkeypatch.setattr(peak, "_run", fake_run)
    peaks = peak.measure(2, frozenset(peak.KERNELS[kernel]), repeats=2, machine="x86_64")
    assert kernel in ran and ran.count(kernel) == 2
    assert all(set(peak.KERNELS[k]) <= set(peak.KERNELS[kernel]) for k in ran), "only kernels whose flags it has"
    assert peaks.unmeasured.keys() == peak.KERNELS.keys() - set(ran)


def test_an_arm_cpu_measures_nothing_and_says_why() -> None:
    peaks = peak.measure(2, frozenset({"asimd", "asimddp"}), machine="aarch64")
    assert peaks.gmacs_per_s == {}
    assert all("aarch64" in why and "no kernels" in why for why in peaks.unmeasured.values())


def test_each_precision_is_judged_against_its_fastest_measured_kernel() -> None:
    best = peak.best_peaks({"fp32_avx512": 190.0, "fp32_avx2": 95.0, "int8_avx512_vnni": 700.0,
                            "int8_amx": 2500.0, "bf16_avx512": 180.0})
    assert best == {"fp32": {"kernel": "fp32_avx512", "gmacs_per_s": 190.0},
                    "int8": {"kernel": "int8_amx", "gmacs_per_s": 2500.0},
                    "bf16": {"kernel": "bf16_avx512", "gmacs_per_s": 180.0}}
    assert peak.best_peaks({"fp32_avx2": 95.0}) == {"fp32": {"kernel": "fp32_avx2", "gmacs_per_s": 95.0}}


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
    assert merged.gmacs_per_s == {"int8_amx": 4000.0, "fp32_avx512": 200.0}, "the best run: a ceiling"
    assert merged.unmeasured == {"bf16_amx": "this CPU lacks amx_bf16"}
    assert "int8_amx             4000 GMAC/s on 2 thread(s), best of runs 2000, 2100, 4000" in merged.text()
    assert "bf16_amx         not measured: this CPU lacks amx_bf16" in merged.text()
