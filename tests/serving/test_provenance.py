"""Every report carries its provenance, and no committed report is older than the code that writes its kind."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from serving.provenance import SCHEMAS, provenance

ROOT = Path(__file__).resolve().parents[2]
# file name -> the kind of report written under that name
REPORT_FILES = {"zoo_report.json": "zoo", "saturation.json": "saturation", "headroom.json": "headroom",
                "loadtest.json": "loadtest", "gateway_overhead.json": "gateway_overhead"}


def committed_reports() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "reports"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    return [ROOT / p for p in tracked if Path(p).name in REPORT_FILES]


def test_a_stamp_names_the_schema_the_commit_and_the_cpu() -> None:
    stamp = provenance("zoo")
    assert stamp["report"] == "zoo" and stamp["schema_version"] == SCHEMAS["zoo"]
    assert stamp["code_version"] and stamp["machine"]["logical_cpus"] >= 1 and stamp["machine"]["cpu"]


@pytest.mark.parametrize("path", committed_reports(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_committed_report_is_older_than_the_code_that_writes_its_kind(path: Path) -> None:
    """Stale figures cannot sit beside new code: a report of an older schema is regenerated or removed."""
    kind = REPORT_FILES[path.name]
    stamp = json.loads(path.read_text()).get("provenance") or {}
    assert stamp.get("report") == kind, f"{path} carries no provenance: written before reports were stamped"
    assert stamp["schema_version"] == SCHEMAS[kind], \
        f"{path} is a {kind} report of schema {stamp['schema_version']}; the code writes {SCHEMAS[kind]}: regenerate it"
    assert stamp["code_version"] != "unknown" and stamp["machine"]["cpu"]


def test_the_committed_zoo_reports_come_from_the_shipped_teacher() -> None:
    """README's figures are the shipped teacher's: a report of another teacher is a stale one."""
    teacher = hashlib.sha256((ROOT / "weights" / "resnet18_cifar10.pt").read_bytes()).hexdigest()
    zoo = [p for p in committed_reports() if p.name == "zoo_report.json"]
    assert zoo, "the default report is committed"
    for path in zoo:
        assert json.loads(path.read_text())["teacher"]["sha256"] == teacher, f"{path} was built on another teacher"
