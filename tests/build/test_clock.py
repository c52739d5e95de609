from __future__ import annotations

import re

from build.clock import Clock


def test_phases_add_up_and_the_line_names_the_longest_first() -> None:
    clock = Clock()
    clock.add("publish onnxruntime", 130.0)
    clock.add("measure speed and memory", 40.0)
    clock.add("publish onnxruntime", 20.0)
    with clock.phase("report"):
        pass
    assert clock.seconds["publish onnxruntime"] == 150.0 and clock.seconds["report"] < 1
    line = clock.line(shown=2)
    assert line.startswith("time: ") and "publish onnxruntime 2 min 30 s, measure speed and memory 40 s" in line
    assert "report" not in line, "beyond the longest `shown`, phases count as other"


def test_time_not_spent_in_any_phase_is_shown_as_other() -> None:
    clock = Clock()
    clock._start -= 100  # as if the build began 100 s ago
    clock.add("served check", 60.0)
    assert re.search(r"served check 60 s, other 4\d s$", clock.line())
