"""`invoke report`: every load run under a folder in one Markdown and one HTML page: charts, a capacity table.

Beside the load runs it gathers, when they exist in the reports folder (the root's parent by default): the zoo
build's speed-up and accuracy-vs-latency charts (copied in, so the page stands alone), the served saturation
benchmark, per-arm A/B results with confidence intervals, the load-generator headroom benchmark and config searches.
It also writes a Grafana dashboard for the same PromQL the runs were read with.
"""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server
import matplotlib.pyplot as plt  # noqa: E402

from loadtest.analysis import abstats  # noqa: E402
from loadtest.report.fmt import num as _num  # noqa: E402
from loadtest.report.fmt import pct as _pct  # noqa: E402
from loadtest.report.fmt import times as _x  # noqa: E402
from loadtest.report.run import markdown  # noqa: E402

RESULTS = "loadtest.json"
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


# --- page structure: sections of blocks, rendered to Markdown and to HTML ---------------------------------------------


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Table:
    rows: list[list[str]]               # the first row is the header


@dataclass(frozen=True)
class Image:
    name: str                           # a file beside the report


@dataclass(frozen=True)
class Pre:
    text: str


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)
    flag: str = ""                      # shown after the title in HTML (e.g. PARTIAL)


# --- extra sections --------------------------------------------------------------------------------------------------


def zoo_section(zoo: Path, root: Path) -> Section | None:
    """The build's charts, copied next to the report so that both pages stand alone."""
    found = [zoo / name for name in ZOO_CHARTS if (zoo / name).exists()]
    if not found:
        return None
    blocks: list = [Text(f"From the zoo build's report ({zoo}): in-process ONNX Runtime speed-ups against the "
                         "baseline, and accuracy against latency with the Pareto front.")]
    for chart in found:
        copy = root / f"zoo-{chart.name}"
        shutil.copyfile(chart, copy)
        blocks.append(Image(copy.name))
    return Section("Zoo build: speed-up and accuracy vs latency", blocks)


def saturation_section(path: Path) -> Section | None:
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    plan = data["plan"]
    rows = [["model", "served img/s", "rounds img/s", f"speed-up vs {data['baseline']}", "in-process img/s",
             "served / in-process", "client cores", "served / in-process beside the client's CPU", "failed requests"]]
    for model, r in data["models"].items():
        rows.append([model, f"{r['served_ips']:.0f}", ", ".join(f"{v:.0f}" for v in r.get("rounds_ips", [])),
                     _x(r.get("speedup_vs_baseline")), _num(r.get("in_process_ips"), ".0f"),
                     _x(r.get("served_over_in_process")), _num(r.get("client_cores"), ".2f"),
                     _x(r.get("served_over_in_process_taxed")), str(r["failed_requests"])])
    cpu = data.get("machine")
    on = (f" on {cpu['cpu']}, {cpu['logical_cpus']} logical CPUs, {'with' if cpu['amx'] else 'without'} AMX"
          if cpu else "")
    text = (f"Batch {plan['batch']}, {plan['in_flight']} requests in flight, median of {plan['rounds']} interleaved "
            f"rounds of {plan['seconds']:g} s (`invoke bench-served`){on}; "
            "in process: the backend's own session, driven as the backend drives it, right after each served "
            "window, then again beside a CPU tax the size of the client's CPU; ratios: medians of the per-round "
            "ratios.")
    return Section("Served throughput at saturation", [Text(text), Table(rows)])


