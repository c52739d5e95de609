"""`invoke report`: every load run under a folder in one Markdown and one HTML page: charts, a capacity table.

Beside the load runs it gathers, when they exist in the reports folder (the root's parent by default): the zoo
build's speed-up and accuracy-vs-latency charts (copied in, so the page stands alone), the served saturation
benchmark, per-arm A/B results with confidence intervals, the load-generator headroom benchmark and config searches.
It also writes a Grafana dashboard for the same PromQL the runs were read with.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server
import matplotlib.pyplot as plt  # noqa: E402

from loadtest.analysis import abstats  # noqa: E402
from loadtest.report import config_search, headroom, saturation  # noqa: E402
from loadtest.report.fmt import pct as _pct  # noqa: E402
from loadtest.report.page import Block, Image, Pre, Section, Table, Text, to_html, to_markdown  # noqa: E402
from loadtest.report.run import markdown  # noqa: E402

RESULTS = "loadtest.json"
TITLE = "Load and capacity report"
ZOO_CHARTS = ("speedup.png", "accuracy_vs_latency.png")


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


def curves_chart(runs: dict[str, dict], path: Path) -> Path | None:
    """Every step-load's curve on one log-scale chart, each with its max sustainable point: variants side by side."""
    caps = {name: run["capacity"] for name, run in runs.items() if (run.get("capacity") or {}).get("curve")}
    if len(caps) < 2:
        return None
    fig, ax = plt.subplots(figsize=(9, 6))
    for name, cap in caps.items():
        points = [p for p in cap["curve"] if p["latency_s"] is not None]
        line, = ax.plot([p["rps"] for p in points], [p["latency_s"] * 1e3 for p in points], ".-", lw=1, label=name)
        if cap["max_sustainable"]:
            best = cap["max_sustainable"]
            ax.plot(best["rps"], best["latency_s"] * 1e3, "o", color=line.get_color(), ms=8, mfc="none")
    slo = next(iter(caps.values()))["slo"]
    ax.axhline(slo["latency_s"] * 1e3, color="grey", ls="--", label="SLO")
    ax.set(xscale="log", yscale="log", xlabel="successful requests/s",
           ylabel=f"p{slo['quantile'] * 100:g} latency (ms)",
           title="Latency vs throughput per run (circles: max sustainable within the SLO)")
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def series_chart(name: str, run: dict, path: Path) -> Path | None:
    """Throughput, client p95, and Triton's queue vs compute time per request over the run, from Prometheus."""
    series = run.get("series") or {}
    if not any(series.values()):
        return None
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(7, 7), sharex=True)
    start = run["window"]["start"]
    for s in series.get("triton_inferences_per_s", []):
        _plot(top, s, start, f"Triton {s['labels'].get('model', '')}")
    for s in series.get("locust_requests_per_s", []):
        _plot(top, s, start, f"Locust {s['labels'].get('outcome', '')}", ls="--")
    for s in series.get("locust_p95_s", []):
        _plot(middle, s, start, "Locust p95", scale=1e3)
    for key, label, ls in (("triton_queue_us_per_request", "queue", "--"),
                           ("triton_compute_us_per_request", "compute", "-")):
        for s in series.get(key, []):
            _plot(bottom, s, start, f"{label} {s['labels'].get('model', '')}", scale=1e-3, ls=ls)
    top.set(ylabel="per second", title=f"{name}: time series from Prometheus")
    middle.set(ylabel="p95 (ms)")
    bottom.set(xlabel="seconds from start", ylabel="Triton ms/request")
    for ax in (top, bottom):
        if ax.lines:
            ax.legend(fontsize=7)
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
        backed_off = len(run.get("confirmations") or []) - 1
        rows.append([
            name + (" (partial)" if run.get("partial") else ""), ", ".join(run["spec"]["models"]) or "all",
            f"{best['rps']:.1f}" if best else "none met the SLO",
            f"{best['latency_s'] * 1e3:.2f}" if best else "–", f"{cap['knee']['rps']:.1f}" if cap["knee"] else "–",
            f"{plan['instance_rps']:.1f}" if plan else "–",
            str(plan["replicas"]) if plan and plan["target_rps"] > 0 else "–",
            f"{plan['cost_per_million']:.3f}" if plan and plan["cost_per_million"] is not None else "–",
            (f"{conf['predicted_rps']:.1f} / {conf['measured_rps']:.1f}, {'met' if conf['met'] else 'MISSED'}"
             + (f" (backed off {backed_off} step{'s' if backed_off > 1 else ''})" if backed_off > 0 else "")
             if conf else "–")])
    return rows


# --- extra sections --------------------------------------------------------------------------------------------------


def zoo_section(zoo: Path, root: Path) -> Section | None:
    """The build's charts, copied next to the report so that both pages stand alone."""
    found = [zoo / name for name in ZOO_CHARTS if (zoo / name).exists()]
    if not found:
        return None
    blocks: list[Block] = [Text(f"From the zoo build's report ({zoo}): in-process ONNX Runtime speed-ups against the "
                         "baseline, and accuracy against latency with the Pareto front.")]
    for chart in found:
        copy = root / f"zoo-{chart.name}"
        shutil.copyfile(chart, copy)
        blocks.append(Image(copy.name))
    return Section("Zoo build: speed-up and accuracy vs latency", blocks)


