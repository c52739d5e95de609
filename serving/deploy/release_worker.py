"""Run a repository's ONNX and OpenVINO models on a fixed sample, in whichever Python runs this file.

`invoke verify-release` runs it twice: with the project's own interpreter (the runtimes the build used: the
reference) and with the interpreter of an isolated environment holding exactly one Triton release's onnxruntime
and openvino wheels. It must therefore import nothing from the project, and only numpy, onnxruntime, openvino and
the standard library at the top level.

    python release_worker.py JOBS.json OUT_DIR

JOBS.json: {"proto": path to a model_config_pb2.py or "", "jobs": [{"model", "runtime" (onnxruntime | openvino),
"path", "input", "config", "images" (.npy), "parameters" {key: value}}]}. Writes OUT_DIR/<model>.npy (the logits)
and OUT_DIR/results.json: per model, the runtime's version, and the load, run and config errors ("" when none).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

# The OpenVINO properties the Python-based backend passes from config parameters (serving/backends/openvino).
OV_KEYS = ("PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT")


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:600]


def load_proto(path: str) -> Any:
    """The release's model_config_pb2, loaded from its file: importing tritonclient.grpc would need grpcio."""
    if not path:
        return None
    spec = importlib.util.spec_from_file_location("release_model_config_pb2", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_config(proto: Any, config_path: str) -> str:
    """'' when the release's ModelConfig parses the file; else the parser's message (an unknown field names it)."""
    if proto is None:
        return ""
    from google.protobuf import text_format

    try:
        text_format.Parse(Path(config_path).read_text(), proto.ModelConfig())
    except Exception as exc:  # text_format.ParseError, or a file that cannot be read
        return _one_line(exc)
    return ""


def onnxruntime_run(job: dict, images: np.ndarray) -> tuple[str, Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(job["path"], providers=["CPUExecutionProvider"])
    return ort.__version__, lambda: session.run(None, {job["input"]: images})[0]


def openvino_run(job: dict, images: np.ndarray) -> tuple[str, Any]:
    import openvino as ov

    properties = {k: v for k, v in job.get("parameters", {}).items() if k in OV_KEYS}
    compiled = ov.Core().compile_model(job["path"], "CPU", properties)
    version = ov.get_version().split("-")[0]
    return version, lambda: np.asarray(compiled(images)[0])


RUNNERS = {"onnxruntime": onnxruntime_run, "openvino": openvino_run}


def run_job(job: dict, proto: Any, out: Path) -> dict:
    result = {"model": job["model"], "version": "", "load_error": "", "run_error": "",
              "config_error": check_config(proto, job["config"])}
    images = np.load(job["images"])
    try:
        result["version"], run = RUNNERS[job["runtime"]](job, images)
    except Exception as exc:  # the runtime refuses the file: that is the finding, not a crash
        result["load_error"] = _one_line(exc)
        return result
    try:
        logits = np.asarray(run(), dtype=np.float32)
    except Exception as exc:
        result["run_error"] = _one_line(exc)
        return result
    np.save(out / f"{job['model']}.npy", logits)
    return result


def main(jobs_path: str, out_dir: str) -> int:
    spec = json.loads(Path(jobs_path).read_text())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        proto = load_proto(spec.get("proto", ""))
    except Exception:
        traceback.print_exc()
        return 2
    results = [run_job(job, proto, out) for job in spec["jobs"]]
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
