"""The `needs_tool` marker: a missing system tool is a skip on a laptop and a failure under CI."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CASE = """
import pytest

@pytest.mark.needs_tool("prometheus")
def test_uses_prometheus():
    pass
"""


@pytest.fixture
def no_tools(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PATH", str(pytester.path))  # nothing on PATH: prometheus is missing
    pytester.makeconftest("from tests.conftest import pytest_runtest_setup")
    pytester.makeini("[pytest]\nmarkers =\n    needs_tool: test\n")
    pytester.makepyfile(CASE)
    return pytester


def test_missing_tool_is_a_skip_that_names_the_fix(no_tools: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    result = no_tools.runpytest_inprocess("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*prometheus not found: run ./setup.sh (apt-get install prometheus)*"])


def test_missing_tool_fails_under_ci(no_tools: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    result = no_tools.runpytest_inprocess()
    result.assert_outcomes(errors=1)  # a failed setup is reported as an error: red either way
    result.stdout.fnmatch_lines(["*CI is set and prometheus not found*"])