def saturation_markdown(path: Path) -> str:
    """`invoke bench-served`'s own page (saturation.md): the report's section, on its own."""
    section = saturation_section(path)
    assert section is not None, path
    return _markdown([section], section.title)


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
    blocks = [Text(f"Run `{name}`: Locust's requests by arm (the gateway's `X-Experiment-Arm`), failures included; "
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


def headroom_section(folder: Path) -> Section | None:
    """Every `invoke bench-loadgen` result under the folder (the trivial model, and variants run in batches)."""
    files = sorted(folder.glob("**/headroom.json")) if folder.is_dir() else []
    if not files:
        return None
    blocks: list = [Text("`invoke bench-loadgen`: Locust against wrk on the same Triton endpoint and payload; "
                         "throughput counted by Triton, medians of interleaved rounds.")]
    for path in files:
        data = json.loads(path.read_text())
        flag = " (PARTIAL)" if data.get("partial") else ""
        trivial, variants = data.get("trivial"), data.get("variants") or {}
        if trivial and len(trivial["summary"]) > 1:
            blocks += [Text(f"Trivial model ({path.parent.name}/{path.name}, {data['plan']['connections']} "
                            f"connections){flag}:"), Table(_headroom_rows(trivial["summary"]))]
            v = trivial.get("verdict") or {}
            if v:
                taxed = f"; {_x(v['vs_taxed'])} wrk+tax" if v.get("vs_taxed") else ""
                blocks.append(Text(f"Best Locust configuration: {v['best']} at {_x(v['vs_wrk'])} wrk (target "
                                   f"{v['target']:.1f}x: {'met' if v['met'] else 'not met'}){taxed}."))
        for model, var in variants.items():
            within = [f"{n} {'within' if w else 'NOT within'} 10% of wrk" for n, w in var["within_10pct"].items()]
            within += [f"{n} {'within' if w else 'NOT within'} 10% of wrk+tax"
                       for n, w in var.get("within_10pct_taxed", {}).items()]
            blocks += [Text(f"{model}{flag}: {', '.join(within)}."), Table(_headroom_rows(var["summary"]))]
    return Section("Load-generator headroom", blocks)


def _headroom_rows(summary: dict) -> list[list[str]]:
    rows = [["generator", "success/s", "vs wrk", "vs wrk+tax", "failures (Triton / client)", "Triton cores",
             "generator cores", "generator µs/req"]]
    for name, r in summary.items():
        rows.append([name, _num(r["rps"], ".0f"), _x(r["vs_wrk"]), _x(r.get("vs_taxed")), f"{r['server_failures']} / "
                     f"{_num(r['client_failures'], '.0f')}", _num(r["cores"]["triton"], ".2f"),
                     _num(r["cores"]["generator"], ".2f"), _num(r["us_per_request"]["generator"], ".0f")])
    return rows


def config_search_section(folder: Path) -> Section | None:
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        return None
    blocks: list = [Text("`invoke tune-config`: max batch size x batching delay x instances, each trial under the same "
                         "closed-loop load; the best throughput within the SLO is written to the repository.")]
    for path in files:
        data = json.loads(path.read_text())
        rows = [["max batch", "delay µs", "instances", "success/s", "p95 ms", "p99 ms", "failures", "SLO"]]
        rows += [[str(t["max_batch_size"]), str(t["max_queue_delay_us"]), str(t["instances"]), f"{t['rps']:.1f}",
                  _num(t["p95_ms"], ".2f"), _num(t["p99_ms"], ".2f"), str(t["failures"]),
                  "met" if t["meets_slo"] else "missed"] for t in data["trials"]]
        chosen = data["chosen"]
        blocks += [Text(f"{data['model']}: current {_trial(data['current'])}; chosen "
                        f"{_trial(chosen) if chosen else 'none'}; {data['decision']}; written: "
                        f"{'yes' if data['written'] else 'no'}."), Table(rows)]
    return Section("Config search", blocks)


def _trial(t: dict) -> str:
    return f"batch {t['max_batch_size']} / delay {t['max_queue_delay_us']} µs / {t['instances']} instance(s)"


def _ci(interval: abstats.Interval | None, scale: float, unit: str = "") -> str:
    if interval is None:
        return "–"
    return f"{interval.value * scale:.2f}{unit} [{interval.low * scale:.2f}, {interval.high * scale:.2f}]"


# --- the report ------------------------------------------------------------------------------------------------------


def run_section(name: str, run: dict, charts: list[Path]) -> Section:
    body = markdown(run).replace("# Load test", "### Load test", 1)
    return Section(f"Run: {name}", [Image(c.name) for c in charts] + [Pre(body)],
                   " (PARTIAL)" if run.get("partial") else "")


def extra_sections(root: Path, reports: Path, runs: dict[str, dict]) -> list[Section]:
    found = [zoo_section(reports / "zoo", root), saturation_section(reports / "served" / "saturation.json")]
    found += [ab_section(name, run) for name, run in runs.items()]
    found += [headroom_section(reports / "loadgen"),
              config_search_section(reports / "config_search")]
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
    sections = [Section("Capacity", [Table(capacity_rows(runs))] + ([Image(together.name)] if together else []))]
    sections += extra_sections(root, reports or root.parent, runs)
    sections += [run_section(name, run, charts[name]) for name, run in runs.items()]
    sections.append(Section("Grafana", [Text(f"`{dashboard.name}` (beside this report): the same PromQL as the time "
                                             "series above, for Grafana with a Prometheus data source.")]))
    md, page = root / "report.md", root / "report.html"
    md.write_text(_markdown(sections))
    page.write_text(_html(sections))
    return md, page


def _markdown(sections: list[Section], title: str = "Load and capacity report") -> str:
    lines = [f"# {title}"]
    for section in sections:
        lines += ["", f"## {section.title}", ""]
        for block in section.blocks:
            lines += _md_block(block) + [""]
    return "\n".join(lines).rstrip() + "\n"


def _md_block(block) -> list[str]:
    if isinstance(block, Table):
        head, *rows = block.rows
        return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |"
                                                                            for r in rows]
    if isinstance(block, Image):
        return [f"![{Path(block.name).stem}]({block.name})"]
    return [block.text]  # Text and Pre: the run summaries are Markdown already


def _html(sections: list[Section]) -> str:
    body = ["<h1>Load and capacity report</h1>"]
    for section in sections:
        flag = f" <strong>{html.escape(section.flag.strip())}</strong>" if section.flag else ""
        body.append(f"<h2>{html.escape(section.title)}{flag}</h2>")
        body += [_html_block(b) for b in section.blocks]
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto}td,th{border:1px solid #ccc;padding:4px}" \
            "table{border-collapse:collapse}img{max-width:100%}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>Load report</title><style>{style}</style>" \
           f"</head><body>{''.join(body)}</body></html>\n"


def _html_block(block) -> str:
    def cells(row: list[str], tag: str) -> str:
        return "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in row) + "</tr>"

    if isinstance(block, Table):
        return "<table>" + cells(block.rows[0], "th") + "".join(cells(r, "td") for r in block.rows[1:]) + "</table>"
    if isinstance(block, Image):
        return f'<img src="{html.escape(block.name)}" alt="{html.escape(Path(block.name).stem)}">'
    if isinstance(block, Pre):
        return f"<pre>{html.escape(block.text)}</pre>"
    return f"<p>{html.escape(block.text)}</p>"
