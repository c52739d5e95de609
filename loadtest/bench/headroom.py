"""Load-generator headroom: does Locust drive Triton as hard as wrk does, on the same endpoint and the same payload?

Every generator sends the same pre-encoded KServe v2 binary-tensor body (one real test image) to the same Triton
HTTP endpoint with the same number of connections. Rounds are interleaved (every generator once per round) and
figures are medians over rounds, so drift on a shared machine hits all alike. Throughput is counted by Triton itself
(its per-model statistics) over the same steady window for every generator: after the first answered request and a
warm-up, so start-up costs (Locust imports, forking) do not count against anyone. Failures are counted on both sides.

Over the same window, CPU seconds are read from /proc for Triton's process group, the generator's process group and
the whole machine: if Locust falls short of wrk while the machine is busy, the gap is the CPU the two share, and the
per-request CPU costs say how large a share each needs. The `wrk+tax` control tests that directly: wrk again, beside a
process that burns the CPU the round's Locust window spent above wrk's (`loadtest.bench.cpu_tax`).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.protocol.images import save_images
from loadtest.protocol.payloads import kserve_request
from loadtest.runs.command import locust_command
from loadtest.runs.plan import LoadPlan
from serving.processes import interrupt, log_tail, spawn, stop_group
from serving.provenance import provenance
from serving.triton import TritonConfig, TritonServer, model_stats

ROOT = Path(__file__).resolve().parents[2]
TRIVIAL = "trivial"
TAXED = "wrk+tax"       # wrk beside a CPU tax equal to what Locust spent above wrk in the same round
LOCUST_TARGET = 0.8     # the bar on the trivial model: Locust at 0.8x wrk or better
VARIANT_TARGET = 0.9    # on a zoo variant: Locust within 10% of wrk
BUSY_FRACTION = 0.9     # a machine this busy (of all its cores) has no CPU left for a hungrier generator
CEILING_FRACTION = 0.85  # a run this close to its CPU ceiling is limited by CPU, not by latency or concurrency
OTHER_WARNING = 0.25    # cores taken by other processes that make a run's absolute figures suspect


@dataclass(frozen=True)
class Generator:
    name: str
    kind: str           # wrk | locust (the project's TritonHttpUser, as `invoke loadtest` runs it)
    processes: int = 1
    tax: bool = False   # wrk+tax: wrk beside a CPU tax (the control for "the gap is the shared CPU")


def generator(name: str) -> Generator:
    """'wrk', 'wrk+tax', or 'locust-<N>p': the project's TritonHttpUser in N Locust processes."""
    match = re.fullmatch(r"(locust)-(\d+)p", name)
    if name in ("wrk", TAXED):
        return Generator(name, "wrk", tax=name == TAXED)
    if match is None or int(match[2]) < 1:
        raise ValueError(f"unknown generator {name!r}: wrk, {TAXED} or locust-<N>p (e.g. locust-2p)")
    return Generator(name, match[1], int(match[2]))


@dataclass(frozen=True)
class HeadroomPlan:
    connections: int = 32               # wrk connections = Locust users: enough to saturate Triton (8 do not)
    rounds: int = 3
    warmup_s: float = 1.5               # after the first answered request
    measure_s: float = 4.0
    generators: tuple[str, ...] = ("wrk", "locust-1p", "locust-2p", TAXED)
    variant_generators: tuple[str, ...] = ("wrk", "locust-1p", TAXED)
    startup_timeout_s: float = 30.0
    nice: int = 0                       # > 0: every generator runs at this niceness, so Triton has the CPU first

    def validate(self) -> None:
        for name in (*self.generators, *self.variant_generators):
            generator(name)
        if "wrk" not in self.generators or "wrk" not in self.variant_generators:
            raise ValueError("wrk is the baseline: keep it among the generators")
        for names in (self.generators, self.variant_generators):
            if TAXED in names and not _taxable(names[:names.index(TAXED)]):
                raise ValueError(f"{TAXED} takes the CPU a Locust run spent above wrk: list wrk and a locust-<N>p "
                                 "before it")
        if self.connections < 1 or self.rounds < 1 or self.measure_s <= 0 or self.warmup_s < 0:
            raise ValueError("connections, rounds and seconds must be positive")
        if not 0 <= self.nice <= 19:
            raise ValueError(f"niceness is 0 to 19, got {self.nice}")


