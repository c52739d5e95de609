"""The pipeline's contract: steps return results, the pipeline merges them and keeps the status records."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from build.clock import Clock
from build.data import Dataset
from build.errors import VariantRejected
from build.pipeline import (
    BuildContext,
    BuildOptions,
    Outcome,
    Pipeline,
    Published,
    RunSteps,
    Status,
    Step,
    StepResult,
    VariantState,
    budgeted_steps,
    keep_own,
)
from build.repository.model_config import model_io
from build.sources import Teacher
from build.steps.distill import DistillConfig
from build.verification import Tolerance
from tests.conftest import CIFAR, unused


class Fixed(Step):
    """A step that returns what it was given, and counts its runs."""

    def __init__(self, name: str, result: StepResult | Exception) -> None:
        self.name, self.result, self.runs = name, result, 0

    def run(self, state: VariantState, ctx: BuildContext) -> StepResult:
        self.runs += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def run(tmp_path: Path, *steps: Step, clock: Clock | None = None) -> tuple[VariantState, list[Outcome]]:
    start = VariantState("v", "teacher", unused(Tolerance), tmp_path)
    ctx = cast(BuildContext, SimpleNamespace(clock=clock or Clock()))  # these steps read nothing else of it
    return Pipeline(steps).run(start, ctx, log=lambda _: None)


def test_each_step_is_timed_under_its_kind(tmp_path: Path) -> None:
    clock = Clock()
    run(tmp_path, Fixed("export_onnx", StepResult.ok()), Fixed("publish:openvino", StepResult.ok()),
        Fixed("publish:openvino", StepResult.ok()), clock=clock)
    assert sorted(clock.seconds) == ["export_onnx", "publish openvino"]


def test_what_steps_produce_is_merged_into_the_next_state(tmp_path: Path) -> None:
    state, outcomes = run(tmp_path, Fixed("a", StepResult.ok({"macs": 1, "graph": {"x": 1}}, onnx_path=Path("a"))),
                          Fixed("b", StepResult.ok({"graph": {"y": 2}}, onnx_path=Path("b"))))
    assert state.onnx_path == Path("b") and state.recipe == ("a", "b")
    assert state.metrics == {"macs": 1, "graph": {"y": 2}}, "a step's metric replaces the one of the same name"
    assert outcomes == [Outcome("v", Status.OK)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.model = None  # type: ignore[misc]  # the assignment that must be refused


def test_a_model_fails_alone_but_a_failed_step_ends_the_variant(tmp_path: Path) -> None:
    left_out = StepResult(Status.FAIL, "could not convert", published=Published("m_ov", "openvino"))
    skipped = StepResult(Status.SKIPPED, "FP16 on a CPU runtime", published=Published("m_bf16", "openvino_bf16"))
    after = Fixed("after", StepResult.ok())
    _, outcomes = run(tmp_path, Fixed("p1", left_out), Fixed("p2", skipped), after)
    assert [(o.key, o.status) for o in outcomes] == [("m_ov", Status.FAIL), ("m_bf16", Status.SKIPPED),
                                                     ("v", Status.OK)] and after.runs == 1
    after = Fixed("after", StepResult.ok())
    _, outcomes = run(tmp_path, Fixed("p1", left_out), Fixed("verify", VariantRejected("drifted")), after)
    assert outcomes[-1] == Outcome("v", Status.FAIL, "drifted") and after.runs == 0, "a rejection is a FAIL"


def test_the_context_is_read_only(tmp_path: Path) -> None:
    ctx = BuildContext(unused(Dataset), unused(Teacher), BuildOptions(), (), tmp_path, {},
                       model_io(CIFAR))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.options = BuildOptions(threads=1)  # type: ignore[misc]  # the assignment that must be refused


def test_a_variant_keeps_its_own_choices_over_the_build_config() -> None:
    own = DistillConfig(student="mobilenetv2", epochs=12.0)
    assert keep_own(own, DistillConfig(epochs=3.0, alpha=0.9)) == DistillConfig(student="mobilenetv2", epochs=12.0,
                                                                                 alpha=0.9)
    assert keep_own(DistillConfig(), DistillConfig(alpha=0.9)) == DistillConfig(alpha=0.9)


def test_a_field_the_user_sets_wins_over_the_recipe() -> None:
    own = DistillConfig(student="mobilenetv2", epochs=12.0)
    assert keep_own(own, DistillConfig(epochs=100.0), ["epochs"]) == DistillConfig(student="mobilenetv2", epochs=100.0)


def test_a_run_within_the_budget_keeps_its_recipe() -> None:
    # 100 steps x batch 128 x 3 x 1 GMAC = 38.4 TMAC
    assert budgeted_steps([50, 50], 128, 10**9, 40.0) == [50, 50]


def test_a_run_over_the_budget_is_cut_in_proportion_each_phase_to_at_least_one_step() -> None:
    recipe = [9, 9, 172]  # the pruning of ResNet-18 at 224 px, on 1,100 images
    assert budgeted_steps(recipe, 128, 1_800_000_000, 8.0) == [1, 1, 10]  # 8e12 / (3 x 128 x 1.8e9 x 190) = 6.1%
    shrinking = [1_340_000_000, 980_000_000, 720_000_000]  # the network each phase fine-tunes, pruned step by step
    steps = budgeted_steps(recipe, 128, shrinking, 8.0)
    assert steps == [1, 1, 24] and 3 * 128 * sum(n * m for n, m in zip(steps, shrinking)) <= 8e12, \
        "a network that shrinks as it is pruned trains more steps within the same budget"
    assert budgeted_steps([400], 128, 10**9, 8.0) == [20]  # 8e12 / (3 x 128 x 1e9) = 20.8


def _budget_ctx(tmp_path: Path, options: BuildOptions, weights_dir: Path | None) -> BuildContext:
    data = cast(Dataset, SimpleNamespace(train=range(1100)))  # only its size is read
    return BuildContext(data, unused(Teacher), options, (), tmp_path, {}, model_io(CIFAR), weights_dir=weights_dir)


def test_a_card_that_ships_no_runs_trains_within_the_budget_and_records_it(tmp_path: Path) -> None:
    ctx = _budget_ctx(tmp_path, BuildOptions(train_budget_tmacs=8.0), weights_dir=None)
    run = ctx.run_steps([400], 128, lambda: 10**9)
    assert run == RunSteps((400,), (20,), 8.0)
    assert run.record() == {"train_budget": {"tmacs": 8.0, "recipe_steps": 400, "steps": 20}}


def test_a_card_that_ships_its_runs_is_not_budgeted_so_their_keys_hold(tmp_path: Path) -> None:
    ctx = _budget_ctx(tmp_path, BuildOptions(train_budget_tmacs=8.0), weights_dir=tmp_path)

    def uncounted() -> int:
        raise AssertionError("no budget applies: the MACs are not counted")

    run = ctx.run_steps([150, 150, 450], 128, uncounted)
    assert run == RunSteps((150, 150, 450), (150, 150, 450)) and run.record() == {}


def test_without_a_budget_every_run_keeps_its_recipe(tmp_path: Path) -> None:
    ctx = _budget_ctx(tmp_path, BuildOptions(train_budget_tmacs=None), weights_dir=None)
    assert ctx.run_steps([400], 128, lambda: 10**9).steps == (400,)


def test_the_batch_of_a_split_smaller_than_it_is_what_is_budgeted(tmp_path: Path) -> None:
    ctx = _budget_ctx(tmp_path, BuildOptions(train_budget_tmacs=8.0), weights_dir=None)
    # fit draws batches of at most the split's 1,100 images: 8e12 / (3 x 1100 x 1e9) = 2.4
    assert ctx.run_steps([400], 4096, lambda: 10**9).steps == (2,)


def test_a_budget_below_one_step_per_phase_still_trains_each_phase_once() -> None:
    assert budgeted_steps([150, 150, 450], 128, 10**9, 0.1) == [1, 1, 1]
