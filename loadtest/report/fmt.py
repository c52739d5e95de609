"""The small formatting helpers every renderer shares: a missing figure is a dash."""

from __future__ import annotations

DASH = "–"


def num(value: float | None, fmt: str = ".1f") -> str:
    return DASH if value is None else format(value, fmt)


def times(value: float | None) -> str:
    """A ratio, as 1.23x."""
    return DASH if value is None else f"{value:.2f}x"


def pct(value: float | None) -> str:
    return DASH if value is None else f"{value:.0%}"


def ms(seconds: float | None) -> str:
    """Seconds, shown in milliseconds."""
    return DASH if seconds is None else f"{seconds * 1e3:.2f}"


def us_as_ms(us: float | None) -> str:
    return DASH if us is None else f"{us / 1e3:.2f}"


def provenance(results: dict) -> str:
    """Where a result's figures come from, as its JSON records it ("" for results written before it did)."""
    stamp = results.get("provenance")
    if not stamp:
        return ""
    cpu = stamp["machine"]
    family = f" (family {cpu['cpu_family']}, model {cpu['cpu_model']})" if cpu.get("cpu_family") else ""
    return (f"Measured on {cpu['cpu']}{family}, {cpu['logical_cpus']} logical CPUs, "
            f"{'with' if cpu['amx'] else 'without'} AMX; code {stamp['code_version']}, "
            f"{stamp['report']} report schema {stamp['schema_version']}.")