def _taxable(before: tuple[str, ...]) -> bool:
    """wrk+tax's tax is the difference of a wrk and a Locust window earlier in the same round."""
    return "wrk" in before and any(generator(n).kind == "locust" for n in before)


# --- the trivial model -------------------------------------------------------------------------------------------


def trivial_model(dims: tuple[int, int, int]):
    """uint8 [N,C,H,W] -> float [N,10]: per-channel sums times a fixed Cx10 matrix; a few microseconds of work.
    It takes the input of the model it stands in for, so its requests carry the same bytes as that model's."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    channels = dims[0]
    weights = numpy_helper.from_array(np.linspace(-1, 1, channels * 10, dtype=np.float32).reshape(channels, 10),
                                      "weights")
    axes = numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")
    nodes = [helper.make_node("Cast", ["images"], ["pixels"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["pixels", "axes"], ["sums"], keepdims=0),
             helper.make_node("MatMul", ["sums", "weights"], ["logits"])]
    graph = helper.make_graph(
        nodes, TRIVIAL, [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", *dims])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], initializer=[weights, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    onnx.checker.check_model(model)
    return model


def trivial_config(name: str, dims: tuple[int, int, int]) -> str:
    """The zoo's config shape (onnxruntime_onnx, dynamic batching, one CPU instance), through Triton's protobuf."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb

    cfg = pb.ModelConfig(name=name, platform="onnxruntime_onnx", max_batch_size=64,
                         default_model_filename="model.onnx")
    cfg.input.append(pb.ModelInput(name="images", data_type=pb.TYPE_UINT8, dims=list(dims),
                                   format=pb.ModelInput.FORMAT_NCHW))
    cfg.output.append(pb.ModelOutput(name="logits", data_type=pb.TYPE_FP32, dims=[10]))
    cfg.instance_group.append(pb.ModelInstanceGroup(count=1, kind=pb.ModelInstanceGroup.KIND_CPU))
    cfg.dynamic_batching.SetInParent()
    cfg.parameters["intra_op_thread_count"].string_value = "1"
    cfg.parameters["inter_op_thread_count"].string_value = "1"
    return text_format.MessageToString(cfg)


def publish_trivial(repo: Path, dims: tuple[int, int, int], name: str = TRIVIAL) -> Path:
    """A one-model repository for Triton (no manifest: nothing here comes from the build)."""
    import onnx

    version = repo / name / "1"
    version.mkdir(parents=True, exist_ok=True)
    onnx.save(trivial_model(dims), version / "model.onnx")
    (repo / name / "config.pbtxt").write_text(trivial_config(name, dims))
    return repo


# --- what each generator runs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One model behind one Triton HTTP endpoint, and the files every generator reads its request from."""

    http: str                           # host:port
    model: str
    body: bytes
    headers: dict[str, str]
    work: Path                          # request files and logs
    repo: Path | None = None            # with a manifest: the project's user reads input/output names from it

    @property
    def path(self) -> str:
        return f"/v2/models/{self.model}/infer"


def make_target(http: str, model: str, image: np.ndarray, work: Path, io: tuple[str, str] = ("images", "logits"),
                repo: Path | None = None) -> Target:
    body, headers = kserve_request(image, *io)
    work.mkdir(parents=True, exist_ok=True)
    target = Target(http, model, body, headers, work, repo)
    (work / "body.bin").write_bytes(body)
    save_images(image[None], work / "images.npy")
    (work / "wrk.lua").write_text(wrk_script(work / "body.bin", headers))
    return target


