from __future__ import annotations

from pathlib import Path

from loadtest.soak.faults import MALFORMED, next_version


def test_next_version_follows_the_highest_numbered_folder(tmp_path: Path) -> None:
    for name in ("1", "3", "config.d", "notes"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file, not a version")
    assert next_version(tmp_path) == 4


def test_every_malformed_kind_is_a_different_mistake() -> None:
    assert len({what for what, _, _ in MALFORMED}) == len({ctype for _, ctype, _ in MALFORMED}) == len(MALFORMED)
