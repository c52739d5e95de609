"""`invoke verify-release`: does a Triton release's own ONNX Runtime and OpenVINO load and agree with every published
model, and does its model_config.proto accept every config.pbtxt?

The container cannot run here, but its runtimes are published as wheels. An isolated virtual environment holds
exactly the release's onnxruntime and openvino (and the tritonclient of the same version, whose model_config_pb2
is that release's proto), built once and cached. `release_worker.py` runs each model on a fixed sample twice: in
the project's own environment (the runtimes the build verified the models with: the reference) and in the
release's. Per model: does it load, do the top-1 classes agree, how far apart are the logits, does the config
parse. TensorRT plans are not run (no GPU and no TensorRT here); their recorded TensorRT version is checked
against the release's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from serving.cache import default_cache_dir
from serving.manifest import ModelEntry, load_manifest, read_manifest
from serving.release import Release

WORKER = Path(__file__).with_name("release_worker.py")
MARKER = ".tritonzoo-release.json"  # written last: an environment without it is incomplete and is rebuilt
SAMPLE = 32  # images per model: the fixed sample
SEED = 0
MIN_AGREEMENT = 0.95  # top-1 agreement below this fails (near-ties on a few images may flip between versions)
MAX_RELATIVE_DIFF = 0.02  # largest logit difference, as a fraction of the reference logits' range
PIP_TIMEOUT_S = 900
RUN_TIMEOUT_S = 1200
KINDS = {"onnxruntime_onnx": ("onnxruntime", "model.onnx"), "openvino": ("openvino", "model.xml")}

# (models, images per model) -> uint8 images at each model's input dims (loadtest.protocol.images.payloads_for
# where tasks.py has data; serving/ does not import loadtest)
ImageLoader = Callable[[list[str], int], Mapping[str, np.ndarray]]


class VerifyError(ValueError):
    """The check cannot run (no manifest, pip failed, the worker crashed); the message says what to do."""


@dataclass(frozen=True)
class Row:
    model: str
    runtime: str
    status: str          # PASS, FAIL or SKIP
    loads: str = "-"     # yes, no, or - (not run)
    agree: str = "-"     # top-1 agreement on the sample, e.g. 32/32
    max_diff: str = "-"  # largest absolute logit difference
    config: str = "ok"
    problem: str = ""
    action: str = ""


# --- the release's environment ------------------------------------------------------------------------------------


def releases_root() -> Path:
    """$TRITONZOO_RELEASES, else releases/ in the project's cache ($TRITONZOO_CACHE or ~/.cache/tritonzoo)."""
    if os.environ.get("TRITONZOO_RELEASES"):
        return Path(os.environ["TRITONZOO_RELEASES"])
    return default_cache_dir() / "releases"


def requirements(release: Release) -> list[str]:
    return [*release.runtime_wheels(), "numpy<2"]


def env_python(env: Path) -> Path:
    return env / "bin" / "python"


