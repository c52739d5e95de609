"""The registry's default set: what the main job builds on a machine, and what it leaves out with a reason."""

from __future__ import annotations

from build.hardware import Hardware
from build.variants import VARIANTS, default_variants, optional_variants

CPU = Hardware("x86_64", 2, frozenset({"avx512_vnni", "avx512_bf16"}))
GPU = Hardware("x86_64", 2, frozenset({"avx512_vnni"}), "H100", (9, 0))


def test_a_cpu_leaves_out_what_it_serves_no_better_and_says_why() -> None:
    left_out = optional_variants(CPU)
    assert set(left_out) == {"sparse", "fp16"}
    assert "dense runtimes" in left_out["sparse"] and "GPU" in left_out["fp16"]
    assert set(default_variants(CPU)) == set(VARIANTS) - {"sparse", "fp16"}


def test_a_gpu_builds_fp16_by_default() -> None:
    assert "fp16" in default_variants(GPU) and "sparse" not in default_variants(GPU)


def test_no_default_variant_needs_a_left_out_parent() -> None:
    for hw in (CPU, GPU):
        chosen = set(default_variants(hw))
        assert all(VARIANTS[v].parent in chosen | {"teacher"} for v in chosen)
