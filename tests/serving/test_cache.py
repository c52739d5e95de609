from __future__ import annotations

from pathlib import Path

import pytest

from serving.cache import CACHE_ENV, default_cache_dir


def test_the_cache_is_the_environments_else_the_users(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert default_cache_dir() == tmp_path
    for unset in (monkeypatch.delenv, lambda name: monkeypatch.setenv(name, "")):
        unset(CACHE_ENV)
        assert default_cache_dir() == Path.home() / ".cache" / "tritonzoo"
