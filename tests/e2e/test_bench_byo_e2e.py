"""`invoke bench-byo`'s machinery end to end at a small size: both cards built by real `invoke zoo` processes (empty
caches, real tritonserver for the served check), timed, and the page written from what they published."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from build.bench_byo import ByoBenchConfig, run_byo_bench
from tests.conftest import full_data_spec

pytestmark = pytest.mark.e2e


def test_both_sources_build_and_are_timed(tmp_path: Path) -> None:
    source = full_data_spec()
    if source is None:
        pytest.skip("needs the full dataset ($TRITONZOO_DATA) to cut a subset with a validation split to calibrate on")
    cfg = ByoBenchConfig(size=64, train_per_class=70, test_per_class=10, variants="fp32,int8", width=8)
    page = run_byo_bench(Path(source), tmp_path, cfg, log=lambda _: None)
    result = json.loads((tmp_path / "bench_byo.json").read_text())
    cards = {c["card"]: c for c in result["cards"]}
    assert set(cards) == {"inet", "inetonnx"}
    for name, card in cards.items():
        assert card["returncode"] == 0, (tmp_path / f"zoo-{name}.log").read_text()[-2000:]
        assert {f"{name}_fp32", f"{name}_int8"} <= set(card["models"]), card["models"]
        assert card["seconds"] > 0 and card["peak_rss_mb"] > 100 and card["phases"].startswith("time:")
        assert {"fp32", "int8"} <= set(card["variant_seconds"])
        speedups = {m["model"]: m for m in card["speedups"]}
        assert speedups[f"{name}_fp32"]["speedup_b64"] == 1.0, "the baseline's own ratio"
    assert result["provenance"]["report"] == "byo_bench"
    assert "| inetonnx | `onnx:" in page.read_text()
