"""README is a front page whose links and commands work, and the docs build in strict mode."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Collection

import tasks
from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_docs_build_in_strict_mode(tmp_path: Path) -> None:
    """mkdocs.yml sets strict and link/anchor validation: a broken link or a page left out of nav fails."""
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "benchmarks" / "index.html").exists()


def test_readme_is_a_front_page_whose_links_resolve() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert ["test", "--all"] in invoke_commands(text), "README gives the test command CI runs"
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def invoke_commands(text: str) -> list[list[str]]:
    """Every `invoke <task> ...` in the page's code blocks and inline code, continuation lines joined."""
    snippets = [block.replace("\\\n", " ") for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S)]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    snippets += [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]
    return [[task, *rest.split()] for snippet in snippets
            for task, rest in re.findall(r"(?:^|[\s;&|(])invoke\s+([a-z][a-z0-9-]*)([^;&|#\n]*)", snippet, re.M)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_documented_command_names_a_real_task_and_options(page: Path) -> None:
    collection = Collection.from_module(tasks)
    for task_name, *args in invoke_commands(page.read_text()):
        assert task_name in collection.task_names, f"{page.name}: no task {task_name!r}"
        names = {name.replace("_", "-") for arg in collection[task_name].get_arguments() for name in arg.names}
        for arg in args:
            if arg.startswith("--"):
                option = arg[2:].split("=")[0].removeprefix("no-")
                assert option in names, f"{page.name}: `invoke {task_name}` has no option --{option}"


# Where commands write by default: named in the docs as destinations, not as committed figures.
OUTPUT_FOLDERS = ("reports/loadtest", "reports/config_search", "reports/gateway_overhead.json", "reports/byo224")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_file_a_page_names_for_its_figures_exists(page: Path) -> None:
    """A figure in the docs names the committed file it comes from (a report, a shipped run); that file is here.
    Older files are cited as 'in git history at <commit>', without their path."""
    for path in sorted(set(re.findall(r"\b(?:reports|weights)/[\w./{},*-]*[\w/}*]", page.read_text()))):
        if path.startswith(OUTPUT_FOLDERS):
            continue
        brace = re.fullmatch(r"(.*)\{(.*)\}(.*)", path)
        expanded = [brace[1] + part + brace[3] for part in brace[2].split(",")] if brace else [path]
        for name in expanded:
            assert list(ROOT.glob(name)), f"{page.name} names {name}, which is not in the repository"


def test_every_report_step_is_a_real_task_with_real_options() -> None:
    collection = Collection.from_module(tasks)
    commands = invoke_commands("\n".join(f"`{c}`" for c in tasks.REPORT_STEPS.values()))
    assert len(commands) == len(tasks.REPORT_STEPS) + 2, "the loadgen and capacity steps run two commands each"
    for task_name, *args in commands:
        names = {name.replace("_", "-") for arg in collection[task_name].get_arguments() for name in arg.names}
        assert all(a[2:] in names for a in args if a.startswith("--")), (task_name, args)