def wrk_script(body_file: Path, headers: dict[str, str]) -> str:
    """wrk's Lua: method, body (read from a file: it is binary) and headers; a JSON summary line at the end."""
    lines = ['wrk.method = "POST"', f'local f = assert(io.open("{body_file}", "rb"))', "wrk.body = f:read(\"*a\")",
             "f:close()"]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    lines += ["done = function(summary, latency, requests)",
              "  local e = summary.errors",
              "  io.write(string.format('TZ_WRK {\"requests\": %.0f, \"duration_us\": %.0f, \"connect\": %.0f, "
              "\"read\": %.0f, \"write\": %.0f, \"status\": %.0f, \"timeout\": %.0f, \"p50_us\": %.0f, "
              "\"p99_us\": %.0f}\\n', summary.requests, summary.duration, e.connect, e.read, e.write, e.status, "
              "e.timeout, latency:percentile(50), latency:percentile(99)))",
              "end"]
    return "\n".join(lines) + "\n"


def parse_wrk(output: str) -> dict | None:
    """wrk's own summary (our Lua line): requests, non-2xx ('status') and socket errors, over its whole run."""
    for line in reversed(output.splitlines()):
        if line.startswith("TZ_WRK "):
            summary = json.loads(line[len("TZ_WRK "):])
            summary["non_2xx"] = summary.pop("status")
            return summary
    return None


def generator_command(gen: Generator, target: Target, connections: int, bound_s: float,
                      exporter_ports: list[int], tax_cores: float = 0.0) -> list[str]:
    if gen.kind == "wrk":
        wrk = [_wrk(), "-t1", f"-c{connections}", f"-d{math.ceil(bound_s)}s", "--timeout", "10s",
               "-s", str(target.work / "wrk.lua"), f"http://{target.http}{target.path}"]
        if not gen.tax:
            return wrk
        # One process group: the tax's CPU counts as the generator's, and stopping wrk's group stops the tax.
        tax = [sys.executable, "-m", "loadtest.bench.cpu_tax", "--cores", f"{tax_cores:.3f}", "--seconds",
               str(math.ceil(bound_s))]
        return ["sh", "-c", f'{shlex.join(tax)} & exec "$@"', "sh", *wrk]
    options = ["--headless", "-u", str(connections), "-r", str(max(connections, 100)), "-t", f"{math.ceil(bound_s)}s",
               "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "2"]
    if gen.processes > 1:
        options += ["--processes", str(gen.processes)]
    plan = LoadPlan(models=(target.model,), repo=str(target.repo or ""), images_file=str(target.work / "images.npy"),
                    images=1, exporter_ports=tuple(exporter_ports), linger_s=0.0)
    plan_file = plan.write(target.work / f"plan-{gen.name}.json")
    return locust_command("http", f"http://{target.http}", plan_file, options=options)


def _wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise FileNotFoundError("`wrk` not found: run ./setup.sh (it installs Debian's wrk, this benchmark's baseline)")
    return found


# --- measuring ------------------------------------------------------------------------------------------------------


def proc_stat_fields(text: str) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses)."""
    return text[text.rindex(")") + 2:].split()


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in a process group (threads included)."""
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = proc_stat_fields(f.read())
        except OSError:  # gone between the listing and the read
            continue
        if int(fields[2]) == pgid:  # fields[0] is the state: pgrp is stat field 5, utime 14, stime 15
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores; iowait counts as idle."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])  # guest time is already inside user time
    hz = os.sysconf("SC_CLK_TCK")
    return (total - idle) / hz, total / hz


def exporter_counts(ports: list[int]) -> dict[str, float]:
    """Locust's requests by outcome from the project's exporter in each of its processes (failures included)."""
    from prometheus_client.parser import text_string_to_metric_families

    totals = {"success": 0.0, "failure": 0.0}
    for port in ports:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except (urllib.error.URLError, OSError):  # a port no process took (fewer processes than ports)
            continue
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "tritonzoo_locust_requests_total":
                    totals[sample.labels["outcome"]] += sample.value
    return totals


