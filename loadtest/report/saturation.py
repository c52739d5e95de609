"""`invoke bench-served`'s page (saturation.md) and its section in the combined report, from its results."""

from __future__ import annotations

from pathlib import Path

from loadtest.report.fmt import num
from loadtest.report.fmt import times as _x
from loadtest.report.page import Section, Table, Text, partial_text, to_markdown, write_page

TITLE = "Served throughput at saturation"


def sections(data: dict) -> list[Section]:
    plan = data["plan"]
    rows = [["model", "served img/s", "rounds img/s", f"speed-up vs {data['baseline']}", "in-process img/s",
             "served / in-process", "client cores", "served / in-process beside the client's CPU", "failed requests"]]
    for model, r in data["models"].items():
        rows.append([model, f"{r['served_ips']:.0f}", ", ".join(f"{v:.0f}" for v in r.get("rounds_ips", [])),
                     _x(r.get("speedup_vs_baseline")), num(r.get("in_process_ips"), ".0f"),
                     _x(r.get("served_over_in_process")), num(r.get("client_cores"), ".2f"),
                     _x(r.get("served_over_in_process_taxed")), str(r["failed_requests"])])
    cpu = data.get("machine")
    on = (f" on {cpu['cpu']}, {cpu['logical_cpus']} logical CPUs, {'with' if cpu['amx'] else 'without'} AMX"
          if cpu else "")
    text = (f"Batch {plan['batch']}, {plan['in_flight']} requests in flight, median of {plan['rounds']} interleaved "
            f"rounds of {plan['seconds']:g} s (`invoke bench-served`){on}; "
            "in process: the backend's own session, driven as the backend drives it, right after each served "
            "window, then again beside a CPU tax the size of the client's CPU; ratios: medians of the per-round "
            "ratios.")
    return [Section(TITLE, [*partial_text(data, "benchmark"), Text(text), Table(rows)])]


def markdown(data: dict) -> str:
    return to_markdown(sections(data), TITLE)


def write(results_json: Path) -> Path:
    return write_page(results_json, markdown)
