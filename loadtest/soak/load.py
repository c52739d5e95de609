"""The soak's load: a headless Locust running the project's SoakUser at a constant arrival rate through the gateway,
started through the one Locust command builder (loadtest/runs/command.py), every request recorded by its
`events.request` hook (loadtest/locust/locustfile.py) and its own totals kept (--csv)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadtest.analysis.shapes import ConstantPlan
from loadtest.protocol.images import save_payloads
from loadtest.runs import command
from loadtest.runs.plan import LoadPlan
from loadtest.soak.client import Record, read_records
from loadtest.soak.schedule import Schedule
from serving.manifest import read_manifest

IMAGES = 16  # payload images per arm, in turn


def soak_images(repo: Path, arms: list[str], path: Path) -> Path:
    """Each arm's payload images at its own input dims: fixed random pixels. The soak measures the stack under
    faults, not accuracy, so it needs no dataset."""
    entries = read_manifest(repo).models
    rng = np.random.default_rng(0)
    return save_payloads({m: rng.integers(0, 256, (IMAGES, *entries[m].io.input_dims), dtype=np.uint8)
                          for m in arms}, path)


def soak_plan(repo: Path, arms: list[str], experiment: str, schedule: Schedule, folder: Path,
              exporter_port: int) -> LoadPlan:
    """The Locust plan: the schedule's users paced to its rate for its duration, every request recorded."""
    return LoadPlan(models=tuple(arms), repo=str(repo), images_file=str(soak_images(repo, arms, folder / "images.npz")),
                    images=IMAGES, experiment=experiment, exporter_ports=(exporter_port,),
                    run_file=str(folder / "run-times.json"), max_seconds=schedule.duration_s,
                    records_file=str(folder / "records.jsonl"), shape="constant",
                    constant=ConstantPlan(schedule.users, schedule.duration_s, schedule.rate, spawn_rate=1000.0))


@dataclass(frozen=True)
class LocustLoad:
    """Locust for one soak, run by `loadtest.runs.drive.drive_locust` (which Ctrl-C interrupts gracefully): its
    command line, when its test began, and what it recorded and counted."""

    folder: Path
    gateway_url: str
    plan: LoadPlan

    def command(self) -> list[str]:
        """Also clears what an earlier run in the same folder left, so that nothing of it is read back."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("records.jsonl.*"):
            stale.unlink()
        Path(self.plan.run_file).unlink(missing_ok=True)
        plan_file = self.plan.write(self.folder / "locust-plan.json")
        options = ["--headless", "--stop-timeout", "10", "--only-summary", "--csv", str(self.folder / "locust"),
                   "--loglevel", "WARNING"]
        return command.locust_command("soak", self.gateway_url, plan_file, "constant", options=options)

    def started(self) -> float | None:
        """When Locust's test began (its test_start hook writes the run file): the soak's time zero; None: not yet."""
        try:
            return float(json.loads(Path(self.plan.run_file).read_text())["start"])
        except (OSError, ValueError, KeyError):
            return None

    def records(self) -> list[Record]:
        return read_records(Path(self.plan.records_file))

    def totals(self) -> dict:
        """Locust's own statistics (its --csv 'Aggregated' row): requests and failures, as Locust counted them."""
        path = self.folder / "locust_stats.csv"
        rows = list(csv.DictReader(path.read_text().splitlines())) if path.exists() else []
        total = next((r for r in rows if r.get("Name") == "Aggregated"), None)
        if total is None:
            return {"requests": None, "failures": None}
        return {"requests": int(total["Request Count"]), "failures": int(total["Failure Count"])}
