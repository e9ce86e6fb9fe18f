"""What the model reads and writes, in one place: prompt styles for training, evaluation and inference.

Two styles (`training.config.PromptStyle`):

- `hispatial` (ours): the question as our QA generator wrote it; multiple-choice options listed with their labels
  unless the question already lists them; answers as stored.
- `official` (microsoft/HiSpatial, hispatial/data/vqa_dataset.py and eval/): what the released HiSpatial-3B was
  trained and evaluated on. L0 is "what is the xyz of the pixel in <4 loc tokens>" answered "x.xxm y.yym z.zzm";
  multiple choice is shuffled and labelled in one of five alphabets, "(A). text" or "A. text", and answered by the
  label alone; "True or False" becomes "Yes or No" and true/false answers "Yes"/"No" (half the time the question
  gains " Answer with Yes or No."); an item's format is drawn text / MCQ / true-false at 0.3 / 0.4 / 0.3.
  At evaluation, options are listed "A. text" under the bare question, with no answer-format instruction.

`render_question` is the single entry point for a question shown to a model (training, `evaluation`, and
`hispatial ask`); `render_training_pair` adds the answer side for training; `official_point_query` is the official
L0 item. `style_for_checkpoint` picks the style a checkpoint was trained with.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from assets.qa.formats import with_options_listed
from assets.records import QAFormat
from training.config import PromptStyle

PROMPT_STYLES: tuple[PromptStyle, ...] = ("hispatial", "official")

# the official loader's MCQ label alphabets (WildSampleTransform.mcq_choice_augment)
OFFICIAL_ALPHABETS: tuple[tuple[str, ...], ...] = (
    tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    tuple("abcdefghijklmnopqrstuvwxyz"),
    tuple(str(i) for i in range(1, 11)),
    ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"),
    ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x"),
)
OFFICIAL_FORMAT_WEIGHTS: dict[QAFormat, float] = {
    QAFormat.FREE_FORM: 0.3,
    QAFormat.MULTIPLE_CHOICE: 0.4,
    QAFormat.TRUE_FALSE: 0.3,
}
EVAL_LABELS = "ABCDEF"

_LABEL_PREFIX = re.compile(r"^\s*(\(?[A-Za-z]\)\.?|[A-Za-z][.:]|\(?\d+[).:]|\(?[IVXivx]+[).:])\s+")


def _check(style: str) -> PromptStyle:
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; known: {', '.join(PROMPT_STYLES)}")
    return style  # type: ignore[return-value]


def strip_label(option: str) -> str:
    """ "B. the table" -> "the table"; an unlabelled option is returned as is."""
    return _LABEL_PREFIX.sub("", option).strip()


def _without_listed_options(question: str, options: Sequence[str]) -> str:
    lines = [line for line in question.split("\n") if not any(opt and opt in line for opt in options)]
    return "\n".join(lines).strip()


def render_question(
    question: str,
    style: PromptStyle = "hispatial",
    options: Sequence[str] = (),
    fmt: QAFormat | str = QAFormat.FREE_FORM,
    labels: Sequence[str] | None = None,
) -> str:
    """The prompt text a model sees for a question (no "<image>" token; the processor adds it).

    `hispatial`: `assets.qa.formats.with_options_listed` (the rule the dataset exports use too).
    `official` (the release's eval scripts): the bare question, then one "A. option" line per option; labels
    default to A-F (pass `labels` to keep a benchmark's own); "True or False" is asked as "Yes or No"."""
    _check(style)
    if style == "hispatial":
        return with_options_listed(question, options, fmt)
    is_choice = QAFormat(fmt) == QAFormat.MULTIPLE_CHOICE and bool(options)
    text = question.replace("True or False", "Yes or No")
    if not is_choice:
        return text.strip()
    bare = [strip_label(opt) for opt in options]
    text = _without_listed_options(text, options)
    labels = list(labels) if labels else list(EVAL_LABELS[: len(bare)])
    return text + "\n" + "\n".join(f"{label}. {opt}" for label, opt in zip(labels, bare, strict=False))


def render_training_pair(
    question: str,
    answer: str,
    fmt: QAFormat | str,
    style: PromptStyle,
    rng: np.random.Generator,
    options: Sequence[str] = (),
    correct_index: int | None = None,
) -> tuple[str, str]:
    """(prompt, target answer) for one training pair, with the official loader's rewrites in `official` style:
    options shuffled and relabelled in a random alphabet, answered by the label; true/false as Yes/No."""
    _check(style)
    fmt = QAFormat(fmt)
    if style == "hispatial":
        return render_question(question, style, options, fmt), answer
    if fmt == QAFormat.MULTIPLE_CHOICE and options:
        bare = [strip_label(opt) for opt in options]
        correct = bare[correct_index] if correct_index is not None else strip_label(answer)
        order = rng.permutation(len(bare))
        alphabet = OFFICIAL_ALPHABETS[rng.integers(len(OFFICIAL_ALPHABETS))]
        parens = bool(rng.integers(2))
        lines, target = [], ""
        for label, i in zip(alphabet, order, strict=False):
            lines.append(f"({label}). {bare[i]}" if parens else f"{label}. {bare[i]}")
            if bare[i] == correct:
                target = f"({label})" if parens else label
        prompt = _without_listed_options(question, options) + "\n" + "\n".join(lines)
        return prompt.strip(), target
    prompt = question.replace("True or False", "Yes or No").strip()
    if answer.strip().lower() in ("true", "false", "yes", "no") and fmt == QAFormat.TRUE_FALSE:
        if "Yes or No" not in prompt and rng.random() < 0.5:
            prompt += " Answer with Yes or No."
        answer = "Yes" if answer.strip().lower() in ("true", "yes") else "No"
    return prompt, answer


def pick_format(available: Sequence[QAFormat], style: PromptStyle, rng: np.random.Generator) -> QAFormat:
    """The format of the next training pair among those a task has: official 0.3 / 0.4 / 0.3, else uniform."""
    formats = sorted(set(available), key=list(QAFormat).index)
    if not formats:
        raise ValueError("no format available")
    weights = np.array([OFFICIAL_FORMAT_WEIGHTS[f] if style == "official" else 1.0 for f in formats])
    return formats[rng.choice(len(formats), p=weights / weights.sum())]


def official_loc_tokens(row: int, col: int, height: int, width: int) -> str:
    """A pixel as the official L0 prompt names it: a 4-token box of one point, round(v / H * 1024) (not floor)."""
    y, x = round(row / height * 1024), round(col / width * 1024)
    return f"<loc{y:04d}><loc{x:04d}><loc{y:04d}><loc{x:04d}>"


def official_point_query(
    point_map: np.ndarray, rng: np.random.Generator
) -> tuple[str, str, tuple[int, int]] | None:
    """The official L0 item on a model-input point map (4, S, S: xyz + validity, after the resize): a random valid
    pixel, "what is the xyz of the pixel in <loc..>x4" answered "x.xxm y.yym z.zzm"; None without a valid pixel."""
    valid = np.argwhere(point_map[3] > 0)
    if len(valid) == 0:
        return None
    row, col = (int(v) for v in valid[rng.integers(len(valid))])
    x, y, z = (float(point_map[c, row, col]) for c in range(3))
    tokens = official_loc_tokens(row, col, point_map.shape[1], point_map.shape[2])
    x, y, z = (round(v, 2) for v in (x, y, z))  # the official rounds, then formats
    return f"what is the xyz of the pixel in {tokens}", f"{x:.2f}m {y:.2f}m {z:.2f}m", (row, col)


def style_for_checkpoint(train_config: object | None, official_release: bool) -> PromptStyle:
    """The style a checkpoint expects: the official release always `official`; ours whatever it trained with."""
    if official_release:
        return "official"
    data = getattr(train_config, "data", None)
    return getattr(data, "prompt_style", "hispatial")
