"""loadtest/'s modules form no import circle, with serving/ (which it may import) taken in."""

from __future__ import annotations

import pytest

from tests.serving.imports import circles, graph, import_fresh


def test_loadtest_and_serving_have_no_import_circle() -> None:
    assert circles(graph("serving", "loadtest")) == []


@pytest.mark.parametrize("module", ["loadtest.bench.gateway_overhead", "loadtest.report.gateway"])
def test_the_gateway_benchmark_and_its_report_import_on_their_own(module: str) -> None:
    proc = import_fresh(module)
    assert proc.returncode == 0, proc.stderr
