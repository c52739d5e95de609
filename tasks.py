"""Invoke tasks: parse arguments, call library code. `invoke --list` shows them all."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path

from invoke import task

ROOT = Path(__file__).resolve().parent
CARD = ROOT / "models" / "resnet18_cifar10.toml"
REPO = ROOT / "model_repository"
REPORTS = ROOT / "reports"
# A user's build reports here (ignored by git), never over the committed reference report in reports/zoo, which is
# written by passing --report reports/zoo explicitly (docs/benchmarks.md).
BUILD_REPORT = ROOT / "runs" / "zoo-report"
DEFAULT_RUNTIMES = "onnxruntime,openvino,openvino_bf16"
RUNTIMES_HELP = ("comma-separated runtimes: onnxruntime, openvino (FP32 forced, INT8 where quantized), openvino_bf16; "
                 "one that cannot run on this machine is skipped with the reason")
DATA_HELP = ("dataset of cards that name none: ImageFolder dir or .tar.gz, a cifar-10-python.tar.gz, or 'cifar10' "
             "to download (default: $TRITONZOO_DATA, else 'cifar10')")
CARD_HELP = "model card (.toml), repeatable for several models (default: models/resnet18_cifar10.toml)"


def friendly(fn: Callable) -> Callable:
    """Turn a user-facing error into one line on stderr and exit status 1, instead of a traceback."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from build.errors import ZooError
        from loadtest.metrics.prometheus import PrometheusError
        from serving.manifest import ManifestError
        from serving.release import ReleaseError
        from serving.triton import TritonError

        try:
            return fn(*args, **kwargs)
        except (ZooError, TritonError, ManifestError, PrometheusError, ReleaseError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None

    return wrapper


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _payload_source(data: str | None) -> Path:
    """CIFAR-10 for load payloads: --data, else $TRITONZOO_DATA (no download: load machines may be offline)."""
    import os

    source = data or os.environ.get("TRITONZOO_DATA")
    if not source:
        raise SystemExit("error: give --data (or $TRITONZOO_DATA): a CIFAR-10 archive or folder for the payloads")
    return Path(source)


def _cards(paths: list[str] | None, data: str | None, teacher: str | None = None) -> list:
    """The cards to build, parsed and checked; --teacher replaces the weights of a single card."""
    from build.card import load_card

    cards = [load_card(Path(p), data) for p in paths] if paths else [load_card(CARD, data)]
    if teacher:
        if len(cards) != 1:
            raise SystemExit("error: --teacher replaces one card's weights; give one --card, or put weights in each")
        from dataclasses import replace

        cards = [replace(cards[0], weights=Path(teacher).resolve())]
    return cards


def _card(path: str | None, data: str | None):
    return _cards([path] if path else None, data)[0]


def _family_models(manifest: dict, names: list[str], family: str | None) -> list[str]:
    """Published model names as they are, or <variant>[_<runtime>] of `family` (default: the first family)."""
    family = family or min((e.family for e in manifest.values()), default="")
    return [n if n in manifest else f"{family}_{n}" for n in names]


def _variants(value: str) -> tuple[list[str], dict[str, str], frozenset[str]]:
    """The variants to build, the optional ones the default set leaves out (the report lists them, and why), and
    those only the default set asked for (not named). 'default' and 'all' may be combined with names: `default,fp16`
    is the default set plus fp16."""
    from build.hardware import detect
    from build.variants import VARIANTS, default_variants, lineage, optional_variants

    names = _csv(value)
    if "all" in names:
        return list(VARIANTS), {}, frozenset()
    if "default" not in names:
        return names, {}, frozenset()
    hw = detect()
    default = default_variants(hw)
    chosen = default + [n for n in names if n != "default" and n not in default]
    left_out = {n: f"left out of the default set on this machine ({why}); `--variants default,{n}` or `--variants all` "
                   "builds it" for n, why in optional_variants(hw).items() if n not in chosen}
    named = {v for n in names if n in VARIANTS for v in lineage(n)}  # naming a variant names its parents
    return chosen, left_out, frozenset(default) - named


@task(help={"run_dir": "the training run folder", "out": "where to write the compact checkpoint"})
@friendly
def checkpoint(c, run_dir, out):
    """Write a training run's last checkpoint in FP16 (half the size) for another machine to resume from."""
    from build.train import compact_checkpoint

    print(compact_checkpoint(Path(run_dir), Path(out)))


@task(help={
    "data": DATA_HELP, "card": "model card of a builtin architecture (default: the ResNet18 card)",
    "epochs": "training epochs", "warmup_epochs": "epochs of rising learning rate (one-cycle)",
    "batch_size": "batch size", "lr": "peak learning rate (one-cycle)",
    "seed": "random seed", "device": "auto, cpu or cuda", "run_dir": "checkpoints and log (resumes from here)",
    "out": "where to write the weights (default: the card's weights file)", "weight_decay": "SGD weight decay",
    "label_smoothing": "label smoothing of the loss", "cutout": "side of the square cut out of each image (0: none)",
    "anneal": "learning-rate decay after the peak: cos, or linear (the triangular schedule)",
    "resume_from": "a checkpoint to start --run-dir from when it has none (e.g. one written by invoke checkpoint)",
    "init_from": "start from these weights (a finished run's file) with a fresh optimiser and schedule: a second "
                 "phase",
})
@friendly
def train(c, data=None, card=None, epochs=95, warmup_epochs=19, batch_size=500, lr=0.2, weight_decay=5e-4,
          label_smoothing=0.1, cutout=12, anneal="linear", seed=0, device="auto", run_dir="runs/teacher", out=None,
          resume_from=None, init_from=""):
    """Train a card's builtin network, by default the ResNet18 teacher on CIFAR-10 (resumable; bf16 + channels_last
    on CPU, CUDA when present)."""
    from build.data import load_dataset
    from build.train import TrainConfig, seed_run
    from build.train import train as run_training

    model = _card(card, data)
    if model.kind != "builtin":
        raise SystemExit(f"error: invoke train trains builtin networks; {model.path} has source {model.source}")
    cfg = TrainConfig(arch=model.spec, epochs=epochs, warmup_epochs=warmup_epochs, batch_size=batch_size, lr=float(lr),
                      weight_decay=float(weight_decay), label_smoothing=float(label_smoothing), cutout=int(cutout),
                      anneal=anneal, seed=seed, device=device, init_from=str(init_from or ""))
    target = Path(out) if out else model.weights
    if target is None:
        raise SystemExit(f"error: {model.path} names no weights file: give --out")
    if resume_from and seed_run(Path(run_dir), Path(resume_from)):
        print(f"{run_dir} starts from {resume_from}")
    result = run_training(cfg, load_dataset(model.data, model.input), Path(run_dir), target, model.preprocess)
    print(f"teacher: val {result.val_accuracy:.4f}, test {result.test_accuracy:.4f}, "
          f"{result.seconds / 60:.1f} min -> {result.weights}")


@task(help={
    "data": DATA_HELP, "card": "the teacher's card (the student is saved beside its weights)",
    "set": "distill.field=value, repeatable, e.g. --set distill.epochs=30 (the build looks for the same settings)",
}, iterable=["set"])
@friendly
def distill(c, data=None, card=None, set=None):
    """Distil the teacher into the student the build ships and loads (CUDA when present; slow on 2 cores)."""
    from build.data import load_dataset
    from build.profiles import options_for
    from build.steps.distill import distill_student
    from build.zoo import student_config

    cfg = student_config(options_for("default", set or []))
    model = _card(card, data)
    _shipped(f"student {cfg.student}", distill_student(model, load_dataset(model.data, model.input), cfg))


@task(help={
    "data": DATA_HELP, "card": "the teacher's card (the pruned networks are saved beside its weights)",
    "variants": "pruned variants to ship: pruned (from the teacher), pruned_distilled (from the shipped student)",
    "set": "prune.field=value or distill.field=value, repeatable (the build looks for the same settings)",
}, iterable=["set"])
@friendly
def prune(c, data=None, card=None, variants="pruned,pruned_distilled", set=None):
    """Prune and fine-tune the networks the build ships and loads (CUDA when present; hours on 2 CPU cores)."""
    from build.data import load_dataset
    from build.profiles import options_for
    from build.steps.prune import prune_shipped, pruned_parent

    options, names = options_for("default", set or []), _csv(variants)
    for name in names:  # a bad name fails before the dataset loads
        pruned_parent(name)
    model = _card(card, data)
    dataset = load_dataset(model.data, model.input)
    for name in names:
        _shipped(name, prune_shipped(name, model, dataset, options))


def _shipped(what: str, result: dict) -> None:
    print(f"{what}: test {result['test_accuracy']:.4f}, {result['train_seconds'] / 60:.1f} min "
          f"on {result['hardware']} -> {result['weights']}")


@task(help={"card": "model card of a builtin or torch source (default: the ResNet18 card)",
            "out": "the ONNX file to write; its card is written beside it (<out>.toml)", "data": DATA_HELP})
@friendly
def export_onnx(c, out, card=None, data=None):
    """Export a card's network alone (float NCHW in, normalised; logits out) plus an onnx: card for it."""
    from build.card import write_onnx_card
    from build.export import export_float_onnx
    from build.sources import network

    model = _card(card, data)
    path = export_float_onnx(network(model), Path(out).resolve(), model.input)
    print(f"{path} and its card {write_onnx_card(model, path)}")


@task(help={
    "data": "the dataset to cut the subset from (ImageFolder .tar.gz; default: $TRITONZOO_DATA)",
    "size": "image size the network takes (pixels)", "train_per_class": "training images a class",
    "test_per_class": "test images a class", "variants": "what each build makes (as invoke zoo --variants)",
    "width": "the ResNet-18's first width (64: ImageNet's, 1.8 GMACs at 224)", "out": "where everything goes",
    "train_epochs": "epochs the user's model is trained before it is brought (not timed; 0: untrained)",
})
@friendly
def bench_byo(c, data=None, size=224, train_per_class=110, test_per_class=50, variants="default,fp16", width=64,
              train_epochs=8, out=str(REPORTS / "byo224")):
    """Time a user's first build: an ImageNet-shaped ResNet-18 as a torch source and as ONNX, empty cache each."""
    from build.bench_byo import ByoBenchConfig, run_byo_bench
    from build.data.dataset import resolve_data_spec

    cfg = ByoBenchConfig(size, train_per_class, test_per_class, variants, width, int(train_epochs))
    print(run_byo_bench(Path(resolve_data_spec(data)), Path(out), cfg))


@task(help={"threads": "threads to run at once (0: all cores)", "seconds": "length of each timed run"})
@friendly
def peak(c, threads=0, seconds=0.5):
    """This CPU's peak MAC rates per precision (FP32, INT8, BF16; AVX2 to AMX): the report's efficiency denominators."""
    from build.hardware import detect
    from build.peak import measure

    if int(threads) < 0 or float(seconds) <= 0:
        raise SystemExit("error: --threads takes 0 (all cores) or a positive count, --seconds a positive length")
    hardware = detect()
    print(measure(int(threads) or hardware.cores, hardware.cpu_flags, float(seconds)).text())


@task(help={"model": "an OpenVINO model of the repository", "repo": "model repository (built)",
            "batch": "batch size"})
@friendly
def ov_layers(c, model, repo=str(REPO), batch=64):
    """Where an OpenVINO model's batch time goes: per convolution, its kernel, ms, GMAC/s and share of its peak."""
    from build.ov_layers import layer_report

    print(layer_report(Path(repo) / model, batch))


BUILD_HELP = {
    "data": DATA_HELP, "card": CARD_HELP, "teacher": "weights file replacing the card's (one card only)",
    "repo": "model repository to publish into",
    "variants": "comma-separated variants; 'default' (all but those this machine serves no better: sparse, and fp16 "
                "without a GPU; 'default,fp16' adds one), or 'all'", "runtimes": RUNTIMES_HELP,
    "profile": "default (loads the shipped training runs: minutes on 2 CPU cores), quick (CI: a subset, a few "
               "steps) or long (every training run recomputed from the teacher: a GPU, or hours on a CPU)",
    "train": "train in the build the runs that weights/ does not ship for these settings (slow on a CPU); without "
             "it such a variant is left out, saying how to train it",
    "set": "technique.field=value, repeatable, e.g. --set prune.importance=taylor --set int8.method=entropy",
    "max_drop": "reject (do not publish) a derived variant more than this many points below its parent "
                "(default: the profile's, 10; the source's own fp32 is never refused)",
    "report": "folder for the build report (JSON, Markdown, charts)",
    "train_budget": "TMAC each training run may take where the card ships no runs (a user's model); 'none' or 0: "
                    "the full recipes (default: the profile's, 8 in default, none in long)",
}


def _build(card, data, teacher, repo, variants, runtimes, profile, set, max_drop, report, train, clock,
           train_budget=None, **fields):
    from build.profiles import options_for, train_budget_tmacs
    from build.report import write_reports
    from build.variants import VARIANTS
    from build.zoo import build_zoo, check_published

    if max_drop is not None:
        fields["max_drop_points"] = float(max_drop)
    if train:
        fields["train_runs"] = True
    if train_budget is not None:
        fields["train_budget_tmacs"] = train_budget_tmacs(str(train_budget))
    options = options_for(profile, set or [], **fields)
    chosen, left_out, by_default = _variants(variants)
    builds = build_zoo(_cards(card, data, teacher), Path(repo), chosen, _csv(runtimes), options, clock=clock,
                       left_out=left_out, by_default=by_default)
    with clock.phase("report"):
        paths = write_reports(builds, Path(report))
    print(f"published {sum(len(b.entries) for b in builds)} model(s) to {repo}; report: {paths[-1]}")
    for b in builds:
        for variant, why in b.rejected.items():
            print(f"not published: {b.card.name} {variant}: {why}")
        for variant, why in b.not_applicable.items():
            if variant in VARIANTS:  # a whole variant (not one runtime's model): e.g. its run is not shipped
                print(f"not built: {b.card.name} {variant}: {why}")
    check_published(builds)
    return builds


@task(help={**BUILD_HELP, "eval_images": "test images for accuracy (0: the profile's choice)",
            "ship": "save each training run the build makes beside the teacher (weights/), keyed, so that later "
                    "builds load it instead of training (how the sparse and QAT runs are shipped)"},
      iterable=["set", "card"])
@friendly
def build(c, card=None, data=None, teacher=None, repo=str(REPO), variants="default", runtimes=DEFAULT_RUNTIMES,
          profile="default", set=None, max_drop=None, report=str(BUILD_REPORT), eval_images=0, ship=False,
          train=False, train_budget=None):
    """Build each card's variants: optimize, verify, measure, publish atomically, and write the report."""
    fields: dict = {"eval_images": eval_images} if eval_images else {}
    if ship:
        fields["ship_runs"] = True
    from build.clock import Clock

    clock = Clock()
    _build(card, data, teacher, repo, variants, runtimes, profile, set, max_drop, report, train, clock, train_budget,
           **fields)
    print(clock.line())


@task(help={
    "repo": "model repository", "models": "the A/B experiment's two arms (default: the repository's first two)",
    "schedule": "fault schedule: 'short' (2 min), 'hour', or a JSON file (docs/loadtests.md)",
    "rate": "requests per second in all (default: the schedule file's, else 70% of the capacity plan's for the "
            "models, from --capacity)", "replicas": "Triton replicas behind the gateway",
    "out": "folder for the report, requests.csv and the processes' logs (default: reports/soak/<schedule>)",
    "capacity": "where the capacity plans are, one folder per model (invoke loadtest --target gateway --shape step "
                "--each --out ...)",
    "rejudge": "run nothing: judge the goals of the finished soak in --out (or the schedule's folder) again from its "
               "soak.json with today's analysis, and rewrite its report",
})
@friendly
def soak(c, repo=str(REPO), models="", schedule="hour", rate=0.0, replicas=2, out=None,
         capacity=str(REPORTS / "soak" / "capacity"), rejudge=False):
    """A long run through the gateway with faults at known times, loaded by Locust; report with goals met or missed."""
    from loadtest.soak.main import rejudge as judge_again
    from loadtest.soak.main import soak as run

    folder = Path(out) if out else REPORTS / "soak" / Path(schedule).stem
    if rejudge:
        judge_again(folder)
        return
    run(Path(repo), _csv(models), schedule, rate, replicas, folder, " ".join(["invoke", *sys.argv[1:]]),
        Path(capacity))


@task(help={
    "repo": "model repository", "host": "gateway address (default loopback only)", "port": "gateway port",
    "triton_url": "use a running Triton instead of starting one: GRPC_HOST:PORT,HTTP_HOST:PORT",
    "state_file": "where the gateway keeps experiments across restarts",
    "triton_ports": "ports of the Triton started here, always on loopback: HTTP,GRPC,METRICS",
})
@friendly
def serve(c, repo=str(REPO), host="127.0.0.1", port=8080, triton_url=None,
          state_file="runs/gateway/experiments.json", triton_ports="8000,8001,8002"):
    """Serve the repository: a supervised Triton plus the gateway (A/B, shadow, canary, metrics) until Ctrl-C."""
    from serving.stack import explicit_triton, run_stack

    external = tuple(_csv(triton_url)) if triton_url else None
    if external is not None and len(external) != 2:
        raise SystemExit("error: --triton-url takes GRPC_HOST:PORT,HTTP_HOST:PORT")
    run_stack(Path(repo), host, port, explicit_triton(Path(repo), triton_ports), Path(state_file), external)


@task(help={**BUILD_HELP, "images": "test images to classify through the server (0: the build's served-check sample)",
            "triton_url": "use this running Triton (host:grpc_port) instead of starting one"},
      iterable=["set", "card"])
@friendly
def zoo(c, card=None, data=None, teacher=None, repo=str(REPO), variants="default", runtimes=DEFAULT_RUNTIMES,
        profile="default", set=None, max_drop=None, report=str(BUILD_REPORT), images=0, triton_url=None,
        train=False, train_budget=None):
    """The main job: build each card's models and the report, serve them on Triton, check each through the server."""
    from build.clock import Clock
    from build.data import load_dataset
    from serving.evaluate import run_served_evaluation

    clock = Clock()
    builds = _build(card, data, teacher, repo, variants, runtimes, profile, set, max_drop, report, train, clock,
                    train_budget)
    with clock.phase("served check"):
        samples = {}
        for b in builds:
            test = load_dataset(b.card.data, b.card.input).test  # decoded by the build: read back from the cache
            checked = min(b.options.served_check_images, b.options.eval_images or len(test))
            sample = test.head(images or checked)
            samples[b.card.name] = (sample.images, sample.labels)
        print(run_served_evaluation(Path(repo), samples, triton_url, builds[0].options.served_latency_requests))
    print(clock.line())


# Every committed report, from one build on one machine, in the order each needs the last (docs/benchmarks.md).
REPORT_STEPS = {
    "zoo": "invoke zoo {data} --repo {repo} --report reports/zoo",
    "efficiency": "invoke build {data} --variants fp32,int8 --runtimes " + DEFAULT_RUNTIMES +
                  " --repo {repo}-efficiency --report reports/efficiency",
    "served": "invoke bench-served --repo {repo} {data} --models all --rounds 7 --seconds 2",
    "loadgen": "invoke bench-loadgen --repo {repo} {data} --rounds 3 --seconds 4 --warmup 1 && "
               "invoke bench-loadgen --repo {repo} {data} --rounds 3 --seconds 4 --warmup 1 --models all --nice 10 "
               "--out reports/loadgen/nice10",
    "capacity": "invoke loadtest --repo {repo} {data} --shape step --models all --each --user-rps auto "
                "--start-users 1 --step-users 1 --step-seconds 4 --max-users 64 --warmup 5 --seconds 200 "
                "--slo-ms 100 --confirm-seconds 10 --target-rps 1000 --out reports/capacity && "
                "invoke report --root reports/capacity",
}


@task(help={"data": DATA_HELP, "steps": f"which, comma-separated, in this order: {','.join(REPORT_STEPS)}",
            "repo": "the one build's repository: emptied first (it is scratch, under runs/ by default)"})
def refresh_reports(c, data=None, steps=",".join(REPORT_STEPS), repo=str(ROOT / "runs" / "reports-build")):
    """Regenerate the committed reports from one fresh build on this machine (about 115 min on 2 quiet cores)."""
    unknown = set(_csv(steps)) - set(REPORT_STEPS)
    if unknown:
        raise SystemExit(f"error: unknown report steps {sorted(unknown)}; choose from {list(REPORT_STEPS)}")
    if "zoo" in _csv(steps):  # a fresh build: versions start at 1, nothing of an older build is served
        shutil.rmtree(repo, ignore_errors=True)
        shutil.rmtree(f"{repo}-efficiency", ignore_errors=True)
    if "capacity" in _csv(steps):  # the per-model folders of models no longer built must not stay behind
        shutil.rmtree(REPORTS / "capacity", ignore_errors=True)
    for step in _csv(steps):
        command = REPORT_STEPS[step].format(data=f"--data {data}" if data else "", repo=repo)
        print(f"== {step}: {command}", flush=True)
        c.run(command, pty=False)


@task
def lint(c):
    """Lint and type-check the code as CI does (ruff and mypy, with the project's settings in pyproject.toml)."""
    c.run("ruff check .", pty=False)
    c.run("mypy build serving loadtest tasks.py tests", pty=False)


@task(help={"all": "also run the slow end-to-end tests (real tritonserver)"})
def test(c, all=False):
    """Run the fast unit tests; --all adds the end-to-end tests."""
    marker = '-m ""' if all else ""
    c.run(f"python -m pytest {marker} -q --durations=15", pty=False)  # the slowest tests, for CI's time budget


@task(help={
    "repo": "model repository (built)", "model": "model to load (default: the baseline the manifest names)",
    "data": DATA_HELP,
    "concurrency": "comma-separated numbers of concurrent clients", "seconds": "seconds per run",
    "repeats": "runs per target (median)",
})
@friendly
def bench_gateway(c, repo=str(REPO), model=None, data=None, concurrency="1,16", seconds=10.0, repeats=3):
    """Benchmark the gateway against direct Triton (same model, same images, same run)."""
    from build.data import load_dataset
    from loadtest.bench.gateway_overhead import run_gateway_benchmark
    from loadtest.report.gateway import render
    from serving.manifest import load_manifest

    manifest = load_manifest(Path(repo))
    model = model or next((m for m, e in sorted(manifest.items()) if e.is_baseline), None)
    entry = manifest.get(model)
    if entry is None:
        raise SystemExit(f"error: {model or 'no baseline model'} in {repo}'s manifest: give --model, or build first")
    image = load_dataset(data, entry.io.input_dims).test.images[0]
    levels = [int(v) for v in _csv(concurrency)]
    print(render(run_gateway_benchmark(Path(repo), model, image, levels, seconds, repeats, REPORTS)))


LOADTEST_HELP = {
    "repo": "model repository (built)",
    "data": "CIFAR-10 whose test images are the payloads: ImageFolder dir or .tar.gz, or cifar-10-python.tar.gz "
            "(default: $TRITONZOO_DATA)",
    "models": "comma-separated models, or 'all' (an A/B experiment splits evenly across them)",
    "target": "http (Triton, binary tensors), grpc (Triton), gateway (/v1 predict) or experiment (A/B via the gateway)",
    "shape": "constant (a fixed level: --users, --rate) or step (raise users until the SLO breaks or throughput "
             "stops growing)",
    "users": "constant shape: concurrent users", "rate": "constant shape: total requests/s (0: closed loop)",
    "seconds": "bound on the load phase, seconds", "max_requests": "bound on requests (0: none)",
    "warmup": "seconds at the start of the load left out of every figure (a fresh Triton's first batches are slow); "
              "step shape: the first step's users run this long before it starts",
    "images": "CIFAR-10 test images to cycle through", "processes": "Locust processes running users (distributed)",
    "start_users": "step shape: users in the first step", "step_users": "step shape: users added per step",
    "step_seconds": "step shape: seconds per step", "max_users": "step shape: highest user count",
    "user_rps": "step shape: pace each user to this many requests/s, so each step adds arrival rate (as live traffic "
                "arrives, and as the confirmation run loads); 'auto': each counted user adds 1/16 of the model's "
                "in-process batch-64 throughput (manifest), spread over enough real users that each one's interval "
                "is at least the SLO; 0: closed loop, each step adds concurrency",
    "slo_ms": "latency SLO in ms (step shape stops beyond it)", "slo_quantile": "quantile the SLO applies to",
    "max_error_rate": "failures per request that break the SLO", "interval": "Prometheus scrape interval, seconds",
    "out": "folder for the results (default: reports/loadtest/<shape>-<target>-<models>)",
    "target_rps": "step shape: plan replicas and cost for this load (0: only the curve and the max under the SLO)",
    "headroom": "step shape: fraction of each replica's capacity kept spare",
    "price": "step shape: price per instance-hour, for the cost per million inferences",
    "confirm_seconds": "step shape: then run this long at the predicted capacity to check the SLO (0: skip)",
    "confirm_attempts": "step shape: on a missed confirmation, back off to the next lower step that met the SLO and "
                        "confirm again, this many runs in all; the plan follows the one that is met",
    "each": "one run per model, each on its own Triton (per-variant curves and capacity plans), in sub-folders "
            "of --out (default: reports/loadtest/<shape>-<target>-<model>)",
}


@task(help=LOADTEST_HELP, auto_shortflags=False)
@friendly
def loadtest(c, repo=str(REPO), data=None, models="all", target="http", shape="constant", users=4, rate=0.0,
             seconds=30.0, max_requests=0, images=500, processes=1, start_users=1, step_users=2, step_seconds=10.0,
             max_users=64, slo_ms=100.0, slo_quantile=0.95, max_error_rate=0.01, interval=1.0, out=None,
             target_rps=0.0, headroom=0.2, price=1.0, confirm_seconds=0.0, confirm_attempts=2, each=False,
             warmup=0.0, user_rps="0"):
    """Load Triton or the gateway with Locust (headless, bounded) and read the results back from a real Prometheus."""
    from loadtest.analysis.shapes import AUTO_PACE, StepPlan
    from loadtest.report.run import write
    from loadtest.runs.run import run_capacity, run_each, run_load
    from loadtest.runs.spec import CapacityGoal, LoadSpec

    source = _payload_source(data)
    try:
        pace = AUTO_PACE if user_rps == "auto" else float(user_rps)
    except ValueError:
        raise SystemExit(f"error: --user-rps takes a rate per user or 'auto', not {user_rps!r}") from None
    step = StepPlan(start_users=start_users, step_users=step_users, step_seconds=step_seconds, max_users=max_users,
                    slo_ms=slo_ms, slo_quantile=slo_quantile, max_error_rate=max_error_rate, user_rps=pace)
    chosen = tuple(m for m in _csv(models) if m != "all")

    def folder(name: str) -> Path:
        return Path(out) / name if out else REPORTS / "loadtest" / f"{shape}-{target}-{name}"

    spec = LoadSpec(Path(repo), source, Path(out) if out else folder("+".join(chosen) or "all"), chosen, target,
                    shape, users, rate, seconds, max_requests, images, processes, interval, step, warmup_s=warmup)
    goal = CapacityGoal(target_rps, headroom, price, confirm_seconds, confirm_attempts)
    try:
        if each:
            runs = run_each(spec, goal, folder)
        else:
            runs = {"": run_capacity(spec, goal) if shape == "step" else run_load(spec)}
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    for name in runs:
        print(write((folder(name) if each else spec.out) / "loadtest.json").read_text())
    partial = [name or str(spec.out) for name, r in runs.items() if r["partial"]]
    if partial:
        raise SystemExit(f"partial results in {', '.join(partial)}")


@task(help={
    "repo": "model repository (built)", "data": DATA_HELP,
    "models": "comma-separated models, or <variant>[_<runtime>] of --family, or 'all'; the first is the baseline of "
              "every speed-up (with 'all': the fp32 teacher's export)",
    "family": "the card whose variants --models names (default: the first in the manifest)",
    "seconds": "seconds per model per round", "rounds": "interleaved rounds (median)",
    "in_flight": "batch-64 requests kept outstanding", "out": "folder for saturation.json and saturation.md",
    "client_tax": "also run in process beside a CPU tax the size of the client's CPU",
})
@friendly
def bench_served(c, repo=str(REPO), data=None, models="fp32,int8,int8_openvino,fp32_openvino_bf16,pruned_int8_openvino",
                 family=None, seconds=10.0, rounds=3, in_flight=4, client_tax=True, out=str(REPORTS / "served")):
    """Served throughput at saturation (batch 64) of each model on Triton, against the first and against in-process."""
    from loadtest.bench.saturation import SaturationPlan, baseline_first, run_saturation_benchmark
    from loadtest.protocol.images import payloads_for
    from loadtest.report import saturation
    from serving.manifest import load_manifest

    source = _payload_source(data)
    manifest = load_manifest(Path(repo))
    chosen = baseline_first(manifest) if models == "all" else _family_models(manifest, _csv(models), family)
    plan = SaturationPlan(seconds=seconds, rounds=rounds, in_flight=in_flight, client_tax=client_tax)
    try:
        # each model's payloads come from its own card's data where that is on disk, else from --data
        results = run_saturation_benchmark(Path(repo), chosen, payloads_for(Path(repo), chosen, source, 64), plan,
                                           chosen[0], Path(out))
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(saturation.write(results).read_text())


@task(help={"root": "folder holding the load runs (each a sub-folder with loadtest.json); the report goes here"})
@friendly
def report(c, root=str(REPORTS / "loadtest")):
    """Write the load and capacity report (Markdown and HTML, with charts) from the load runs under --root."""
    from loadtest.report.combined import write_report

    for path in write_report(Path(root)):
        print(path)


@task(help={
    "data": "CIFAR-10 whose first test image is the payload: ImageFolder dir or .tar.gz, or cifar-10-python.tar.gz "
            "(default: $TRITONZOO_DATA)",
    "connections": "wrk connections (1 thread) and Locust users", "rounds": "interleaved rounds (median)",
    "warmup": "seconds after the first answered request before the window opens",
    "seconds": "seconds in the measured window",
    "generators": "on the trivial model: wrk, locust-<N>p (the project's TritonHttpUser in N Locust processes), "
                  "wrk+tax (wrk beside a process burning the CPU Locust spent above wrk: the shared-CPU control)",
    "models": "also compare on these zoo variants of --repo (comma-separated, or 'all'); none by default",
    "variant_generators": "generators run against each variant (wrk is the baseline)",
    "repo": "model repository (built) for --models", "out": "folder for headroom.json and headroom.md",
    "nice": "run every generator at this niceness (0-19), so Triton has the CPU first: what a generator on other "
            "cores would see",
})
@friendly
def bench_loadgen(c, data=None, connections=32, rounds=3, warmup=1.5, seconds=4.0,
                  generators="wrk,locust-1p,locust-2p,wrk+tax", models="", variant_generators="wrk,locust-1p,wrk+tax",
                  repo=str(REPO), out=str(REPORTS / "loadgen"), nice=0):
    """Load-generator headroom: Locust against wrk on Triton's HTTP endpoint (trivial model, then zoo variants)."""
    import json

    from loadtest.bench.headroom import HeadroomPlan, run_headroom
    from loadtest.protocol.images import payloads_for
    from loadtest.report import headroom
    from serving.manifest import load_manifest

    source = _payload_source(data)
    chosen = _csv(models)
    manifest = load_manifest(Path(repo))  # the trivial model takes a published model's input shape
    if chosen == ["all"]:
        chosen = sorted(manifest)
    shaped = chosen[0] if chosen else next(iter(manifest), None)
    if shaped not in manifest:
        raise SystemExit(f"error: {shaped or 'no model'} in {repo}'s manifest: build the repository first")
    payloads = payloads_for(Path(repo), [shaped, *chosen], source, 1)  # each model's own first test image
    plan = HeadroomPlan(connections=connections, rounds=rounds, warmup_s=warmup, measure_s=seconds,
                        generators=tuple(_csv(generators)), variant_generators=tuple(_csv(variant_generators)),
                        nice=nice)
    try:
        results = run_headroom(payloads[shaped][0], plan, Path(out), Path(repo), chosen, payloads)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(headroom.write(results).read_text())
    if json.loads(results.read_text())["partial"]:
        raise SystemExit(f"partial results in {out}")


@task(help={
    "model": "the model whose config is searched (a name in --repo's manifest)", "repo": "model repository (built)",
    "data": "CIFAR-10 whose test images are the payloads: ImageFolder dir or .tar.gz, or cifar-10-python.tar.gz "
            "(default: $TRITONZOO_DATA)",
    "max_batch_sizes": "comma-separated max_batch_size values to try",
    "delays_us": "comma-separated dynamic-batching max_queue_delay_microseconds values to try",
    "instances": "comma-separated instance counts to try",
    "concurrency": "batch-1 requests kept in flight (closed loop)", "seconds": "measured seconds per trial per round",
    "warmup": "seconds of load after each reload, not measured", "rounds": "interleaved rounds (median)",
    "slo_ms": "latency SLO in ms", "slo_quantile": "quantile the SLO applies to",
    "max_error_rate": "failures per request that break the SLO",
    "min_gain": "write the winner only if it beats the current config's throughput by this fraction",
    "dry_run": "search and report, but leave the repository's config as it is",
    "images": "CIFAR-10 test images to cycle through", "out": "folder for <model>.json and <model>.md",
})
@friendly
def tune_config(c, model, repo=str(REPO), data=None, max_batch_sizes="8,64", delays_us="0,2000", instances="1,2",
                concurrency=8, seconds=4.0, warmup=1.0, rounds=1, slo_ms=100.0, slo_quantile=0.95,
                max_error_rate=0.01, min_gain=0.03, dry_run=False, images=64, out=str(REPORTS / "config_search")):
    """Search max batch size x batching delay x instances for one model; write the best config within the SLO."""
    import json

    from loadtest.bench.config_search import SearchPlan, trials_from
    from loadtest.bench.config_search import tune_config as run_search
    from loadtest.protocol.images import payloads_for
    from loadtest.report import config_search

    source = _payload_source(data)
    plan = SearchPlan(trials_from(max_batch_sizes), trials_from(delays_us), trials_from(instances), concurrency,
                      seconds, warmup, rounds, slo_ms, slo_quantile, max_error_rate, min_gain)
    try:
        payloads = payloads_for(Path(repo), [model], source, images)[model]
        results = run_search(Path(repo), model, payloads, plan, Path(out), write=not dry_run)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(config_search.write(results).read_text())
    if json.loads(results.read_text())["partial"]:
        raise SystemExit(f"partial results (nothing written) in {out}")


@task(help={
    "out": "folder to write the Kustomize base, the cpu and gpu overlays, the prometheus-adapter rule and the image's "
           "Dockerfile into (what an earlier run wrote there is replaced)",
    "models_from": "where Triton reads the published repository: s3://BUCKET/PATH (or gs://, as://; Triton reads "
                   "them natively) or pvc:CLAIM (a PersistentVolumeClaim holding a copy)",
    "repo": "the published model repository (its manifest and configs decide models, backends and resources)",
    "data": "CIFAR-10 whose test images become the Locust payloads (default: $TRITONZOO_DATA)",
    "namespace": "Kubernetes namespace", "image": "the project's image for the gateway and Locust pods",
    "triton_image": "Triton's image (default: NVIDIA's container of the release the repository is built for)",
    "triton_cpu": "CPU request per Triton pod", "triton_memory_mb": "memory per Triton pod in MiB (0: from the "
    "build's measured peaks)", "min_replicas": "Triton replicas at least (HPA)", "max_replicas": "Triton replicas "
    "at most (HPA)", "queue_target_us": "HPA target: Triton queue microseconds per request (0: twice the longest "
    "dynamic-batching delay, at least 1000)", "gateway_replicas": "gateway replicas",
    "prometheus_url": "Prometheus the gateways read canary error rates from ('' : each replica's own view)",
    "monitor_labels": "labels your Prometheus selects ServiceMonitors by, e.g. release=kube-prometheus-stack",
    "scrape_interval": "ServiceMonitor scrape interval", "adapter_namespace": "prometheus-adapter's namespace",
    "locust": "also generate the Locust master and workers (--no-locust: none)",
    "locust_user": "gateway, experiment, http (Triton) or grpc (Triton)", "locust_shape": "constant or step",
    "locust_models": "comma-separated models Locust loads (default: every CPU model)",
    "locust_workers": "Locust worker pods", "locust_users": "constant shape: users", "locust_seconds":
    "constant shape: seconds", "locust_rate": "constant shape: total requests/s (0: closed loop)",
    "release": "the Triton release to deploy (default: the one the manifest records; another is refused)",
    "service_account": "Triton pods' Kubernetes service account: workload identity (GKE) or IRSA (EKS) for the store",
    "gcs_key_secret": "for gs://: a Secret whose key.json is a Google service account key (instead of identity)",
    "monitors": "ServiceMonitors (need the Prometheus Operator's CRDs; --no-monitors: none)",
}, auto_shortflags=False)
@friendly
def k8s(c, out, models_from, repo=str(REPO), data=None, namespace="tritonzoo", image="tritonzoo:0.1.0",
        triton_image="", triton_cpu="2", triton_memory_mb=0, min_replicas=2, max_replicas=8, queue_target_us=0,
        gateway_replicas=2, prometheus_url="http://prometheus-operated.monitoring.svc:9090", monitor_labels="",
        scrape_interval="5s", adapter_namespace="monitoring", locust=True, locust_user="gateway",
        locust_shape="constant", locust_models="", locust_workers=2, locust_users=8, locust_seconds=60.0,
        locust_rate=0.0, release="", service_account="", gcs_key_secret="", monitors=True):
    """Kubernetes manifests for the repository: Triton, gateway replicas, autoscaling, monitors, Locust (Kustomize)."""
    import os

    from loadtest.analysis.shapes import ConstantPlan
    from loadtest.deploy.generate import generate
    from loadtest.deploy.locust import LocustPods
    from loadtest.runs.plan import LoadPlan
    from serving.deploy.generate import K8sOptions

    options = K8sOptions(models_from, namespace, image, triton_image, str(triton_cpu), int(triton_memory_mb),
                         int(min_replicas), int(max_replicas), int(queue_target_us), int(gateway_replicas),
                         prometheus_url, monitor_labels, scrape_interval, adapter_namespace, release, service_account,
                         gcs_key_secret, monitors)
    source = data or os.environ.get("TRITONZOO_DATA")
    loader = None
    if locust and source:
        from loadtest.protocol.images import payloads_for

        def loader(models, count):
            return payloads_for(Path(repo), models, Path(source), count)
    try:
        pods = None
        if locust:  # the plan every Locust pod runs (loadtest.runs.plan), the user class and the worker pods
            constant = ConstantPlan(int(locust_users), float(locust_seconds), float(locust_rate))
            plan = LoadPlan(models=tuple(_csv(locust_models)), shape=locust_shape, constant=constant)
            pods = LocustPods(plan, locust_user, int(locust_workers))
        written = generate(Path(repo), Path(out), options, pods, loader)
    except ValueError as exc:  # DeployError, an unknown shape, or payload images that cannot be had
        raise SystemExit(f"error: {exc}") from None
    print(f"wrote {len(written)} files under {out}: kubectl apply --server-side -k {out}/overlays/cpu (or gpu)")


@task(help={
    "repo": "the published model repository",
    "release": "the Triton release to check against (default: the one the manifest records; known: see "
               "docs/deploy.md)",
    "data": "CIFAR-10 whose test images are the fixed sample (default: $TRITONZOO_DATA; without either: seeded noise)",
}, auto_shortflags=False)
@friendly
def verify_release(c, repo=str(REPO), release="", data=None):
    """Load every ONNX and OpenVINO model in a Triton release's own runtime wheels, compare, check every config."""
    import os

    from serving.deploy.verify_release import table, verify
    from serving.manifest import read_manifest
    from serving.release import release_named, target_release

    try:
        chosen = release_named(release or read_manifest(Path(repo)).release_name or target_release().name)
        source = data or os.environ.get("TRITONZOO_DATA")
        loader = None
        if source:
            from loadtest.protocol.images import payloads_for

            def loader(models, count):
                return payloads_for(Path(repo), models, Path(source), count)
        rows = verify(Path(repo), chosen, loader)
    except ValueError as exc:  # ReleaseError, VerifyError, payload images that cannot be had
        raise SystemExit(f"error: {exc}") from None
    print(table(rows, chosen))
    if any(r.status == "FAIL" for r in rows):
        raise SystemExit(1)
