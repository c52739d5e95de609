"""Start a variant from the teacher network."""

from __future__ import annotations

import copy

from build.pipeline import BuildContext, Step, VariantState


class FromTeacher(Step):
    name = "from_teacher"

    def run(self, state: VariantState, ctx: BuildContext) -> None:
        state.model = copy.deepcopy(ctx.teacher).eval()