@dataclass(frozen=True)
class Snapshot:
    at: float
    server: dict[str, int]
    triton_cpu: float
    generator_cpu: float
    machine: tuple[float, float]
    client: dict[str, float] | None


def snapshot(target: Target, triton_pgid: int, gen_pgid: int, exporter_ports: list[int] | None) -> Snapshot:
    return Snapshot(time.monotonic(), model_stats(target.http, target.model), group_cpu_seconds(triton_pgid),
                    group_cpu_seconds(gen_pgid), machine_cpu_seconds(),
                    exporter_counts(exporter_ports) if exporter_ports else None)


@dataclass
class Sample:
    """One generator in one round: the steady window's figures."""

    generator: str
    round: int
    seconds: float
    success: int                        # answered by Triton, in the window
    failure: int                        # failed in Triton, in the window
    rps: float                          # successful requests per second
    avg_batch: float | None
    client: dict[str, float] | None     # Locust's own count in the window (None for wrk: see `wrk`)
    cores: dict[str, float]             # CPU seconds per second: triton, generator, machine_busy, other
    us_per_request: dict[str, float | None]  # CPU microseconds per successful request: triton, generator
    wrk: dict | None = None             # wrk's summary over its whole run: requests, non_2xx, socket errors
    tax_cores: float | None = None      # wrk+tax: the CPU tax it ran beside (cores)
    returncode: int | None = None
    log_tail: str = ""


def window_sample(gen: Generator, round_: int, a: Snapshot, b: Snapshot) -> Sample:
    seconds = b.at - a.at
    success = b.server["success"] - a.server["success"]
    execs = b.server["executions"] - a.server["executions"]
    triton, generator = b.triton_cpu - a.triton_cpu, b.generator_cpu - a.generator_cpu
    busy = b.machine[0] - a.machine[0]
    cores = {"triton": triton / seconds, "generator": generator / seconds, "machine_busy": busy / seconds,
             "other": max(busy - triton - generator, 0.0) / seconds}
    per_request = {"triton": 1e6 * triton / success if success else None,
                   "generator": 1e6 * generator / success if success else None}
    client = None if a.client is None or b.client is None else {k: b.client[k] - a.client[k] for k in a.client}
    return Sample(gen.name, round_, seconds, success, b.server["failure"] - a.server["failure"], success / seconds,
                  (b.server["inferences"] - a.server["inferences"]) / execs if execs else None, client, cores,
                  per_request)


def wait_flowing(target: Target, proc, timeout: float, log: Path) -> None:
    """Until Triton answers the generator's first request (the generator's start-up does not count)."""
    start = model_stats(target.http, target.model)["success"]
    deadline = time.monotonic() + timeout
    while model_stats(target.http, target.model)["success"] == start:
        if proc.poll() is not None:
            raise RuntimeError(f"the load generator exited with {proc.returncode} before sending:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no request reached Triton within {timeout:.0f}s:\n{log_tail(log)}")
        time.sleep(0.05)


def measure(gen: Generator, target: Target, plan: HeadroomPlan, triton_pgid: int, round_: int,
            tax_cores: float = 0.0) -> Sample:
    """Start the generator, let it settle, read the window's counters and CPU, stop it, keep its own summary."""
    from serving.triton import free_ports

    ports = free_ports(gen.processes) if gen.kind != "wrk" else []
    bound = plan.startup_timeout_s + plan.warmup_s + plan.measure_s + 5
    log = target.work / f"{gen.name}-r{round_}.log"
    log.unlink(missing_ok=True)
    command = generator_command(gen, target, plan.connections, bound, ports, tax_cores)
    proc = spawn(["nice", "-n", str(plan.nice), *command] if plan.nice else command, log, cwd=ROOT)
    try:
        wait_flowing(target, proc, plan.startup_timeout_s, log)
        time.sleep(plan.warmup_s)
        before = snapshot(target, triton_pgid, proc.pid, ports)
        time.sleep(plan.measure_s)
        after = snapshot(target, triton_pgid, proc.pid, ports)
        interrupt(proc)  # SIGINT: wrk and Locust both stop and print their summaries
    finally:
        stop_group(proc)
    sample = window_sample(gen, round_, before, after)
    sample.returncode = proc.returncode
    output = log.read_text(errors="replace")
    sample.wrk = parse_wrk(output) if gen.kind == "wrk" else None
    sample.tax_cores = tax_cores if gen.tax else None
    sample.log_tail = log_tail(log, 8) if proc.returncode not in (0, None) or "Traceback" in output else ""
    return sample


