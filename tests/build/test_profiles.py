from __future__ import annotations

import pytest

from build.errors import ZooError
from build.profiles import PROFILES, options_for
from build.steps.prune import PruneConfig
from build.steps.quantize import Int8Config


def test_overrides_replace_single_fields_on_top_of_the_profile() -> None:
    options = options_for("long", ["prune.ratio=0.4", "prune.importance=taylor", "int8.per_channel=false"], threads=1)
    prune = options.setting("prune", PruneConfig())
    assert (prune.ratio, prune.importance) == (0.4, "taylor")
    assert prune.final_steps == PROFILES["long"].settings["prune"].final_steps, "the profile's other fields stay"
    assert options.setting("int8", Int8Config()).per_channel is False and options.threads == 1
    assert options_for("default", ["prune.ratio=none"]).setting("prune", PruneConfig()).ratio is None


def test_quick_profile_has_no_accuracy_floor_and_caps_training() -> None:
    quick = options_for("quick", [])
    assert quick.min_accuracy == 0 and quick.train_steps(1000) == quick.max_train_steps
    assert options_for("default", []).train_steps(1000) == 1000


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
