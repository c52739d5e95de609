"""The main job end to end in its quick profile: every variant built, reported, served by the real Triton."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from build.variants import VARIANTS
from tests.conftest import ROOT, full_data_spec

pytestmark = pytest.mark.e2e


@pytest.mark.skipif(full_data_spec() is None, reason="needs the full dataset ($TRITONZOO_DATA): calibration "
                                                      "takes 512 validation images, the mini archive has 10")
def test_invoke_zoo_quick_profile(tmp_path: Path) -> None:
    repo, report = tmp_path / "repo", tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "invoke", "zoo", "--profile", "quick", "--repo", str(repo),
                           "--report", str(report)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((report / "zoo_report.json").read_text())
    published = {r["variant"] for r in data["models"]}
    assert published | set(data["rejected"]) == set(VARIANTS), "every variant is published or says why not"
    assert {"fp32", "int8", "pruned", "distilled"} <= published
    assert data["profile"] == "quick" and not data["accuracy_meaningful"]
    assert all(r["speedup_b64"] > 0 and r["peak_memory_mb"] > 0 for r in data["models"])
    served = [line.split() for line in proc.stdout.splitlines() if line.startswith("resnet18_")]
    assert sorted(row[0] for row in served) == sorted(r["model"] for r in data["models"])
    for row in served:  # the build's accuracy on the same images equals the served accuracy
        assert row[3] == row[4], row
