"""`invoke report`: every load run under a folder in one Markdown and one HTML page: charts, a capacity table."""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server
import matplotlib.pyplot as plt  # noqa: E402

from loadtest.summary import markdown  # noqa: E402

RESULTS = "loadtest.json"


def find_runs(root: Path) -> dict[str, dict]:
    """Run name (its folder) -> results, for every loadtest.json directly below `root` (confirmations are inside)."""
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(root.glob(f"*/{RESULTS}"))}


def curve_chart(name: str, run: dict, path: Path) -> Path | None:
    """Latency against throughput, one point per step, with the knee and the SLO."""
    cap = run.get("capacity")
    if not cap or not cap["curve"]:
        return None
    points = [p for p in cap["curve"] if p["latency_s"] is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p["rps"] for p in points], [p["latency_s"] * 1e3 for p in points], "o-", label=name)
    for p in points:
        ax.annotate(str(p["users"]), (p["rps"], p["latency_s"] * 1e3), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    if cap["knee"]:
        ax.plot(cap["knee"]["rps"], cap["knee"]["latency_s"] * 1e3, "rs", label="knee")
    ax.axhline(cap["slo"]["latency_s"] * 1e3, color="grey", ls="--", label="SLO")
    ax.set(xlabel="successful requests/s", ylabel=f"p{cap['slo']['quantile'] * 100:g} latency (ms)",
           title=f"{name}: latency vs throughput (labels: users)")
    ax.legend()
    return _save(fig, path)


def series_chart(name: str, run: dict, path: Path) -> Path | None:
    """Throughput and client p95 over the run, from Prometheus's range queries."""
    series = run.get("series") or {}
    if not any(series.values()):
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    start = run["window"]["start"]
    for s in series.get("triton_inferences_per_s", []):
        _plot(top, s, start, f"Triton {s['labels'].get('model', '')}")
    for s in series.get("locust_requests_per_s", []):
        _plot(top, s, start, f"Locust {s['labels'].get('outcome', '')}", ls="--")
    for s in series.get("locust_p95_s", []):
        _plot(bottom, s, start, "Locust p95", scale=1e3)
    top.set(ylabel="per second", title=f"{name}: time series from Prometheus")
    bottom.set(xlabel="seconds from start", ylabel="p95 (ms)")
    top.legend(fontsize=7)
    return _save(fig, path)


def _plot(ax, series: dict, start: float, label: str, scale: float = 1.0, ls: str = "-") -> None:
    points = [(t - start, v * scale) for t, v in series["points"] if v is not None]
    if points:
        ax.plot(*zip(*points), ls=ls, label=label)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def capacity_rows(runs: dict[str, dict]) -> list[list[str]]:
    rows = [["run", "models", "max req/s under SLO", "latency ms", "knee req/s", "req/s per instance",
             "replicas", "cost per M", "confirmation (predicted / measured req/s, SLO)"]]
    for name, run in runs.items():
        cap = run.get("capacity")
        if not cap:
            continue
        best, plan, conf = cap["max_sustainable"], cap["plan"], run.get("confirmation")
        rows.append([
            name + (" (partial)" if run.get("partial") else ""), ", ".join(run["spec"]["models"]) or "all",
            f"{best['rps']:.1f}" if best else "none met the SLO",
            f"{best['latency_s'] * 1e3:.2f}" if best else "–", f"{cap['knee']['rps']:.1f}" if cap["knee"] else "–",
            f"{plan['instance_rps']:.1f}" if plan else "–",
            str(plan["replicas"]) if plan and plan["target_rps"] > 0 else "–",
            f"{plan['cost_per_million']:.3f}" if plan and plan["cost_per_million"] is not None else "–",
            (f"{conf['predicted_rps']:.1f} / {conf['measured_rps']:.1f}, {'met' if conf['met'] else 'MISSED'}"
             if conf else "–")])
    return rows


def write_report(root: Path) -> tuple[Path, Path]:
    runs = find_runs(root)
    if not runs:
        raise FileNotFoundError(f"no load runs under {root}: run `invoke loadtest` first")
    charts = {name: [c for c in (curve_chart(name, run, root / f"{name}-curve.png"),
                                 series_chart(name, run, root / f"{name}-series.png")) if c]
              for name, run in runs.items()}
    table = capacity_rows(runs)
    md, page = root / "report.md", root / "report.html"
    md.write_text(_markdown(runs, charts, table))
    page.write_text(_html(runs, charts, table))
    return md, page


def _markdown(runs: dict[str, dict], charts: dict[str, list[Path]], table: list[list[str]]) -> str:
    lines = ["# Load and capacity report", "", "## Capacity", ""]
    lines += ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])] + ["| " + " | ".join(r) + " |"
                                                                               for r in table[1:]]
    for name, run in runs.items():
        lines += ["", f"## Run: {name}", ""] + [f"![{c.stem}]({c.name})" for c in charts[name]]
        lines += ["", markdown(run).replace("# Load test", "### Load test", 1)]
    return "\n".join(lines) + "\n"


def _html(runs: dict[str, dict], charts: dict[str, list[Path]], table: list[list[str]]) -> str:
    def cells(row: list[str], tag: str) -> str:
        return "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in row) + "</tr>"

    body = ["<h1>Load and capacity report</h1>", "<h2>Capacity</h2>",
            "<table>" + cells(table[0], "th") + "".join(cells(r, "td") for r in table[1:]) + "</table>"]
    for name, run in runs.items():
        flag = " <strong>(PARTIAL)</strong>" if run.get("partial") else ""
        body.append(f"<h2>Run: {html.escape(name)}{flag}</h2>")
        body += [f'<img src="{html.escape(c.name)}" alt="{html.escape(c.stem)}">' for c in charts[name]]
        body.append(f"<pre>{html.escape(markdown(run))}</pre>")
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto}td,th{border:1px solid #ccc;padding:4px}" \
            "table{border-collapse:collapse}img{max-width:100%}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>Load report</title><style>{style}</style>" \
           f"</head><body>{''.join(body)}</body></html>\n"
