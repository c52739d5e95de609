"""Read the repository manifest: the contract between the build and everything that serves it."""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "manifest.json"


def load_manifest(repo: Path) -> dict[str, dict]:
    """Model name -> metadata for every published model."""
    path = Path(repo) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: build the repository first with `invoke build`")
    return json.loads(path.read_text())["models"]
