"""`invoke bench-gateway`'s printed tables, from its summaries (gateway_overhead.json)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from loadtest.bench.gateway_overhead import Summary


def format_report(summaries: list[Summary], baseline: str) -> str:
    base = next(s for s in summaries if s.name == baseline)
    lines = [f"{'target':<28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs direct':>10} {'+p50 ms':>8}"]
    for s in summaries:
        lines.append(f"{s.name:<28} {s.rps:>9.1f} {s.p50_ms:>8.2f} {s.p99_ms:>8.2f} "
                     f"{s.rps / base.rps:>9.1%} {s.p50_ms - base.p50_ms:>+8.2f}")
    return "\n".join(lines)


def text(results: Mapping[int, list[Summary]], baseline: str, costs: Mapping[str, float]) -> str:
    """One table per concurrency level, then the client's CPU per call."""
    tables = [f"concurrency {c}:\n{format_report(s, baseline)}" for c, s in results.items()]
    tables.append("client CPU per inference round trip (ms):\n" +
                  "\n".join(f"  {name:<28} {ms:6.3f}" for name, ms in costs.items()))
    return "\n\n".join(tables)


def render(path: Path) -> str:
    """The tables of a gateway_overhead.json: the first target of each concurrency level (Triton direct) is the
    baseline."""
    record = json.loads(Path(path).read_text())
    results = {int(c): [Summary(**s) for s in summaries] for c, summaries in record["results"].items()}
    baseline = next(iter(results.values()))[0].name
    return text(results, baseline, record["client_cpu_ms_per_call"])
