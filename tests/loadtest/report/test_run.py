from __future__ import annotations

from loadtest.report.run import markdown
from tests.loadtest.runs.test_collect import PARTIAL


def test_partial_results_are_marked() -> None:
    text = markdown(PARTIAL)
    assert "PARTIAL RESULTS" in text and "interrupted" in text
    assert "| m | 12 | 2 | 5.0 | 1.20 |" in text