def release_env(release: Release, root: Path | None = None, log: Callable[[str], None] = print) -> Path:
    """The release's virtual environment, created the first time (about a minute and 250 MB of wheels)."""
    env = (root or releases_root()) / release.name
    wanted = {"requirements": requirements(release), "tritonclient": release.server}
    marker = env / MARKER
    if marker.exists() and json.loads(marker.read_text()) == wanted and env_python(env).exists():
        return env
    log(f"creating {env} with {' '.join(wanted['requirements'])} (cached for later runs)")
    env.parent.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", "--clear", str(env)], "create the virtual environment")
    pip = [str(env_python(env)), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    _run([*pip, *wanted["requirements"]], "install the release's runtimes")
    # Only for its model_config_pb2 (loaded by path): its other dependencies are not needed.
    _run([*pip, "--no-deps", f"tritonclient=={release.server}"], "install the release's tritonclient")
    marker.write_text(json.dumps(wanted))
    return env


def _run(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise VerifyError(f"could not {what}: no answer in {PIP_TIMEOUT_S} s (is the package index reachable?)") \
            from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip() and "WARNING" not in line]
        raise VerifyError(f"could not {what} ({' '.join(command[-3:])}): {lines[-1] if lines else 'no message'}")


def release_proto(env: Path) -> Path:
    found = sorted(env.glob("lib/python*/site-packages/tritonclient/grpc/model_config_pb2.py"))
    if not found:
        raise VerifyError(f"{env} has no tritonclient model_config_pb2.py: delete {env} and run again")
    return found[0]


# --- the jobs -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    model: str
    runtime: str
    path: Path
    input: str
    config: Path
    parameters: dict[str, str]


def plan(repo: Path, release: Release) -> tuple[list[Job], list[Row]]:
    """The models to run, and the rows of those that are not run (TensorRT plans, other backends)."""
    jobs, rows = [], []
    for name, entry in sorted(load_manifest(repo).items()):
        config_path = repo / name / "config.pbtxt"
        try:
            config = text_format.Parse(config_path.read_text(), pb.ModelConfig())
        except (OSError, text_format.ParseError) as exc:
            rows.append(Row(name, entry.runtime, "FAIL", config=_short(exc), problem="config.pbtxt unreadable",
                            action="rebuild the repository"))
            continue
        kind = KINDS.get(config.backend or config.platform)
        if kind is None:
            rows.append(_not_run(name, entry, config, release))
            continue
        filename = config.default_model_filename or kind[1]
        params = {k: v.string_value for k, v in config.parameters.items()}
        jobs.append(Job(name, kind[0], repo / name / str(entry.version) / filename, entry.io.input, config_path,
                        params))
    return jobs, rows


def _not_run(name: str, entry: ModelEntry, config: pb.ModelConfig, release: Release) -> Row:
    if (config.backend or config.platform) not in ("tensorrt_plan", "tensorrt"):
        return Row(name, entry.runtime, "SKIP", problem=f"{config.backend or config.platform} is not checked here")
    built = str(entry.runtime_info.get("version") or "")
    if not built:
        return Row(name, entry.runtime, "FAIL", problem="the manifest does not say which TensorRT built the plan",
                   action="rebuild the plan with the tensorrt extra installed")
    if not release.tensorrt_matches(built):
        return Row(name, entry.runtime, "FAIL", problem=f"plan built by TensorRT {built}; Triton {release.name} "
                   f"has TensorRT {release.tensorrt}", action=f"rebuild with {release.tensorrt_wheel}=="
                   f"{release.tensorrt} (pip install -e '.[tensorrt]'), or target the release of TensorRT {built}")
    return Row(name, entry.runtime, "SKIP", problem=f"plan of TensorRT {built} (= the release's); not run: no GPU "
               "and no TensorRT here")


def sample(repo: Path, jobs: list[Job], images: ImageLoader | None) -> dict[str, np.ndarray]:
    """The fixed sample: the loader's images (real test images) where given, else seeded uniform noise."""
    models = [j.model for j in jobs]
    if images is not None and models:
        return {m: np.ascontiguousarray(a[:SAMPLE]) for m, a in images(models, SAMPLE).items()}
    entries = read_manifest(repo).models
    rng = np.random.default_rng(SEED)
    by_dims: dict[tuple[int, ...], np.ndarray] = {}
    for m in models:
        dims = entries[m].io.input_dims
        if dims not in by_dims:
            by_dims[dims] = rng.integers(0, 256, (SAMPLE, *dims), dtype=np.uint8)
    return {m: by_dims[entries[m].io.input_dims] for m in models}


def run_worker(python: Path, jobs: list[Job], images: Mapping[str, np.ndarray], proto: Path | None,
               work: Path) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """Each model's result and logits, as the runtimes of `python`'s environment give them."""
    work.mkdir(parents=True, exist_ok=True)
    specs = []
    for job in jobs:
        np.save(work / f"{job.model}.input.npy", images[job.model])
        specs.append({"model": job.model, "runtime": job.runtime, "path": str(job.path), "input": job.input,
                      "config": str(job.config), "images": str(work / f"{job.model}.input.npy"),
                      "parameters": job.parameters})
    (work / "jobs.json").write_text(json.dumps({"proto": str(proto or ""), "jobs": specs}))
    out = work / "out"
    try:
        done = subprocess.run([str(python), str(WORKER), str(work / "jobs.json"), str(out)], capture_output=True,
                              text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise VerifyError(f"the models did not finish in {RUN_TIMEOUT_S} s under {python}") from None
    if done.returncode != 0 or not (out / "results.json").exists():
        tail = " ".join(done.stderr.strip().splitlines()[-1:])[:400]
        raise VerifyError(f"the model runner failed under {python}: {tail or 'no message'}")
    results = {r["model"]: r for r in json.loads((out / "results.json").read_text())}
    logits = {m: np.load(out / f"{m}.npy") for m in results if (out / f"{m}.npy").exists()}
    return results, logits


# --- comparing ----------------------------------------------------------------------------------------------------


def compare(job: Job, release: Release, reference: dict, ref_logits: np.ndarray | None, got: dict,
            logits: np.ndarray | None) -> Row:
    wanted = release.onnxruntime if job.runtime == "onnxruntime" else release.openvino
    config = got["config_error"] or "ok"
    if got["version"] and got["version"] != wanted:
        return Row(job.model, job.runtime, "FAIL", config=config,
                   problem=f"the environment has {job.runtime} {got['version']}, not {wanted}",
                   action="delete the release's environment (see docs/deploy.md) and run again")
    error = got["load_error"] or got["run_error"]
    if error:
        return Row(job.model, job.runtime, "FAIL", "no" if got["load_error"] else "yes", config=config,
                   problem=error[:300], action=_load_action(job, release, error))
    if ref_logits is None:
        problem = reference["load_error"] or reference["run_error"]
        return Row(job.model, job.runtime, "FAIL", "yes", config=config,
                   problem=f"the build's own {job.runtime} {reference['version']} fails: {problem[:200]}",
                   action="rebuild the repository: it no longer loads where it was built")
    assert logits is not None
    return _agreement(job, ref_logits, logits, config, release)


def _agreement(job: Job, ref: np.ndarray, got: np.ndarray, config: str, release: Release) -> Row:
    if ref.shape != got.shape:
        return Row(job.model, job.runtime, "FAIL", "yes", config=config,
                   problem=f"output shape {list(got.shape)}, the build's {list(ref.shape)}",
                   action="target the release the model was built for")
    same = int((ref.argmax(1) == got.argmax(1)).sum())
    diff = float(np.abs(ref - got).max())
    spread = float(ref.max() - ref.min()) or 1.0
    agree, shown = same / len(ref), f"{diff:.2e}"
    config_ok = config == "ok"
    if agree >= MIN_AGREEMENT and diff <= MAX_RELATIVE_DIFF * spread and config_ok:
        return Row(job.model, job.runtime, "PASS", "yes", f"{same}/{len(ref)}", shown, config)
    if not config_ok:
        return Row(job.model, job.runtime, "FAIL", "yes", f"{same}/{len(ref)}", shown, config,
                   problem=f"Triton {release.server}'s model_config.proto refuses config.pbtxt",
                   action=f"drop the field Triton {release.name} does not know, or target a newer release")
    return Row(job.model, job.runtime, "FAIL", "yes", f"{same}/{len(ref)}", shown, config,
               problem=f"outputs differ from the build's (top-1 {same}/{len(ref)}, largest difference {diff:.3g} "
                       f"of a logit range {spread:.3g})",
               action=f"build with the release's {job.runtime} ({_version(job.runtime, release)}) to see where "
                      "it differs, or target another release")


def _version(runtime: str, release: Release) -> str:
    return release.onnxruntime if runtime == "onnxruntime" else release.openvino


def _load_action(job: Job, release: Release, error: str) -> str:
    if job.runtime == "onnxruntime":
        what = "IR version" if "ir_version" in error.lower() or "ir version" in error.lower() else "opset"
        return (f"export at a lower {what} (ONNX Runtime {release.onnxruntime} reads what onnx of its time "
                f"wrote), or target a newer release")
    return (f"write the IR with OpenVINO {release.openvino} (or serve the ONNX file through the openvino backend), "
            "or target a newer release")


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


# --- the whole check ----------------------------------------------------------------------------------------------


def verify(repo: Path, release: Release, images: ImageLoader | None = None, root: Path | None = None,
           log: Callable[[str], None] = print) -> list[Row]:
    """One row per published model, in the manifest's order."""
    repo = Path(repo)
    jobs, rows = plan(repo, release)
    if jobs:
        env = release_env(release, root, log)
        sample_images = sample(repo, jobs, images)
        with tempfile.TemporaryDirectory(prefix="tritonzoo-release-") as tmp:
            reference = run_worker(Path(sys.executable), jobs, sample_images, None, Path(tmp) / "reference")
            released = run_worker(env_python(env), jobs, sample_images, release_proto(env), Path(tmp) / "release")
        rows += [compare(j, release, reference[0][j.model], reference[1].get(j.model), released[0][j.model],
                         released[1].get(j.model)) for j in jobs]
    return sorted(rows, key=lambda r: r.model)


COLUMNS = ("model", "runtime", "status", "loads", "agree", "max_diff", "config")


def table(rows: list[Row], release: Release) -> str:
    """Aligned columns, then one line per failure saying what failed and what to do."""
    cells = [list(COLUMNS)] + [[str(getattr(r, c)) if c != "config" else ("ok" if r.config == "ok" else "refused")
                                for c in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = [f"Triton {release.name} ({release.server}): ONNX Runtime {release.onnxruntime}, OpenVINO "
             f"{release.openvino}, TensorRT {release.tensorrt}"]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in cells]
    for r in rows:
        if r.problem:
            lines.append(f"{r.status} {r.model}: {r.problem}" + (f" -> {r.action}" if r.action else ""))
            if r.config != "ok":
                lines.append(f"     config: {r.config}")
    passed = sum(r.status == "PASS" for r in rows)
    failed = sum(r.status == "FAIL" for r in rows)
    lines.append(f"{passed} passed, {failed} failed, {len(rows) - passed - failed} not run")
    return "\n".join(lines)
