"""Every report carries its provenance, and the committed default report is of today's schema and teacher."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from serving.provenance import SCHEMAS, code_version, provenance

ROOT = Path(__file__).resolve().parents[2]


def test_a_stamp_names_the_schema_the_commit_and_the_cpu() -> None:
    stamp = provenance("zoo")
    assert stamp["report"] == "zoo" and stamp["schema_version"] == SCHEMAS["zoo"]
    assert stamp["code_version"] and stamp["machine"]["logical_cpus"] >= 1 and stamp["machine"]["cpu"]


def test_the_committed_default_report_is_current_and_of_the_shipped_teacher() -> None:
    """README's picture and the targets come from reports/zoo: it is written by today's schema, names its code and
    CPU, and was built on the shipped teacher (a report of another teacher is a stale one)."""
    data = json.loads((ROOT / "reports" / "zoo" / "zoo_report.json").read_text())
    stamp = data.get("provenance") or {}
    assert (stamp.get("report"), stamp.get("schema_version")) == ("zoo", SCHEMAS["zoo"]), "regenerate reports/zoo"
    assert not stamp["code_version"].endswith("-dirty") and stamp["machine"]["cpu"]
    teacher = hashlib.sha256((ROOT / "weights" / "resnet18_cifar10.pt").read_bytes()).hexdigest()
    assert data["teacher"]["sha256"] == teacher, "reports/zoo was built on another teacher"


def test_a_rewritten_report_does_not_make_the_code_dirty_but_a_code_change_does(tmp_path: Path) -> None:
    """`invoke refresh-reports` rewrites committed reports one after another: each later step's stamp must still
    name a clean commit."""
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "a.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "init")
    (tmp_path / "reports" / "a.json").write_text('{"new": 1}')
    clean = code_version(tmp_path)
    assert clean and not clean.endswith("-dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert code_version(tmp_path) == f"{clean}-dirty"
