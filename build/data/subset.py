"""A smaller dataset cut from an ImageFolder archive: fewer classes, fewer images a class."""

from __future__ import annotations

import tarfile
from collections import Counter
from pathlib import Path


def subset_archive(source: Path, classes: list[str] | None, out: Path, per_class: dict[str, int] | None = None) -> Path:
    """An ImageFolder archive (.tar.gz with train/ and test/) with only `classes` of `source` (None: all of them): a
    dataset with another class count; `per_class`: at most this many images of each class in each split (e.g.
    {"train": 170, "test": 50}), the first in the archive's order."""
    taken: Counter[tuple[str, str]] = Counter()
    with tarfile.open(source) as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            parts = member.name.split("/")
            if not (member.isfile() and len(parts) >= 3 and (classes is None or parts[-2] in classes)):
                continue
            split = parts[-3]
            if per_class is not None and taken[split, parts[-2]] >= per_class.get(split, 0):
                continue
            taken[split, parts[-2]] += 1
            dst.addfile(member, src.extractfile(member))
    return out
