"""The build report: one JSON file, one Markdown page, and two charts, from what a build published."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on build machines
import matplotlib.pyplot as plt  # noqa: E402

from build.peak import best_peaks  # noqa: E402
from build.pipeline import DEFAULT_TRAIN_BUDGET_TMACS  # noqa: E402
from build.steps.publish import model_name  # noqa: E402
from build.variants import PARITY_TARGETS, REFERENCE_VARIANTS, ParityTarget, students, zoo_targets  # noqa: E402
from build.variants.targets import PARITY  # noqa: E402
from build.zoo import ZooBuild  # noqa: E402
from serving.manifest import ModelEntry  # noqa: E402
from serving.provenance import provenance  # noqa: E402

OV_KERNELS = "OpenVINO's convolution kernels"
HOW_DETERMINED = {"onnxruntime": "ONNX Runtime's profiled convolution ops", "openvino": OV_KERNELS,
                  "openvino_bf16": OV_KERNELS}
BUDGETS = (0.5, 1.0, 2.0)  # accuracy budgets (points) that recommendations are made for


def _row(entry: ModelEntry, baseline_top1: float | None) -> dict:
    metrics, speed = entry.metrics, entry.speed
    top1 = entry.top1
    rate, macs = speed.throughput_b64_ips if speed else None, metrics.get("macs")
    return {
        "model": entry.model, "variant": entry.variant, "runtime": entry.runtime,
        "parent": entry.parent, "recipe": list(entry.recipe),
        "top1": top1, "drop_points": None if baseline_top1 is None else round((baseline_top1 - top1) * 100, 2),
        "params": metrics.get("params"), "macs": metrics.get("macs"),
        "size_mb": entry.size_mb, "compressed_mb": entry.compressed_mb,
        "latency_b1_p50_ms": speed.latency_b1_p50_ms if speed else None,
        "latency_b1_p99_ms": speed.latency_b1_p99_ms if speed else None,
        "throughput_b64_ips": rate,
        "speedup_b1": speed.speedup_b1 if speed else None, "speedup_b64": speed.speedup_b64 if speed else None,
        "gmacs_per_s": round(rate * macs / 1e9, 1) if rate and macs else None,
        "precision_ran": entry.runtime_info.get("precision_ran"),
        "precision": entry.precision,
        "peak_memory_mb": entry.memory.model_peak_mb if entry.memory else None,
        "flags": entry.flags,
        "details": {k: metrics[k] for k in ("pruning", "sparsity", "distillation", "qat", "quantization", "graph")
                    if k in metrics},
    }


def _targets(rows: list[dict], best: dict[str, dict]) -> list[dict]:
    return _fixed_targets(rows) + [_parity_target(rows, best, t) for t in PARITY_TARGETS]


def _fixed_targets(rows: list[dict]) -> list[dict]:
    by_model = {(r["runtime"], r["variant"]): r for r in rows}
    results: list[dict] = []
    for target in zoo_targets():
        label, runtime, b64, b1, drop = (target.label, target.runtime, target.min_speedup_b64, target.min_speedup_b1,
                                         target.max_drop_points)
        candidates = [by_model[runtime, v] for v in target.variants
                      if by_model.get((runtime, v), {}).get("speedup_b64")]
        if not candidates:
            results.append({"target": label, "status": "not built"})
            continue
        within = [c for c in candidates if c["drop_points"] is not None and c["drop_points"] <= drop]
        best = max(within or candidates, key=lambda c: c["speedup_b64"])
        met = (best in within and best["speedup_b64"] >= b64 and (b1 is None or best["speedup_b1"] >= b1))
        results.append({"target": label, "model": best["model"], "min_speedup_b64": b64, "min_speedup_b1": b1,
                        "max_drop_points": drop, "speedup_b64": best["speedup_b64"], "speedup_b1": best["speedup_b1"],
                        "drop_points": best["drop_points"], "status": "met" if met else "missed"})
    return results


def _parity_target(rows: list[dict], best: dict[str, dict], target: ParityTarget) -> dict:
    label, precision, drop = target.label, target.precision, target.max_drop_points
    if precision not in best or "fp32" not in best:
        return {"target": label, "status": "no peak",
                "why": f"no {precision.upper() if precision not in best else 'FP32'} peak was measured on this CPU"}
    ratio = best[precision]["gmacs_per_s"] / best["fp32"]["gmacs_per_s"]
    candidates = [r for r in rows if r["variant"] in REFERENCE_VARIANTS and r["speedup_b64"]
                  and precision_ran(r)[0] == precision]
    if not candidates:
        return {"target": label, "status": "not built", "peak_ratio": round(ratio, 2)}
    within = [c for c in candidates if c["drop_points"] is not None and c["drop_points"] <= drop]
    top = max(within or candidates, key=lambda c: c["speedup_b64"])
    needed = PARITY * ratio
    return {"target": label, "model": top["model"], "min_speedup_b64": round(needed, 2), "min_speedup_b1": None,
            "max_drop_points": drop, "speedup_b64": top["speedup_b64"], "speedup_b1": top["speedup_b1"],
            "drop_points": top["drop_points"], "peak_ratio": round(ratio, 2),
            "basis": f"{PARITY} x the {precision.upper()}:FP32 peak ratio {ratio:.2f} "
                     f"({best[precision]['kernel']} / {best['fp32']['kernel']})",
            "status": "met" if top in within and top["speedup_b64"] >= needed else "missed"}


def precision_ran(row: dict) -> tuple[str, str]:
    """(fp32 | int8 | bf16, how it was determined): from the kernels the runtime recorded, else what the variant
    declares."""
    ran = {"f32": "fp32"}.get(row["precision_ran"], row["precision_ran"])
    if ran:
        return ran, HOW_DETERMINED.get(row["runtime"], "the runtime's record")
    return row["precision"] or "fp32", "the variant's declared precision (no kernel record)"


def efficiency(rows: list[dict], peaks: dict | None) -> dict | None:
    """Each reference model's batch-64 GMAC/s as a share of the peak of the precision it ran in, on this CPU.

    The ratio of two precisions' peaks bounds what precision alone can gain: at equal shares of their peaks,
    INT8 is `peak_ratios["int8"]` times as fast as FP32.
    """
    best = _best(peaks)
    if not best:
        return None
    models = []
    for row in rows:
        if row["variant"] not in REFERENCE_VARIANTS or not row["gmacs_per_s"]:
            continue
        precision, how = precision_ran(row)
        peak = best.get(precision)
        models.append({"model": row["model"], "runtime": row["runtime"], "precision": precision, "determined_by": how,
                       "gmacs_per_s": row["gmacs_per_s"], "kernel": peak and peak["kernel"],
                       "peak_gmacs_per_s": peak and peak["gmacs_per_s"],
                       "share": peak and round(row["gmacs_per_s"] / peak["gmacs_per_s"], 3)})
    ratios = {p: round(b["gmacs_per_s"] / best["fp32"]["gmacs_per_s"], 2) for p, b in best.items()
              if p != "fp32" and "fp32" in best}
    return {"models": models, "peaks": best, "peak_ratios": ratios}


def _best(peaks: dict | None) -> dict[str, dict]:
    """Per precision, the best measured peak (reports written before `best` existed are recomputed)."""
    return (peaks or {}).get("best") or best_peaks((peaks or {}).get("gmacs_per_s", {}))


def recommendations(rows: list[dict]) -> list[dict]:
    """Per accuracy budget: the (variant, runtime) to serve for throughput and for batch-1 latency."""
    out, baseline = [], baseline_variant(rows)
    for budget in BUDGETS:
        within = [r for r in rows if r["speedup_b64"] and r["drop_points"] is not None and r["drop_points"] <= budget]
        if not within:
            continue
        for goal, key in (("throughput", "speedup_b64"), ("latency", "speedup_b1")):
            best = max(within, key=lambda r: r[key])
            out.append({"budget_points": budget, "goal": goal, "model": best["model"], "variant": best["variant"],
                        "runtime": best["runtime"], "speedup": best[key], "drop_points": best["drop_points"],
                        "reason": f"{best[key]:.2f}x {baseline} at batch {64 if goal == 'throughput' else 1} "
                                  f"({best['throughput_b64_ips']:.0f} img/s, {best['latency_b1_p50_ms']:.2f} ms), "
                                  f"{best['drop_points']:+.2f} points, measured on this machine"})
    return out


def baseline_variant(rows: list[dict]) -> str:
    """The variant of the baseline model (the one every speed-up is a ratio to), as the entries name it."""
    return next((r["variant"] for r in rows if r["is_baseline"]), "fp32")


def report_data(build: ZooBuild) -> dict:
    entries = sorted(build.entries.values(), key=lambda e: (e.runtime, e.model))
    by_name = {e.model: e for e in entries}
    base = next((e for e in entries if e.is_baseline), None)
    rows = [{**_row(e, by_name[e.baseline].top1 if e.baseline in by_name else None),
             "is_baseline": e.is_baseline} for e in entries]
    return {
        "provenance": provenance("zoo"),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": build.options.profile,
        "family": build.card.name,
        "card": {"source": build.card.source, "input": list(build.card.input), "classes": build.classes},
        "accuracy_meaningful": build.options.profile != "quick",
        "baseline": base.model if base else None,
        "test_images": entries[0].accuracy.images if entries else 0,
        "threads": build.options.threads,
        **build.provenance,
        "models": rows,
        "rejected": build.rejected,
        "not_applicable": build.not_applicable,
        "targets": _targets(rows, _best(build.provenance.get("peaks"))),
        "efficiency": efficiency(rows, build.provenance.get("peaks")),
        "recommendations": recommendations(rows),
        "training_runs": training_runs(rows, build.provenance["dataset"]["checksum"]),
    }


RUN_TECHNIQUES = ("distillation", "pruning", "sparsity", "qat")  # the details that record a training run


def training_runs(rows: list[dict], checksum: str) -> list[dict]:
    """Each training run the models rest on, once (a child model carries its parent's run too): shipped or trained
    in this build, where and how long it trained, and whether on this build's data (shipped runs are keyed by
    teacher, classes and split size, not by the data's bytes)."""
    runs: dict[str, dict] = {}
    for r in sorted(rows, key=lambda r: len(r["variant"])):  # a run is named after the shortest variant using it
        for technique in RUN_TECHNIQUES:
            d = r["details"].get(technique, {})
            if "run_key" not in d or d["run_key"] in runs:
                continue
            seen = d.get("data_checksum")
            runs[d["run_key"]] = {
                "run_key": d["run_key"], "variant": r["variant"], "technique": technique,
                "shipped": d.get("shipped"), "trained_on": d.get("trained_on"), "train_seconds": d.get("train_seconds"),
                "budget": d.get("train_budget"),
                "data": "this build's" if seen == checksum or "shipped" not in d else
                        f"other bytes ({seen[:12]})" if seen else "not recorded"}
    return list(runs.values())


def write_reports(builds: list[ZooBuild], out_dir: Path) -> list[Path]:
    """One card: its report in `out_dir`. Several: each card's in `out_dir/<name>/`, and a cross-model page."""
    if len(builds) == 1:
        return write_report(builds[0], out_dir)
    paths = [p for b in builds for p in write_report(b, out_dir / b.card.name)]
    cross = out_dir / "models.md"
    cross.parent.mkdir(parents=True, exist_ok=True)
    cross.write_text(cross_model_markdown([report_data(b) for b in builds]))
    return [*paths, cross]


def cross_model_markdown(reports: list[dict]) -> str:
    """Models of different cards side by side, one table per dataset they share: accuracy, latency, throughput."""
    lines = ["# Models across cards", "",
             "Each card's models against each other, for cards built on the same dataset (its checksum). Speed "
             "figures come from each card's own interleaved run in this build; compare them across cards as "
             "separate runs on the same machine.", ""]
    by_data: dict[str, list[dict]] = {}
    for data in reports:
        by_data.setdefault(data["dataset"]["checksum"], []).append(data)
    for checksum, group in by_data.items():
        lines += [f"## Dataset {group[0]['dataset']['source']} ({checksum[:12]})", "",
                  "| model | card | input | top-1 | b1 p50 ms | b64 img/s |", "|---|---|---|---:|---:|---:|"]
        rows = sorted(((d, r) for d in group for r in d["models"]), key=lambda dr: -dr[1]["top1"])
        lines += [f"| {r['model']} | {d['family']} | {'x'.join(map(str, d['card']['input']))} | {r['top1']:.2%} | "
                  f"{_fmt(r['latency_b1_p50_ms'], '.2f')} | {_fmt(r['throughput_b64_ips'], '.0f')} |"
                  for d, r in rows]
        lines.append("")
    return "\n".join(lines)


def write_report(build: ZooBuild, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    data = report_data(build)
    paths = [out_dir / "zoo_report.json", out_dir / "speedup.png", out_dir / "accuracy_vs_latency.png",
             out_dir / "zoo_report.md"]
    paths[0].write_text(json.dumps(data, indent=2) + "\n")
    measured = [r for r in data["models"] if r["speedup_b64"] is not None]
    if measured:
        speedup_chart(measured, paths[1])
        pareto_chart(measured, paths[2])
    else:
        paths = [paths[0], paths[3]]
    paths[-1].write_text(markdown(data, charts=bool(measured)))
    return paths


def speedup_chart(rows: list[dict], path: Path) -> None:
    rows = sorted(rows, key=lambda r: r["speedup_b64"])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r["speedup_b64"] for r in rows], 0.4, label="batch 64 throughput")
    ax.barh([i - 0.2 for i in y], [r["speedup_b1"] for r in rows], 0.4, label="batch 1 latency")
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(list(y), [r["model"] for r in rows])
    ax.set_xlabel(f"speed-up vs {baseline_variant(rows)} (same run)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pareto_front(rows: list[dict]) -> list[dict]:
    """Models no other model beats on both latency and accuracy, fastest first."""
    front, best = [], -1.0
    for r in sorted(rows, key=lambda r: (r["latency_b1_p50_ms"], -r["top1"])):
        if r["top1"] > best:
            front.append(r)
            best = r["top1"]
    return front


def pareto_chart(rows: list[dict], path: Path) -> None:
    """One colour per runtime; only the Pareto front is labelled, so the labels stay readable."""
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for runtime in sorted({r["runtime"] for r in rows}):
        mine = [r for r in rows if r["runtime"] == runtime]
        ax.scatter([r["latency_b1_p50_ms"] for r in mine], [r["top1"] * 100 for r in mine], label=runtime, alpha=0.8)
    front = pareto_front(rows)
    for r in front:
        ax.annotate(r["model"], (r["latency_b1_p50_ms"], r["top1"] * 100), fontsize=7,
                    xytext=(4, -10), textcoords="offset points")
    # a staircase: the best accuracy any model reaches within each latency
    ax.plot([r["latency_b1_p50_ms"] for r in front], [r["top1"] * 100 for r in front], "r--", drawstyle="steps-post",
            label="Pareto front (labelled)")
    ax.set_xscale("log")
    ax.set_xlabel("batch-1 latency, p50 (ms, log scale)")
    ax.set_ylabel("test top-1 (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def markdown(data: dict, charts: bool) -> str:
    card = data["card"]
    lines = [f"# Zoo build report: {data['family']} ({data['profile']} profile)", "",
             f"Source `{card['source']}`, input {card['input']} (C, H, W), {len(card['classes'])} classes.", ""]
    if not data["accuracy_meaningful"]:
        lines += ["> **Quick profile: trained on a subset for a few steps. Its accuracies are meaningless;** "
                  "it checks the machinery, not the models.", ""]
    hw = data["hardware"]
    lines += [f"Machine: {hw.get('cpu') or hw['machine']} ({hw['machine']}), {hw['cores']} cores "
              f"({', '.join(hw['isa'])}), GPU: {hw['gpu'] or 'none'}; "
              f"{data['threads']} threads. Code {data['code_version']}, teacher {data['teacher']['sha256'][:12]}. "
              f"Speed-ups are ratios to `{data['baseline']}` measured in the same interleaved run "
              "(medians over rounds, after warm-up).", "",
              "| model | runtime | ran as | top-1 | drop (pts) | params | MMACs | MB | MB zlib | b1 p50 ms | "
              "b1 p99 ms | b64 img/s | GMAC/s | speed-up b1 | speed-up b64 | peak MB | flags |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["models"]:
        flags = "; ".join(r["flags"].values())
        macs = r["macs"] / 1e6 if r["macs"] else None
        lines.append(
            f"| {r['model']} | {r['runtime']} | {r['precision_ran'] or '–'} | {r['top1']:.2%} | "
            f"{_fmt(r['drop_points'], '+.2f')} | {_fmt(r['params'], ',')} | "
            f"{_fmt(macs, '.1f')} | {r['size_mb']:.2f} | {_fmt(r['compressed_mb'], '.2f')} | "
            f"{_fmt(r['latency_b1_p50_ms'], '.2f')} | {_fmt(r['latency_b1_p99_ms'], '.2f')} | "
            f"{_fmt(r['throughput_b64_ips'], '.0f')} | {_fmt(r['gmacs_per_s'], '.0f')} | "
            f"{_fmt(r['speedup_b1'], '.2f')}x | "
            f"{_fmt(r['speedup_b64'], '.2f')}x | {_fmt(r['peak_memory_mb'], '.1f')} | {flags} |")
    lines += ["", "## Targets", "",
              "| target | model | speed-up b64 (min) | speed-up b1 (min) | drop pts (max) | status |",
              "|---|---|---|---|---|---|"]
    for t in data["targets"]:
        if t["status"] in ("not built", "no peak"):
            lines.append(f"| {t['target']} | – | – | – | – | {t['status']}{': ' + t['why'] if 'why' in t else ''} |")
            continue
        lines.append(f"| {t['target']} | {t['model']} | {t['speedup_b64']:.2f}x ({t['min_speedup_b64']}x) | "
                     f"{_fmt(t['speedup_b1'], '.2f')}x ({_fmt(t['min_speedup_b1'], '')}) | "
                     f"{t['drop_points']:+.2f} ({t['max_drop_points']}) | {t['status']} |")
    lines += [f"\n{t['target']}: the minimum speed-up is {t['basis']}, measured on this CPU in this build."
              for t in data["targets"] if "basis" in t]
    lines += _efficiency_lines(data["efficiency"], data.get("peaks"))
    lines += _matrix_lines(data) + _student_lines(data) + _recommendation_lines(data) + _run_lines(data)
    if data["rejected"]:
        lines += ["", "## Not published", ""] + [f"- **{v}**: {why}" for v, why in data["rejected"].items()]
    if data["not_applicable"]:
        lines += ["", "## Variants and runtimes that do not apply", ""] + [
            f"- **{m}**: {why}" for m, why in data["not_applicable"].items()]
    lines += ["", "## How each variant was made", ""] + [
        f"- **{r['model']}**: {' → '.join(r['recipe'])}. {_details(r['details'])}" for r in data["models"]]
    if charts:
        lines += ["", "![speed-up](speedup.png)", "", "![accuracy vs latency](accuracy_vs_latency.png)"]
    return "\n".join(lines) + "\n"


def _efficiency_lines(eff: dict | None, peaks: dict | None) -> list[str]:
    if eff is None:
        return []
    runs = "; ".join(f"{k} {', '.join(f'{r:.0f}' for r in v)}" for k, v in (peaks or {}).get("runs", {}).items())
    unmeasured = "; ".join(f"{k}: {why}" for k, why in (peaks or {}).get("unmeasured", {}).items())
    lines = ["", "## Hardware efficiency", "",
             "Batch-64 rate of each reference model against this CPU's peak for the precision it ran in, both "
             "measured in this build. A peak is the best of the `build/peak.c` runs before and after the models' "
             f"timing, all threads at once (GMAC/s: {runs}); each precision's peak is its fastest kernel here.",
             *([f"Not measured: {unmeasured}."] if unmeasured else []), "",
             "| model | ran as | determined by | GMAC/s | peak kernel | peak GMAC/s | share |",
             "|---|---|---|---:|---|---:|---:|"]
    lines += [f"| {m['model']} | {m['precision']} | {m['determined_by']} | {m['gmacs_per_s']:.0f} | "
              f"{m['kernel'] or 'none measured'} | {_fmt(m['peak_gmacs_per_s'], '.0f')} | "
              f"{'–' if m['share'] is None else format(m['share'], '.1%')} |" for m in eff["models"]]
    for precision, ratio in eff["peak_ratios"].items():
        lines += ["", f"The {precision.upper()} peak ({eff['peaks'][precision]['kernel']}) is {ratio:.1f}x the FP32 "
                      f"peak ({eff['peaks']['fp32']['kernel']}): {precision.upper()} gains that much over FP32 only "
                      "where both run at the same share of their peaks."]
    return lines


def _matrix_lines(data: dict) -> list[str]:
    """Variant x runtime: the batch-64 speed-up of each published model, or why there is none."""
    runtimes = sorted({r["runtime"] for r in data["models"]})
    cells = {(r["variant"], r["runtime"]): f"{_fmt(r['speedup_b64'], '.2f')}x, {r['top1']:.2%}" for r in data["models"]}
    lines = ["", "## Variant × runtime (batch-64 speed-up, top-1)", "",
             "| variant | " + " | ".join(runtimes) + " |", "|---" * (len(runtimes) + 1) + "|"]
    for variant in dict.fromkeys(r["variant"] for r in data["models"]):
        row = [cells.get((variant, rt), _absent(data, variant, rt)) for rt in runtimes]
        lines.append(f"| {variant} | " + " | ".join(row) + " |")
    return lines


def _student_lines(data: dict) -> list[str]:
    """The student families side by side, on the reference runtime: what each costs and keeps of the teacher."""
    ladder = students()  # the registry's students, as each variant declares its Distill step
    rows = [r for r in data["models"] if "distillation" in r["details"] and r["runtime"] == "onnxruntime"
            and r["variant"] in ladder]
    if not rows:
        return []
    lines = ["", "## Student families", "",
             "| variant | student | MMACs | params | top-1 | drop (pts) | speed-up b64 |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        macs = r["macs"] / 1e6 if r["macs"] else None
        lines.append(f"| {r['variant']} | {r['details']['distillation']['student']} | {_fmt(macs, '.1f')} | "
                     f"{_fmt(r['params'], ',')} | {r['top1']:.2%} | {_fmt(r['drop_points'], '+.2f')} | "
                     f"{_fmt(r['speedup_b64'], '.2f')}x |")
    return lines


def _absent(data: dict, variant: str, runtime: str) -> str:
    model = model_name(data["family"], variant, runtime)
    if model in data["not_applicable"] or variant in data["not_applicable"]:
        return "n/a"
    return "rejected" if model in data["rejected"] or variant in data["rejected"] else "–"


def _run_lines(data: dict) -> list[str]:
    runs = data.get("training_runs") or []
    if not runs:
        return []
    lines = ["", "## Training runs", "",
             "Shipped runs are loaded from `weights/`, keyed by their recipe, the networks they start from and learn "
             "from, the classes and the training split's size (not the data's bytes); the others trained in this "
             "build. Every accuracy above is measured on this build's test set either way.", "",
             "| variant | technique | run | trained on | minutes | data |", "|---|---|---|---|---:|---|"]
    for run in runs:
        where = f"`{run['shipped']}`" if run["shipped"] else "trained in this build"
        minutes = _fmt(run["train_seconds"] / 60 if run["train_seconds"] is not None else None, ".1f")
        lines.append(f"| {run['variant']} | {run['technique']} | {where} | {run['trained_on'] or 'this machine'} | "
                     f"{minutes} | {run['data']} |")
    cut = [line for run in runs if (line := budget_line(run))]
    return [*lines, *([""] + cut if cut else [])]


def budget_line(run: dict) -> str | None:
    """Where the compute budget cut a run short of its recipe, which and how to lift it; else None."""
    budget = run.get("budget")
    if not budget or budget["steps"] >= budget["recipe_steps"]:
        return None
    which = "the default budget" if budget["tmacs"] == DEFAULT_TRAIN_BUDGET_TMACS else "a budget"
    return (f"- {run['variant']} ({run['technique']}): trained {budget['steps']:,} of {budget['recipe_steps']:,} "
            f"recipe steps: {which} of {budget['tmacs']:g} TMAC for a card that ships no runs; "
            "`--train-budget none` or `--profile long` for the full recipe.")


def _recommendation_lines(data: dict) -> list[str]:
    if not data["recommendations"]:
        return []
    lines = ["", "## What to serve on this machine", "",
             "The fastest model within each accuracy budget (points below the fp32 baseline):", "",
             "| accuracy budget | goal | model | why |", "|---|---|---|---|"]
    for r in data["recommendations"]:
        lines.append(f"| {r['budget_points']} pts | {r['goal']} | {r['model']} | {r['reason']} |")
    front = pareto_front([r for r in data["models"] if r["latency_b1_p50_ms"] is not None])
    lines += ["", "The accuracy–latency Pareto front (no other model is both faster at batch 1 and more accurate), "
              "fastest first, as the chart draws it:", "",
              "| model | runtime | b1 p50 ms | top-1 | drop (pts) | speed-up b64 |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['runtime']} | {r['latency_b1_p50_ms']:.2f} | {r['top1']:.2%} | "
              f"{_fmt(r['drop_points'], '+.2f')} | {_fmt(r['speedup_b64'], '.2f')}x |" for r in front]
    return lines


def _details(details: dict) -> str:
    parts = []
    if g := details.get("graph", {}).get("nodes"):
        parts.append(f"Graph nodes: {g['exported']} exported → {g['exporter_optimized']} after the exporter's "
                     f"optimizer → {g['published']} published (ONNX Runtime basic level) → "
                     f"{g['onnxruntime_at_load']} as ONNX Runtime runs it at load (all levels).")
    if p := details.get("pruning"):
        parts.append(f"Pruned {p['channel_ratio']:.0%} of channels ({p['importance']} importance, "
                     f"{p['iterations']} steps, {p['finetune_steps']} fine-tuning steps): "
                     f"{p['macs_reduction']}x fewer MACs.")
    if s := details.get("sparsity"):
        parts.append(f"{s['achieved']:.0%} of weights zeroed, {s['finetune_steps']} fine-tuning steps.")
    if d := details.get("distillation"):
        fewer = d.get("macs_reduction_vs_teacher")  # None for an ONNX teacher, whose MACs are not counted
        parts.append(f"Student {d['student']}" + (f" ({fewer}x fewer MACs than the teacher)" if fewer else "") + ", "
                     f"T={d['temperature']}, alpha={d['alpha']}, {d['epochs']} epochs"
                     + (f" (the shipped {d['shipped']}, trained on {d['trained_on']})." if "shipped" in d else "."))
    if t := details.get("qat"):
        parts.append(f"Quantization-aware fine-tuning: {t['steps']} steps at lr {t['lr']}, "
                     f"{t['layers_fake_quantized']} layers with fake-quantized weights ({t['weights']}) and inputs "
                     f"({t['inputs']}), "
                     f"{t['batchnorm_folded']} BatchNorms folded.")
    if q := details.get("quantization"):
        v = q["validation"]
        fallback = ", ".join(q["fp32_fallback_layers"]) or "none"
        parts.append(f"INT8 {q['activations']} activations / {q['weights']} weights, {q['method']} calibration on "
                     f"{q['calibration_images']} images; validation drop {v['drop'] * 100:+.2f} pts "
                     f"(budget {v['budget'] * 100:.1f}); FP32 fallback layers: {fallback}.")
    return " ".join(parts)
