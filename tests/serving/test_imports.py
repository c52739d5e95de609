"""serving/ stands alone: it imports nothing from loadtest/ (nor build/), and its modules form no import circle."""

from __future__ import annotations

import pytest

from tests.serving.imports import circles, graph, import_fresh, imports, modules


def test_serving_imports_nothing_from_loadtest_or_build() -> None:
    others = set(modules("loadtest")) | set(modules("build")) | {"loadtest", "build"}
    for name, path in modules("serving").items():
        assert not imports(path, others), f"{name} imports {sorted(imports(path, others))}"


def test_serving_has_no_import_circle() -> None:
    assert circles(graph("serving")) == []


@pytest.mark.parametrize("module", ["serving.gateway.experiments", "serving.gateway.canary"])
def test_the_experiments_and_the_canary_import_on_their_own(module: str) -> None:
    proc = import_fresh(module)
    assert proc.returncode == 0, proc.stderr
