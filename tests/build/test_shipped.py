from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import torch

from build.data.dataset import sha256_file
from build.models import build_classifier, load_weights, save_weights
from build.profiles import options_for
from build.shipped import load_or_train, model_sha256, run_key
from build.steps.distill import DistillConfig, student_run
from build.steps.prune import PruneConfig, pruning_run
from build.variants import VARIANTS, distill_config
from build.variants import students as ladder
from build.zoo import step_config
from tests.conftest import PRE

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_the_run_key_names_the_run_not_where_its_result_comes_from() -> None:
    cfg = DistillConfig()
    key = run_key(cfg, teacher="t", classes=["a", "b"], steps=100)
    assert key == run_key(dataclasses.replace(cfg, shipped=False), teacher="t", classes=["a", "b"], steps=100)
    changed = [run_key(cfg, teacher="other", classes=["a", "b"], steps=100),
               run_key(cfg, teacher="t", classes=["b", "a"], steps=100),
               run_key(cfg, teacher="t", classes=["a", "b"], steps=10),
               run_key(dataclasses.replace(cfg, alpha=0.9), teacher="t", classes=["a", "b"], steps=100)]
    assert key not in changed and len(set(changed)) == len(changed)


def test_a_model_is_identified_by_its_values_not_its_layout(tiny_arch: str) -> None:
    model = build_classifier(tiny_arch, 10, PRE)
    # Module.to takes memory_format, as its docstring says, but torch's overloads of it leave that form out.
    same = copy.deepcopy(model).to(memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
    assert model_sha256(model) == model_sha256(same)
    with torch.no_grad():
        next(same.parameters())[0, 0, 0, 0] += 1e-3
    assert model_sha256(model) != model_sha256(same)


def test_a_shipped_result_is_loaded_and_anything_else_trains(tmp_path: Path, tiny_arch: str) -> None:
    model = build_classifier(tiny_arch, 10, PRE).eval()
    runs: list[int] = []

    def train() -> tuple:
        runs.append(1)
        return model, {"final_loss": 0.5}

    assert load_or_train(None, PRE, train)[1:] == ({"final_loss": 0.5}, {"trained_in_build": True})
    assert load_or_train(tmp_path / "absent.pt", PRE, train)[2] == {"trained_in_build": True}
    save_weights(model, tmp_path / "run.pt", {"arch": tiny_arch, "num_classes": 10, "final_loss": 0.25,
                                              "hardware": "gpu", "train_seconds": 3, "dataset_checksum": "c0ffee"})
    loaded, record, origin = load_or_train(tmp_path / "run.pt", PRE, train)
    assert len(runs) == 2 and record["final_loss"] == 0.25
    assert origin == {"shipped": "run.pt", "trained_on": "gpu", "train_seconds": 3, "data_checksum": "c0ffee"}


def test_the_default_build_finds_every_shipped_run() -> None:
    """Each shipped file's own record, under today's key scheme and default settings, gives back its name; a change
    to either would leave the build training what it ships, silently. Every student of the ladder is shipped."""
    folder = WEIGHTS
    records = {p.with_suffix(".pt"): json.loads(p.read_text()) for p in folder.glob("*_*.json")}
    teacher = sha256_file(folder / "resnet18_cifar10.pt")
    assert all(r["teacher_sha256"] == teacher for r in records.values() if "teacher_sha256" in r)
    students = {p: r for p, r in records.items() if "student" in r.get("config", {})}
    pruned = {p: r for p, r in records.items() if r.get("channel_pruned")}
    assert sorted(r["arch"] for r in students.values()) == sorted(c.student for c in ladder().values())
    assert len(pruned) == 2
    for path, record in students.items():
        key, stem = student_run(distill_config(record["arch"]), record["teacher_sha256"], CIFAR10_CLASSES,
                                record["train_images"], record["steps"])
        assert path.name == f"{stem}_{key}.pt" and path.exists()
    default = options_for("default", [])
    for path, record in pruned.items():
        variant = path.stem.rsplit("_", 1)[0]
        parent, cfg = VARIANTS[variant].parent, step_config(variant, PruneConfig, default)
        source = folder / "resnet18_cifar10.pt" if parent == "teacher" else next(
            p for p, r in students.items() if r["arch"] == ladder()[parent].student)
        key = pruning_run(cfg, model_sha256(load_weights(source, PRE)[0]), record["teacher_sha256"], CIFAR10_CLASSES,
                          record["train_images"], cfg.schedule())
        assert path.name == f"{variant}_{key}.pt" and path.exists()


def test_a_build_ships_its_training_runs_and_the_next_build_loads_them(tmp_path: Path, teacher: Path,
                                                                        mini_archive: Path, micro_student: str) -> None:
    """`invoke build --ship` keeps every run it trains (here distillation, sparsity and QAT) beside the teacher,
    keyed; a later build of the same settings trains nothing."""
    from build.data import load_dataset
    from build.pipeline import BuildOptions
    from build.steps.quantize import Int8Config
    from tests.conftest import CIFAR, build_one, models_of

    mini = load_dataset(str(mini_archive), CIFAR)
    data = dataclasses.replace(mini, val=mini.test)  # enough validation images to calibrate INT8
    options = BuildOptions(verify_images=100, measure_speed=False, threads=1, max_train_steps=2, ship_runs=True,
                           configs=(Int8Config(calibration_images=100, check_images=100),
                                    DistillConfig(student=micro_student)))
    variants = ["sparse", "distilled_int8_qat"]
    build_one(data, teacher, tmp_path / "first", variants, ["onnxruntime"], options)
    shipped = sorted(p.name.rsplit("_", 1)[0] for p in teacher.parent.glob("*_*.pt"))
    assert shipped == ["distilled_int8_qat", "micro_distilled", "sparse"]
    assert json.loads(next(teacher.parent.glob("distilled_int8_qat_*.json")).read_text())["batchnorm_folded"]

    # the same images encoded otherwise: other bytes, the same runs, which say what data they were trained on
    recoded = dataclasses.replace(data, checksum="0" * 64)
    again = build_one(recoded, teacher, tmp_path / "again", variants, ["onnxruntime"],
                      dataclasses.replace(options, ship_runs=False))
    metrics = {v: models_of(tmp_path / "again")[f"tiny_{v}"]["metrics"] for v in variants}
    assert metrics["sparse"]["sparsity"]["shipped"].startswith("sparse_")
    assert metrics["distilled_int8_qat"]["qat"]["shipped"].startswith("distilled_int8_qat_")
    assert metrics["distilled_int8_qat"]["distillation"]["shipped"].startswith("micro_distilled_")
    assert metrics["sparse"]["sparsity"]["data_checksum"] == data.checksum != recoded.checksum
    assert again.rejected == {}


def test_a_run_that_is_not_shipped_is_left_out_with_the_command_that_trains_it(
        tmp_path: Path, teacher: Path, mini_archive: Path) -> None:
    from build.data import load_dataset
    from build.pipeline import BuildOptions
    from tests.conftest import CIFAR, build_one, models_of

    options = BuildOptions(verify_images=100, measure_speed=False, threads=1, max_train_steps=2)
    built = build_one(load_dataset(str(mini_archive), CIFAR), teacher, tmp_path / "repo", ["fp32", "sparse"],
                      ["onnxruntime"], options)
    assert sorted(models_of(tmp_path / "repo")) == ["tiny_fp32"]
    assert "ships no run sparse_" in built.not_applicable["sparse"] and "--train" in built.not_applicable["sparse"]
    assert not list(teacher.parent.glob("sparse_*.pt")), "nothing trained, nothing shipped"
