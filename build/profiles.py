"""Build profiles, and per-technique settings given as `technique.field=value`.

Each technique has one config dataclass, and its steps hold one (in the manner of pytorch/ao: the settings
travel with the transform). A profile is a set of BuildOptions whose `configs` are such objects;
`--set prune.importance=taylor` replaces one field of one technique's config on top. When the build plans,
each config is applied to the steps of its technique in every recipe (`Step.tuned`), where a variant's own
choices (e.g. its student family) are kept unless `--set` names that very field.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from build.errors import ZooError
from build.pipeline import DEFAULT_TRAIN_BUDGET_TMACS, BuildOptions
from build.steps.distill import DistillConfig
from build.steps.prune import PruneConfig
from build.steps.qat import QatConfig
from build.steps.quantize import Int8Config
from build.steps.sparsify import SparsityConfig

TECHNIQUES: dict[str, type] = {
    "int8": Int8Config,
    "prune": PruneConfig,
    "sparsify": SparsityConfig,
    "distill": DistillConfig,
    "qat": QatConfig,
}

PROFILES: dict[str, BuildOptions] = {
    # Every variant from the shipped teacher and the training runs shipped beside it: minutes on 2 CPU cores. A card
    # that ships no runs (a user's model) trains each within a compute budget, to stay within minutes too.
    "default": BuildOptions(max_drop_points=10.0, train_budget_tmacs=DEFAULT_TRAIN_BUDGET_TMACS),
    # CI: a subset and a few steps of training. Checks the machinery; its accuracies mean nothing, hence no
    # accuracy floor. Fewer images everywhere keep it within 5 minutes.
    "quick": BuildOptions(verify_images=200, eval_images=200, served_check_images=200, served_latency_requests=50,
                          train_images=2048, max_train_steps=3, train_runs=True, profile="quick",
                          configs=(Int8Config(calibration_images=128, check_images=500),)),
    # For a GPU, or hours on a CPU: every training run recomputed from the teacher with the recipes the shipped
    # runs were made with (what the default profile loads), none loaded.
    "long": BuildOptions(max_drop_points=10.0, profile="long", train_runs=True, configs=tuple(
        kind(shipped=False) for kind in (DistillConfig, PruneConfig, SparsityConfig, QatConfig))),
}


def options_for(profile: str, overrides: list[str], **fields: Any) -> BuildOptions:
    """The profile's options, with `overrides` applied to technique configs and `fields` to the rest."""
    if profile not in PROFILES:
        raise ZooError(f"unknown profile '{profile}'; choose one of {sorted(PROFILES)}")
    base = PROFILES[profile]
    configs, user_set = {type(c): c for c in base.configs}, set(base.user_set)
    for item in overrides:
        technique, name, value = _split(item)
        kind = TECHNIQUES[technique]
        configs[kind] = dataclasses.replace(configs.get(kind, kind()), **{name: _parse(kind, name, value)})
        user_set.add((kind, name))
    return dataclasses.replace(base, configs=tuple(configs.values()), user_set=frozenset(user_set), **fields)


def train_budget_tmacs(value: str) -> float | None:
    """`--train-budget`: TMAC per training run, or None (no budget) for 'none' or 0."""
    if value.strip().lower() == "none":
        return None
    try:
        tmacs = float(value)
    except ValueError:
        raise ZooError(f"--train-budget takes TMAC per training run, or 'none'; got {value!r}") from None
    if tmacs < 0:
        raise ZooError(f"--train-budget must not be negative, got {value!r}")
    return tmacs or None


def _split(item: str) -> tuple[str, str, str]:
    key, sep, value = item.partition("=")
    technique, dot, name = key.strip().partition(".")
    if not sep or not dot:
        raise ZooError(f"setting '{item}' is not technique.field=value, e.g. prune.importance=taylor")
    if technique not in TECHNIQUES:
        raise ZooError(f"unknown technique '{technique}' in '{item}'; choose one of {sorted(TECHNIQUES)}")
    names = [f.name for f in dataclasses.fields(TECHNIQUES[technique])]
    if name not in names:
        raise ZooError(f"'{technique}' has no setting '{name}'; it has {names}")
    return technique, name, value.strip()


def _parse(cls: type, name: str, value: str) -> Any:
    kind = typing.get_type_hints(cls)[name]
    args = typing.get_args(kind)
    if args and type(None) in args:
        if value.lower() == "none":
            return None
        kind = next(a for a in args if a is not type(None))
    try:
        if kind is bool:
            return {"true": True, "false": False}[value.lower()]
        return kind(value)
    except (KeyError, ValueError):
        raise ZooError(f"setting {name}={value!r} is not a valid {getattr(kind, '__name__', kind)}") from None
