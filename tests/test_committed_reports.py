"""Every committed report is written by today's code: its JSON's provenance names the current schema of its kind,
a clean commit and the CPU. Raising a kind's schema (serving/provenance.py) fails here until its reports are
regenerated (`invoke refresh-reports`, `invoke soak`, `invoke bench-byo`). And the reports `invoke refresh-reports`
writes come from one build: one commit, one machine (issue 31).

A report listed in AWAITING_REBUILD is exempt until its command runs again; the list may only shrink: a report
regenerated with a stamp must leave it (the second test fails otherwise)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.provenance import SCHEMAS
from tests.conftest import ROOT

REPORTS = ROOT / "reports"
# The main JSON of each kind of report, by where the commands write it.
PATTERNS = ("**/zoo_report.json", "served/saturation.json", "loadgen/**/headroom.json", "capacity/*/loadtest.json",
            "soak/*/soak.json", "byo224/bench_byo.json")
# Where `invoke refresh-reports` writes, from the one build it makes (tasks.py, REPORT_STEPS).
ONE_BUILD = ("zoo/", "efficiency/", "served/", "loadgen/", "capacity/")
AWAITING_REBUILD = {  # folder -> why it is not current yet
    "loadgen/nice10": "the rebuild of 2026-12-07 stopped its step for time; `invoke refresh-reports` rewrites it",
}


def reports() -> list[Path]:
    return sorted({p for pattern in PATTERNS for p in REPORTS.glob(pattern)})


def stamp(path: Path) -> dict:
    return json.loads(path.read_text()).get("provenance") or {}


def under(path: Path, *folders: str) -> bool:
    return path.relative_to(REPORTS).as_posix().startswith(tuple(f"{folder.rstrip('/')}/" for folder in folders))


def awaiting(path: Path) -> bool:
    return under(path, *AWAITING_REBUILD)


def current(path: Path) -> bool:
    held = stamp(path)
    if held.get("report") not in SCHEMAS:
        return False
    return SCHEMAS[held["report"]] == held.get("schema_version") and \
        not held["code_version"].endswith("-dirty") and bool(held["machine"]["cpu"])


@pytest.mark.parametrize("path", [p for p in reports() if not awaiting(p)], ids=lambda p: str(p.relative_to(REPORTS)))
def test_a_committed_report_is_of_todays_schema_and_names_its_commit_and_cpu(path: Path) -> None:
    assert current(path), f"{path.relative_to(ROOT)} was written by older code: regenerate it"


@pytest.mark.parametrize("folder", sorted(AWAITING_REBUILD))
def test_the_list_of_reports_awaiting_the_rebuild_only_shrinks(folder: str) -> None:
    held = [p for p in reports() if under(p, folder)]
    assert held and not all(current(p) for p in held), f"reports/{folder} is current now: take it off the list"


def test_every_kind_of_report_is_found_where_its_command_writes() -> None:
    assert {stamp(p).get("report") for p in reports()} >= {"zoo", "saturation", "headroom", "loadtest", "soak"} and \
        len(reports()) > 20


def test_the_refreshed_reports_come_from_one_build_one_commit_one_machine() -> None:
    held = [p for p in reports() if under(p, *ONE_BUILD) and not awaiting(p)]
    origins = {(stamp(p)["code_version"], json.dumps(stamp(p)["machine"], sort_keys=True)) for p in held}
    assert len(origins) == 1, f"the refreshed reports name {len(origins)} commits or machines: {sorted(origins)}"
