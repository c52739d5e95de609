"""Read the repository manifest: the contract between the build and everything that serves it."""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1  # the build's manifest layout this code reads


def load_manifest(repo: Path) -> dict[str, dict]:
    """Model name -> metadata for every published model."""
    path = Path(repo) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: build the repository first with `invoke build`")
    manifest = json.loads(path.read_text())
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path} has manifest schema {manifest.get('schema_version')}; this code reads "
                         f"{SCHEMA_VERSION}: rebuild the repository or update tritonzoo")
    return manifest["models"]