def ab_section(name: str, run: dict) -> Section | None:
    """Per-arm results of an experiment run, with 95% intervals; every arm against the first configured one."""
    if run["spec"].get("target") != "experiment" or not run["locust"]["requests"]:
        return None
    rows = abstats.arm_rows(run)
    weights = {m: 1 / len(run["spec"]["models"]) for m in run["spec"]["models"]}
    table = [["arm", "requests", "failures", "share [95% CI]", "weight", "success rate [95% CI]",
              "mean ms [95% CI]", "median ms [95% CI]"]]
    for r in rows:
        table.append([r["arm"], f"{r['requests']:.0f}", f"{r['failures']:.0f}", _ci(r["share"], 100, "%"),
                      _pct(weights.get(r["arm"])), _ci(r["success_rate"], 100, "%"), _ci(r["mean_s"], 1e3),
                      _ci(r["median_s"], 1e3)])
    blocks: list[Block] = [Text(
        f"Run `{name}`: Locust's requests by arm (the gateway's `X-Experiment-Arm`), failures included; "
        "'unassigned' are requests that failed before an arm was chosen. Share and success rate: Wilson "
        "intervals. Mean latency: exact mean, normal-approximation interval with the spread from the "
        "histogram's buckets. Median: distribution-free interval from order statistics, located in the "
        "buckets by interpolation. All intervals treat requests as independent; assignment is sticky per "
        "user key (one per Locust user), so the traffic share is really decided user by user and its true "
        "uncertainty is wider than the request-level interval shown."), Table(table)]
    control = run["spec"]["models"][0] if run["spec"]["models"] else None
    diffs = abstats.differences(rows, control) if control else []
    if diffs:
        blocks += [Text(f"Against the control arm `{control}` (difference, arm minus control):"),
                   Table([["arm", "success rate difference [95% CI]", "mean latency difference ms [95% CI]"]] +
                         [[d["arm"], _ci(d["success_rate"], 100, " pts"), _ci(d["mean_s"], 1e3)] for d in diffs])]
    if not run["locust"].get("latency_buckets"):
        blocks.append(Text("This run kept no latency histogram (it predates them): no latency intervals."))
    return Section(f"A/B results: {name}", blocks, " (PARTIAL)" if run.get("partial") else "")


def _ci(interval: abstats.Interval | None, scale: float, unit: str = "") -> str:
    if interval is None:
        return "–"
    return f"{interval.value * scale:.2f}{unit} [{interval.low * scale:.2f}, {interval.high * scale:.2f}]"


# --- the report ------------------------------------------------------------------------------------------------------


def run_section(name: str, run: dict, charts: list[Path]) -> Section:
    body = markdown(run).replace("# Load test", "### Load test", 1)
    blocks: list[Block] = [Image(c.name) for c in charts]
    return Section(f"Run: {name}", [*blocks, Pre(body)], " (PARTIAL)" if run.get("partial") else "")


def extra_sections(root: Path, reports: Path, runs: dict[str, dict]) -> list[Section]:
    found = [zoo_section(reports / "zoo", root)] + [ab_section(name, run) for name, run in runs.items()]
    pages = [(reports / "served", "saturation.json", saturation.sections),
             (reports / "loadgen", "**/headroom.json", headroom.sections),
             (reports / "config_search", "*.json", config_search.sections)]
    for folder, pattern, sections in pages:  # each benchmark's own sections, as its page shows them
        files = sorted(folder.glob(pattern)) if folder.is_dir() else []
        for path in files:
            for section in sections(json.loads(path.read_text())):
                section.title += f" ({path.relative_to(reports)})" if len(files) > 1 else ""
                found.append(section)
    return [s for s in found if s is not None]


def write_report(root: Path, reports: Path | None = None) -> tuple[Path, Path]:
    """The report of every run under `root`, with what the reports folder (`root`'s parent by default) holds."""
    from loadtest.metrics.grafana import write_dashboard

    runs = find_runs(root)
    if not runs:
        raise FileNotFoundError(f"no load runs under {root}: run `invoke loadtest` first")
    charts = {name: [c for c in (curve_chart(name, run, root / f"{name}-curve.png"),
                                 series_chart(name, run, root / f"{name}-series.png")) if c]
              for name, run in runs.items()}
    dashboard = write_dashboard(root / "grafana-dashboard.json")
    together = curves_chart(runs, root / "curves.png")
    capacity: list[Block] = [Table(capacity_rows(runs)), *([Image(together.name)] if together else [])]
    sections = [Section("Capacity", capacity)]
    sections += extra_sections(root, reports or root.parent, runs)
    sections += [run_section(name, run, charts[name]) for name, run in runs.items()]
    sections.append(Section("Grafana", [Text(f"`{dashboard.name}` (beside this report): the same PromQL as the time "
                                             "series above, for Grafana with a Prometheus data source.")]))
    md, page = root / "report.md", root / "report.html"
    md.write_text(to_markdown(sections, TITLE))
    page.write_text(to_html(sections, TITLE))
    return md, page
