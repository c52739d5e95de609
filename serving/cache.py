"""The project's cache folder, declared once: $TRITONZOO_CACHE, else ~/.cache/tritonzoo. The build (datasets,
teacher logits, shipped runs, TensorRT timing caches), Triton's Python backends and the releases' environments all
keep their caches under it."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "TRITONZOO_CACHE"


def default_cache_dir() -> Path:
    """$TRITONZOO_CACHE when it is set and not empty, else ~/.cache/tritonzoo."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tritonzoo")
