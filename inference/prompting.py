"""The question as the model sees it: one call, the renderer training uses, with the prompt style a parameter.

Training renders every question through `training.prompts.render_question` (our style lists the options unless the
question already does; the official release's style asks the bare question with "A. option" lines). Inference
must send the very same text, so it never formats prompts itself: the checkpoint records its style (the official
release gets `official` automatically, inference.loading) and `render_question` hands it on.
"""

from __future__ import annotations

from collections.abc import Sequence

from assets.records import QAFormat
from inference.inputs import AskInputError

DEFAULT_STYLE = "hispatial"


def render_question(
    question: str,
    options: Sequence[str] = (),
    fmt: QAFormat | str = QAFormat.FREE_FORM,
    style: str | None = None,
) -> str:
    """The full prompt text for `question` in `style` (None: our own style)."""
    from training.prompts import PROMPT_STYLES
    from training.prompts import render_question as render

    style = style or DEFAULT_STYLE
    if style not in PROMPT_STYLES:
        raise AskInputError(f"prompt style {style!r} is not known (known: {', '.join(PROMPT_STYLES)})")
    return render(question, style, options=list(options), fmt=fmt)
