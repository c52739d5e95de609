"""Where a report's figures come from: its kind and schema, the code commit and the machine.

Every JSON result the project writes (a zoo build's report, a saturation, headroom, gateway-overhead or config search
benchmark, a load run) carries `provenance()`, so a figure can be traced to the code and CPU that produced it, and a
test can refuse a committed report written by an older schema than the code writes today. It lives in serving/
because both the build and the load generator write reports, and neither may import the other.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

# The schema version each kind of report is written in: raise it when a report's fields change, and regenerate the
# committed reports of that kind (tests/test_committed_reports.py fails until they are).
SCHEMAS: dict[str, int] = {
    "zoo": 6,  # 5: provenance; the student ladder; the distilled target over every student. 6: training_runs
    "saturation": 2,
    "headroom": 2,
    "loadtest": 2,
    "gateway_overhead": 2,
    "config_search": 2,
    "byo_bench": 1,
    "soak": 2,  # 2: resources, the samples of RSS and descriptors over the load; usage by halves
}


def provenance(kind: str) -> dict:
    """The stamp a report of `kind` carries."""
    return {"report": kind, "schema_version": SCHEMAS[kind], "code_version": code_version(), "machine": machine()}


def code_version(root: Path = Path(__file__).resolve().parent.parent) -> str:
    """The git commit the code ran from, marked -dirty when the tree had local changes. Changes under reports/ do
    not count: they are what the commands write (`invoke refresh-reports` rewrites one report after another), not
    code."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!reports"],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def machine() -> dict:
    """The CPU the figures come from (its model name, logical CPUs, family and model numbers, and AMX, which moves
    every INT8 and BF16 figure); read from /proc/cpuinfo, without any build code."""
    cpuinfo, fields = Path("/proc/cpuinfo"), dict[str, str]()
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first CPU's entry
    return {"cpu": fields.get("model name") or platform.processor() or "unknown", "logical_cpus": os.cpu_count(),
            "cpu_family": fields.get("cpu family"), "cpu_model": fields.get("model"),
            "amx": "amx_tile" in fields.get("flags", "").split()}
