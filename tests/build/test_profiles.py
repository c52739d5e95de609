from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from build.errors import ZooError
from build.pipeline import DEFAULT_TRAIN_BUDGET_TMACS
from build.profiles import PROFILES, options_for, train_budget_tmacs
from build.steps.distill import Distill, DistillConfig
from build.steps.prune import PruneConfig
from build.steps.qat import QatConfig
from build.steps.quantize import Int8Config, QuantizeStatic
from build.steps.sparsify import SparsityConfig
from build.zoo import configured_steps, step_config


def test_overrides_replace_single_fields_on_top_of_the_profile() -> None:
    options = options_for("long", ["prune.ratio=0.4", "prune.importance=taylor", "int8.per_channel=false"], threads=1)
    prune = options.config(PruneConfig)
    assert (prune.ratio, prune.importance) == (0.4, "taylor")
    assert prune.shipped is PROFILES["long"].config(PruneConfig).shipped is False, "the profile's other fields stay"
    assert options.config(Int8Config).per_channel is False and options.threads == 1
    assert options_for("default", ["prune.ratio=none"]).config(PruneConfig).ratio is None


def test_configs_reach_the_steps_of_their_technique_and_a_variant_keeps_its_own_unset_choices() -> None:
    options = options_for("quick", ["distill.epochs=3", "distill.alpha=0.9"])
    int8 = [s.config for s in configured_steps("int8", True, [], options) if isinstance(s, QuantizeStatic)]
    assert int8 == [Int8Config(calibration_images=128, check_images=500)], "the profile's config"
    widenet, mobilenet = ([s.config for s in configured_steps(v, True, [], options) if isinstance(s, Distill)][0]
                         for v in ("distilled", "distilled_mobilenetv2"))
    assert (widenet.student, widenet.epochs, widenet.alpha) == ("widenet", 3.0, 0.9)
    assert (mobilenet.student, mobilenet.epochs, mobilenet.alpha) == ("mobilenetv2", 3.0, 0.9), \
        "the variant's student stays; the fields --set names win over its own epochs"
    assert step_config("distilled_mobilenetv2", DistillConfig, options_for("quick", [])).epochs == 12.0


def test_the_long_profile_recomputes_every_training_run_with_the_shipped_recipes() -> None:
    long, default = options_for("long", []), options_for("default", [])
    kinds: tuple[tuple[str, type[Any]], ...] = (
        ("distilled", DistillConfig), ("pruned", PruneConfig), ("pruned_distilled", PruneConfig),
        ("sparse", SparsityConfig), ("distilled_int8_qat", QatConfig))
    for variant, kind in kinds:
        recomputed, shipped = step_config(variant, kind, long), step_config(variant, kind, default)
        assert recomputed == dataclasses.replace(shipped, shipped=False), variant
    assert long.train_runs and not default.train_runs


def test_quick_profile_has_no_accuracy_floor_and_caps_training() -> None:
    quick = options_for("quick", [])
    assert quick.max_drop_points is None and quick.train_steps(1000) == quick.max_train_steps
    assert options_for("default", []).train_steps(1000) == 1000


def test_only_the_default_profile_budgets_training_and_a_build_option_changes_it() -> None:
    assert options_for("default", []).train_budget_tmacs == DEFAULT_TRAIN_BUDGET_TMACS
    assert options_for("long", []).train_budget_tmacs is None  # the full recipes
    quick = options_for("quick", [])
    assert quick.train_budget_tmacs is None and quick.max_train_steps == 3
    assert options_for("default", [], train_budget_tmacs=2.5).train_budget_tmacs == 2.5


@pytest.mark.parametrize(("value", "tmacs"), [("none", None), ("None", None), ("0", None), ("12", 12.0),
                                              ("0.5", 0.5)])
def test_the_train_budget_option_reads_tmacs_or_none(value: str, tmacs: float | None) -> None:
    assert train_budget_tmacs(value) == tmacs


@pytest.mark.parametrize("value", ["lots", "-1"])
def test_a_bad_train_budget_is_named(value: str) -> None:
    with pytest.raises(ZooError, match="--train-budget"):
        train_budget_tmacs(value)


@pytest.mark.parametrize(("item", "message"), [
    ("prune.ratio", "not technique.field=value"),
    ("quantum.bits=4", "unknown technique 'quantum'"),
    ("prune.speed=2", "'prune' has no setting 'speed'"),
    ("prune.ratio=half", "ratio='half' is not a valid float"),
    ("int8.per_channel=maybe", "not a valid bool"),
])
def test_bad_settings_name_the_problem(item: str, message: str) -> None:
    with pytest.raises(ZooError, match=message):
        options_for("default", [item])


def test_unknown_profile() -> None:
    with pytest.raises(ZooError, match="unknown profile 'huge'"):
        options_for("huge", [])


def test_a_set_field_reaches_a_recipe_that_sets_it_too() -> None:
    assert step_config("pruned", PruneConfig, options_for("default", [])).final_steps == 7020  # the recipe's own
    given = options_for("default", ["prune.final_steps=4220"])
    assert step_config("pruned", PruneConfig, given).final_steps == 4220
    assert step_config("pruned", PruneConfig, given).finetune_steps == 350  # the recipe's other choices stay
