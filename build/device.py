"""Where torch work runs: CUDA when present, else all CPU cores with bf16 autocast."""

from __future__ import annotations

import os

import torch


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def configure_threads() -> None:
    torch.set_num_threads(len(os.sched_getaffinity(0)))


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast: 2.5x faster than FP32 on AMX CPUs, and the usual choice on recent GPUs."""
    return torch.autocast(device.type, dtype=torch.bfloat16)