def run_rounds(target: Target, generators: list[str], plan: HeadroomPlan, triton_pgid: int,
               samples: list[Sample]) -> list[Sample]:
    """Appends to `samples` as it goes: an interrupted run keeps every window already measured."""
    for round_ in range(plan.rounds):
        for name in generators:
            gen = generator(name)
            tax = tax_cores([s for s in samples if s.round == round_]) if gen.tax else 0.0
            samples.append(measure(gen, target, plan, triton_pgid, round_, tax))
    return samples


def tax_cores(round_samples: list[Sample]) -> float:
    """The CPU the round's first Locust window spent above its wrk window (cores, at most one)."""
    wrk = next(s for s in round_samples if s.generator == "wrk")
    locust = next(s for s in round_samples if generator(s.generator).kind == "locust")
    return min(max(locust.cores["generator"] - wrk.cores["generator"], 0.0), 1.0)


# --- summaries -------------------------------------------------------------------------------------------------------


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(samples: list[Sample], cpu_count: int) -> dict[str, dict]:
    """Per generator: medians over rounds, failures summed, and the ratio to wrk: per round, each window against
    wrk's window of the same round, and their median (paired, so drift between rounds cancels)."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(s.generator for s in samples):
        mine = [s for s in samples if s.generator == name]
        row: dict[str, Any] = {"rps": _median([s.rps for s in mine]), "rounds_rps": [round(s.rps, 1) for s in mine],
               "server_failures": sum(s.failure for s in mine), "avg_batch": _median([s.avg_batch for s in mine]),
               "cores": {k: _median([s.cores[k] for s in mine]) for k in mine[0].cores},
               "us_per_request": {k: _median([s.us_per_request[k] for s in mine]) for k in mine[0].us_per_request}}
        row["client_failures"] = _client_failures(mine)
        row["shared_cpu_ceiling_rps"] = _ceiling(row["us_per_request"], cpu_count - (row["cores"]["other"] or 0.0))
        out[name] = row
    for row in out.values():
        for key, base in (("wrk", out.get("wrk")), ("taxed", out.get(TAXED))):
            ratios = [r / w if w else None for r, w in zip(row["rounds_rps"], base["rounds_rps"])] if base else []
            row[f"rounds_vs_{key}"] = [None if x is None else round(x, 3) for x in ratios]
            row[f"vs_{key}"] = _median(ratios)
    return out


def _client_failures(samples: list[Sample]) -> int | None:
    """Failures the generator itself saw: wrk's non-2xx and socket errors over its runs, Locust's in the window."""
    if generator(samples[0].generator).kind == "wrk":
        summaries = [s.wrk for s in samples if s.wrk is not None]
        if len(summaries) < len(samples):
            return None  # a summary missing: unknown, never reported as zero
        return sum(int(w["non_2xx"] + w["connect"] + w["read"] + w["write"] + w["timeout"]) for w in summaries)
    counts = [s.client for s in samples if s.client is not None]
    if len(counts) < len(samples):
        return None
    return int(sum(c["failure"] for c in counts))


def _ceiling(us: dict[str, float | None], cores: float) -> float | None:
    """Requests/s that `cores` (the machine's, less what other processes took) allow when every request costs
    Triton's and the generator's CPU: what a CPU-bound run on the cores they share can reach at best."""
    if us["triton"] is None or us["generator"] is None:
        return None
    return cores * 1e6 / (us["triton"] + us["generator"])


def verdict(summary: dict[str, dict], cpu_count: int) -> dict:
    """The best Locust configuration against the 0.8x bar; where short, whether the shared CPU explains the gap."""
    locusts = {n: r for n, r in summary.items() if generator(n).kind == "locust" and r["vs_wrk"] is not None}
    if not locusts:
        return {}
    best = max(locusts, key=lambda n: locusts[n]["vs_wrk"])
    row = locusts[best]
    busy = row["cores"]["machine_busy"]
    out = {"best": best, "vs_wrk": row["vs_wrk"], "vs_taxed": row["vs_taxed"], "target": LOCUST_TARGET,
           "met": row["vs_wrk"] >= LOCUST_TARGET,
           "machine_busy_fraction": busy / cpu_count if busy is not None else None,
           "other_cores": max(r["cores"]["other"] or 0.0 for r in summary.values())}
    if not out["met"]:
        ceiling = row["shared_cpu_ceiling_rps"]
        out["shared_cpu_ceiling_rps"] = ceiling
        out["measured_over_ceiling"] = row["rps"] / ceiling if ceiling else None
        wrk = summary.get("wrk", {}).get("rps")
        out["ceiling_vs_wrk"] = ceiling / wrk if ceiling and wrk else None  # the most this Locust could reach
        out["cpu_bound"] = bool(out["machine_busy_fraction"] and out["machine_busy_fraction"] >= BUSY_FRACTION and
                                (out["measured_over_ceiling"] or 0) >= CEILING_FRACTION)
    return out


# --- running it ----------------------------------------------------------------------------------------------------


def check_request(target: Target) -> list[int]:
    """One request, as every generator will send it, must succeed: else nothing is measured. Returns the answer's
    shape ([1, classes])."""
    req = urllib.request.Request(f"http://{target.http}{target.path}", data=target.body, headers=target.headers,
                                 method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        header_len = int(resp.headers["Inference-Header-Content-Length"])
        header = json.loads(resp.read()[:header_len])
    return header["outputs"][0]["shape"]


def trivial_headroom(image: np.ndarray, plan: HeadroomPlan, work: Path, out: dict) -> None:
    """Fills `out` (also when interrupted: the summary covers the windows measured until then). The trivial model
    takes the image's shape (C, H, W)."""
    c, h, w = image.shape
    dims = (c, h, w)
    publish_trivial(work / "repo", dims)
    samples: list[Sample] = []
    out.update(model=TRIVIAL, input_dims=list(dims), answer_shape=None)
    try:
        with TritonServer(TritonConfig.loading(work / "repo", (TRIVIAL,)), work / "tritonserver.log") as server:
            target = make_target(server.cfg.http_url, TRIVIAL, image, work / TRIVIAL)
            out["answer_shape"] = check_request(target)
            run_rounds(target, list(plan.generators), plan, _pid(server), samples)
    finally:
        cpus = os.cpu_count() or 1
        summary = summarize(samples, cpus)
        out.update(summary=summary, verdict=verdict(summary, cpus), samples=[asdict(s) for s in samples])


def variant_images(repo: Path, models: list[str], image: np.ndarray,
                   payloads: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Each variant's one image (C, H, W): its own payload where given (`loadtest.protocol.images.payloads_for`, first
    image), else `image` converted and resized to the variant's input."""
    from loadtest.protocol.images import fit_payloads
    from serving.manifest import load_manifest

    given = {m: np.asarray(payloads[m])[:1] if payloads and m in payloads else image[None] for m in models}
    return {m: batch[0] for m, batch in fit_payloads(given, load_manifest(repo), models).items()}


def variant_headroom(repo: Path, models: list[str], images: Mapping[str, np.ndarray], plan: HeadroomPlan, work: Path,
                     out: dict) -> None:
    """Each zoo variant at saturation, wrk against Locust: within 10% means Locust is not the bottleneck.
    Each is sent its own image (`images[model]`, at its input). Fills `out` model by model, so an interrupted run
    keeps the variants already measured."""
    from serving.manifest import load_manifest

    manifest = load_manifest(repo)
    with TritonServer(TritonConfig.loading(repo, models), work / "tritonserver-variants.log") as server:
        for model in models:
            io = (manifest[model].io.input, manifest[model].io.output)
            target = make_target(server.cfg.http_url, model, images[model], work / model, io, repo)
            check_request(target)
            measure(generator("wrk"), target, plan, _pid(server), -1)  # warm-up: first batches are slow
            summary = summarize(run_rounds(target, list(plan.variant_generators), plan, _pid(server), []),
                                os.cpu_count() or 1)
            out[model] = {"summary": summary, **within_10pct(summary)}


def within_10pct(summary: dict[str, dict]) -> dict[str, dict[str, bool]]:
    """Per Locust configuration: within 10% of wrk, and of wrk beside Locust's CPU (when the control ran)."""
    locusts = {n: r for n, r in summary.items() if generator(n).kind == "locust"}
    return {"within_10pct": {n: r["vs_wrk"] >= VARIANT_TARGET for n, r in locusts.items() if r["vs_wrk"]},
            "within_10pct_taxed": {n: r["vs_taxed"] >= VARIANT_TARGET for n, r in locusts.items() if r["vs_taxed"]}}


def _pid(server: TritonServer) -> int:
    if server.process is None:
        raise RuntimeError("Triton is not running")
    return server.process.pid


def check_models(repo: Path | None, models: list[str]) -> Path:
    """The repository the variants are in, once every one of `models` is found there."""
    from serving.manifest import load_manifest

    if repo is None:
        raise ValueError("--models needs a built repository (--repo)")
    known = load_manifest(repo)
    unknown = [m for m in models if m not in known]
    if unknown:
        raise ValueError(f"models {unknown} are not in {repo}; it has {sorted(known)}")
    return repo


def run_headroom(image: np.ndarray, plan: HeadroomPlan, out_dir: Path, repo: Path | None = None,
                 models: list[str] | None = None,
                 payloads: Mapping[str, np.ndarray] | None = None) -> Path:
    """The trivial-model comparison, then (with `models`) the per-variant one; their JSON under `out_dir`.

    `image` (C, H, W) is the payload; with `models`, each variant is sent its own (`payloads[model]`, e.g. from
    `loadtest.protocol.images.payloads_for`, else `image` resized to its input), and the trivial model takes the
    input of the first variant, with that variant's image: it stands in for the models it is compared with."""
    plan.validate()
    _wrk()
    images: dict[str, np.ndarray] = {}
    variants = None
    if models:
        variants = check_models(repo, models)
        images = variant_images(variants, models, image, payloads)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"plan": asdict(plan), "cpu_count": os.cpu_count(), "started_at": time.time(),
                               "partial": None}
    try:
        with tempfile.TemporaryDirectory(prefix="tz-headroom-") as tmp:
            results["trivial"] = {}
            trivial_headroom(images[models[0]] if models else image, plan, Path(tmp), results["trivial"])
            if models and variants:
                results["variants"] = {}
                variant_headroom(variants, models, images, plan, Path(tmp), results["variants"])
    except KeyboardInterrupt:
        results["partial"] = "interrupted"  # what was measured so far is still written
    return write_results(results, out_dir)


def write_results(results: dict, out_dir: Path) -> Path:
    """The results as JSON; `loadtest.report.headroom` renders them."""
    json_path = out_dir / "headroom.json"
    json_path.write_text(json.dumps({"provenance": provenance("headroom"), **results}, indent=2) + "\n")
    return json_path
