"""The question as the model sees it: one call, the renderer training uses, with the prompt style a parameter.

Training renders every question through `training.data.render_prompt` (options listed unless the question already
lists them). Inference must send the very same text, so it never formats prompts itself: it calls
`render_question`, which hands the style on to the training package's renderer. Today that renderer has one style
(the project's own, `None` / "hispatial"); when training gains more (the official release's), they are selected
here by name and recorded in the checkpoint, and every caller of `render_question` follows.
"""

from __future__ import annotations

from collections.abc import Sequence

from assets.records import QAFormat
from inference.inputs import AskInputError

DEFAULT_STYLE = "hispatial"


def render_question(question: str, options: Sequence[str] = (), fmt: QAFormat | str = QAFormat.FREE_FORM,
                    style: str | None = None) -> str:
    """The full prompt text for `question` in `style` (None: the checkpoint's training default)."""
    from training.data import render_prompt

    if style not in (None, DEFAULT_STYLE):
        raise AskInputError(f"prompt style {style!r} is not known to training.data (known: {DEFAULT_STYLE})")
    return render_prompt(question, list(options), fmt)
