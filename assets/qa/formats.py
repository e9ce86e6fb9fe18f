"""How answers are written and how one question becomes free-form, multiple-choice and true/false pairs.

Shared by every level generator (L0-L3), so that "1.27 m", option labels and True/False balance mean the same thing
in every task (docs/CONVENTIONS.md "Answers"). Units are meters inside the code; a question may ask for cm, ft or in
and its answer then uses that unit. Each task gives a free-form spec (`FreeForm`), a multiple-choice spec (`Choice`:
stem, correct option, distractors) and a true/false spec (`Judgement`: a true and a false statement, or a yes/no
question pair); `emit` turns them into `QAPair`s for the formats the config enables.

Hot-loop note: `emit` builds `QAPair`s with `construct_pair` (no validation, ~10x faster); the tests validate every
generated pair with `QAPair.model_validate(pair.model_dump())`, so the generators cannot drift from the schema.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from assets.qa.context import QAContext, RandomSource, qa_id
from assets.records import TASK_LEVEL, DrawBox, QAFormat, QAPair, SceneObject, Task

# ------------------------------------------------------------------------------------------------ numbers, units

METERS_PER_UNIT = {"m": 1.0, "cm": 0.01, "ft": 0.3048, "in": 0.0254}
UNIT_WORDS = {"m": "meters", "cm": "centimeters", "ft": "feet", "in": "inches"}
UNIT_DECIMALS = {"m": 2, "cm": 0, "ft": 2, "in": 1}


def convert_length(meters: float, unit: str) -> float:
    """Meters -> `unit` (m, cm, ft, in)."""
    return meters / METERS_PER_UNIT[unit]


def to_meters(value: float, unit: str) -> float:
    return value * METERS_PER_UNIT[unit]


def length_value(meters: float, unit: str = "m") -> float:
    """The number an answer shows: converted to `unit` and rounded as `format_length` rounds it."""
    return round(convert_length(meters, unit), UNIT_DECIMALS[unit])


def format_length(meters: float, unit: str = "m") -> str:
    """'1.27 m', '127 cm', '4.17 ft', '50.0 in': meters get two decimals (the HiSpatial style)."""
    decimals = UNIT_DECIMALS[unit]
    value = convert_length(meters, unit)
    text = f"{value:.{decimals}f}"
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    return f"{text} {unit}"


def _fmt2(x: float) -> str:
    text = f"{x:.2f}"
    return "0.00" if text == "-0.00" else text


def format_xyz(xyz: Sequence[float]) -> str:
    """Camera-frame point as '0.61m -0.20m 1.17m' (the official HiSpatial xyz style)."""
    return " ".join(f"{_fmt2(float(c))}m" for c in xyz)


def format_vector(vec: Sequence[float]) -> str:
    """A unit direction as '0.61 -0.20 0.77' (two decimals, no unit)."""
    return " ".join(_fmt2(float(c)) for c in vec)


def pick_unit(ctx: QAContext) -> tuple[str, str]:
    """Choose the unit a length question asks for, and the phrase that asks for it.

    Meters questions name the unit only sometimes (an unqualified question is answered in meters, the default);
    other units are always named, so the answer's unit is never a guess.
    """
    units = ctx.config.units
    unit = units[int(ctx.fast.random() * len(units))]
    if unit == "m" and ctx.fast.random() >= ctx.config.unit_mention_prob:
        return unit, ""
    return unit, f" (in {UNIT_WORDS[unit]})"


def numeric_distractors(rng: RandomSource, truth: float, k: int, min_rel: float = 0.25,
                        max_factor: float = 3.0, min_separation: float = 0.15) -> list[float]:
    """`k` wrong positive values, each outside truth x (1 +- min_rel) and at least `min_separation` (relative)
    from each other, so a multiple-choice question has exactly one defensible option."""
    if truth <= 0 or not math.isfinite(truth):
        raise ValueError(f"numeric distractors need a positive finite truth, got {truth}")
    lo = math.log(max(1.0 + min_rel, 1.0 / (1.0 - min(min_rel, 0.9))) * 1.02)
    hi = math.log(max_factor)
    if hi <= lo:
        hi = lo + 0.5
    out: list[float] = []
    for _ in range(50 * max(k, 1)):
        if len(out) == k:
            break
        r = math.exp(rng.uniform(lo, hi) * (1.0 if rng.random() < 0.5 else -1.0))
        value = truth * r
        if all(abs(math.log(value / other)) >= math.log(1.0 + min_separation) for other in out):
            out.append(value)
    return out


def length_distractors(rng: RandomSource, meters: float, unit: str, k: int, min_rel: float = 0.25) -> list[float]:
    """`numeric_distractors` checked on the values as displayed in `unit`: after rounding (e.g. whole cm) each
    wrong value still lies outside truth x (1 +- min_rel) and shows a different number from the others.
    Usually one draw suffices; tiny values in coarse units may come back with fewer than `k`."""
    shown_truth = length_value(meters, unit)
    out: list[float] = []
    seen: set[float] = set()
    for _ in range(3):
        for value in numeric_distractors(rng, meters, k - len(out), min_rel):
            shown = length_value(value, unit)
            if shown <= 0 or shown in seen or abs(shown - shown_truth) < min_rel * shown_truth:
                continue
            seen.add(shown)
            out.append(value)
        if len(out) >= k:
            break
    return out


def distance3(p: Sequence[float], q: Sequence[float]) -> float:
    return math.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 + (p[2] - q[2]) ** 2)


def xyz_distractors(rng: RandomSource, truth: Sequence[float], k: int, min_rel: float,
                    taken: Sequence[Sequence[float]] = ()) -> list[tuple[float, float, float]]:
    """Wrong but plausible points: at least (`min_rel` + 0.05) x |truth| from the truth, 0.15 x |truth| from each
    other and from `taken` (distractors chosen elsewhere), in front of the camera. Half are depth-scale errors (the
    common monocular failure), half random offsets. Plain floats: this runs per question."""
    t = (float(truth[0]), float(truth[1]), float(truth[2]))
    norm = math.sqrt(t[0] ** 2 + t[1] ** 2 + t[2] ** 2)
    lo, hi = math.log(1.0 + min_rel + 0.1), math.log(2.5)
    out: list[tuple[float, float, float]] = []
    others = [tuple(p) for p in taken]
    for _ in range(40 * max(k, 1)):
        if len(out) >= k:
            break
        if rng.random() < 0.5:
            scale = math.exp(rng.uniform(lo, hi) * (1.0 if rng.random() < 0.5 else -1.0))
            cand = (t[0] * scale, t[1] * scale, t[2] * scale)
        else:
            d = [rng.gauss(0.0, 1.0) for _ in range(3)] if isinstance(rng, random.Random) else list(rng.normal(size=3))
            dn = math.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2) or 1.0
            r = norm * rng.uniform(min_rel + 0.1, 0.8) / dn
            cand = (t[0] + d[0] * r, t[1] + d[1] * r, t[2] + d[2] * r)
        if cand[2] <= 0.05 or distance3(cand, t) < (min_rel + 0.05) * norm:
            continue
        if any(distance3(cand, o) < 0.15 * norm for o in others):
            continue
        out.append(cand)
        others.append(cand)
    return out


# --------------------------------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class Template:
    """One phrasing of a question; `id` is stable (stored with every pair, used in qa ids and ablations)."""

    id: str
    text: str

    def render(self, **kwargs: str) -> str:
        return self.text.format(**kwargs)


def templates(prefix: str, *texts: str) -> tuple[Template, ...]:
    """Number a task's phrasings: templates('l1.size.ff', 'How wide is {a}?', ...) -> ids l1.size.ff.0, .1..."""
    return tuple(Template(f"{prefix}.{i}", t) for i, t in enumerate(texts))


def pick(rng: RandomSource, options: Sequence[Template]) -> Template:
    return options[int(rng.random() * len(options))]


def capitalize(text: str) -> str:
    """Upper-case the first letter only (references keep their own casing)."""
    return text[:1].upper() + text[1:] if text else text


# ----------------------------------------------------------------------------------------------- multiple choice

LABEL_STYLES = ("upper", "paren_lower", "number", "roman")
_ROMAN = ("I", "II", "III", "IV", "V", "VI")


_LABELS = {
    "upper": tuple(f"{chr(65 + i)}." for i in range(6)),
    "paren_lower": tuple(f"({chr(97 + i)})" for i in range(6)),
    "number": tuple(f"{i + 1}." for i in range(6)),
    "roman": tuple(f"{r}." for r in _ROMAN),
}


def option_labels(style: str, n: int) -> list[str]:
    """Labels as they appear in the question: A./B., (a)/(b), 1./2., I./II."""
    if not 1 <= n <= 6:
        raise ValueError(f"1-6 options supported, got {n}")
    if style not in _LABELS:
        raise ValueError(f"unknown label style {style!r}; choose from {LABEL_STYLES}")
    return list(_LABELS[style][:n])


_MC_INSTRUCTIONS = (
    "",
    " Choose the correct option.",
    " Select one of the following options.",
    " Pick the best answer.",
)


@dataclass
class MultipleChoice:
    """A rendered multiple-choice question: `question` lists the labelled options; `answer` = label + option."""

    question: str
    options: list[str]
    correct_index: int
    answer: str
    label_style: str


def multiple_choice(rng: RandomSource, stem: str, correct: str, distractors: Sequence[str], *,
                    min_options: int = 3, max_options: int = 5, style: str | None = None) -> MultipleChoice | None:
    """Shuffle the correct option among distinct distractors; the correct index is uniform over the positions.

    Returns None when fewer than one distinct distractor exists (a one-option question teaches nothing).
    """
    seen = {correct}
    unique: list[str] = []
    for d in distractors:
        if d not in seen:
            seen.add(d)
            unique.append(d)
    if not unique:
        return None
    max_options = min(max_options, 6, len(unique) + 1)
    min_options = max(2, min(min_options, max_options))
    rnd = rng.random
    n = min_options + int(rnd() * (max_options - min_options + 1))
    chosen = [unique[i] for i in rng.permutation(len(unique))[: n - 1]]
    correct_index = int(rnd() * n)
    options = chosen[:correct_index] + [correct] + chosen[correct_index:]
    style = style or LABEL_STYLES[int(rnd() * len(LABEL_STYLES))]
    labels = option_labels(style, n)
    instruction = _MC_INSTRUCTIONS[int(rnd() * len(_MC_INSTRUCTIONS))]
    sep = "\n" if rnd() < 0.5 else " "
    listing = sep.join(f"{label} {text}" for label, text in zip(labels, options, strict=True))
    return MultipleChoice(
        question=f"{stem}{instruction}\n{listing}",
        options=options,
        correct_index=correct_index,
        answer=f"{labels[correct_index]} {correct}",
        label_style=style,
    )


# -------------------------------------------------------------------------------------------------- true / false

TF_WRAPPERS = templates(
    "tf",
    "True or false: {s}",
    "Is the following statement true or false? {s}",
    "{s} True or false?",
    "Determine whether this statement is correct (answer True or False): {s}",
)


def balanced_truth(ctx: QAContext, key: str) -> bool:
    """Alternate True/False per `key` (e.g. task + axis) from a random start, so each kind of statement is true
    exactly half of the time within a scene (and hence over a shard), not just in expectation."""
    return ctx.flip(key)


# ------------------------------------------------------------------------------------------ specs and emission


@dataclass
class FreeForm:
    question: str
    answer: str
    template_id: str
    value: float | None = None  # numeric answer in `unit` (as shown in the answer text)
    unit: str | None = None
    direction: tuple[float, float, float] | None = None


@dataclass
class Choice:
    """Multiple choice: `stem` is the question without options; `correct` and `distractors` are option texts."""

    stem: str
    correct: str
    distractors: list[str]
    template_id: str
    value: float | None = None
    unit: str | None = None
    all_options: bool = False  # list every distractor (e.g. "which of these objects": the whole group)


@dataclass
class Judgement:
    """True/false: `true_text` holds, `false_text` does not (a wrong but plausible value or the opposite relation).

    With `yes_no=True` the texts are yes/no questions ("Is the mug left of the lamp?") answered Yes/No; otherwise
    they are statements wrapped in a True/False prompt.
    """

    true_text: str
    false_text: str
    template_id: str
    yes_no: bool = False
    balance_key: str = ""


@dataclass
class QABase:
    """What every format of one question shares."""

    task: Task
    subtask: str
    objects: list[SceneObject] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    draw_boxes: list[DrawBox] = field(default_factory=list)
    extra: str = ""  # disambiguates qa ids (e.g. the pixel pair of an L0 question)
    reasoning: str = ""
    generator: str = "template"


_QA_FIELDS = frozenset(QAPair.model_fields)


def construct_pair(**fields: object) -> QAPair:
    """A `QAPair` from a complete set of already-correct field values, without validation.

    Does what `QAPair.model_construct` does for a full field set (instance `__dict__` plus pydantic's bookkeeping
    attributes) at ~1 us instead of ~10 us, which matters at tens of thousands of pairs per second. Every field
    must be given; the tests and `assets.qa.shards` validate generated pairs, so drift from the schema (or from
    pydantic internals) is caught there.
    """
    if fields.keys() != _QA_FIELDS:
        raise TypeError(f"construct_pair needs exactly the QAPair fields; diff {set(fields) ^ _QA_FIELDS}")
    return _construct(fields)


def _construct(fields: dict[str, object]) -> QAPair:
    """`construct_pair` without the field-set check, for `_pair`, whose literal field list is pinned by a test."""
    pair = object.__new__(QAPair)
    object.__setattr__(pair, "__dict__", fields)
    object.__setattr__(pair, "__pydantic_fields_set__", _QA_FIELDS)
    object.__setattr__(pair, "__pydantic_extra__", None)
    object.__setattr__(pair, "__pydantic_private__", None)
    return pair


def _pair(ctx: QAContext, base: QABase, ids: list[int], fmt: QAFormat, question: str, answer: str,
          template_id: str, options: list[str] | None = None, correct_index: int | None = None,
          value: float | None = None, unit: str | None = None,
          direction: tuple[float, float, float] | None = None) -> QAPair:
    return _construct({
        "qa_id": qa_id(ctx.scene.scene_id, base.task, template_id, ids, fmt, f"{base.subtask}|{base.extra}"),
        "scene_id": ctx.scene.scene_id,
        "shard": ctx.shard,
        "level": TASK_LEVEL[base.task],
        "task": base.task,
        "subtask": base.subtask,
        "format": fmt,
        "question": question,
        "answer": answer,
        "options": options if options is not None else [],
        "correct_index": correct_index,
        "value": value,
        "unit": unit,
        "direction": direction,
        "object_ids": list(ids),
        "references": list(base.references),
        "draw_boxes": (ctx.boxes_named_in(question, base.draw_boxes) if base.draw_boxes or "highlighted by" in question
                    else []),
        "template_id": template_id,
        "reasoning": base.reasoning,
        "generator": base.generator,
    })


def emit(ctx: QAContext, base: QABase, free: FreeForm | None = None, choice: Choice | None = None,
         judgement: Judgement | None = None) -> list[QAPair]:
    """One question in every enabled format (skipping formats whose spec is None or that cannot be built)."""
    formats = ctx.config.formats
    out: list[QAPair] = []
    ids = [o.instance_id for o in base.objects]
    if free is not None and QAFormat.FREE_FORM in formats:
        out.append(_pair(ctx, base, ids, QAFormat.FREE_FORM, free.question, free.answer, free.template_id,
                         value=free.value, unit=free.unit, direction=free.direction))
    if choice is not None and QAFormat.MULTIPLE_CHOICE in formats:
        lo, hi = ctx.config.mc_min_options, ctx.config.mc_max_options
        if choice.all_options:
            lo = hi = min(len(choice.distractors) + 1, 6)
        mc = multiple_choice(ctx.fast, choice.stem, choice.correct, choice.distractors, min_options=lo, max_options=hi)
        if mc is not None:
            out.append(_pair(ctx, base, ids, QAFormat.MULTIPLE_CHOICE, mc.question, mc.answer, choice.template_id,
                             options=mc.options, correct_index=mc.correct_index, value=choice.value,
                             unit=choice.unit))
    if judgement is not None and QAFormat.TRUE_FALSE in formats:
        truth = balanced_truth(ctx, judgement.balance_key or f"{base.task}|{base.subtask}")
        text = judgement.true_text if truth else judgement.false_text
        if judgement.yes_no:
            question, answer, tid = text, ("Yes" if truth else "No"), judgement.template_id
        else:
            wrapper = pick(ctx.fast, TF_WRAPPERS)
            question, answer = wrapper.render(s=text), ("True" if truth else "False")
            tid = f"{judgement.template_id}/{wrapper.id}"
        out.append(_pair(ctx, base, ids, QAFormat.TRUE_FALSE, question, answer, tid))
    return out


class Budget:
    """Per-scene cap on QA pairs per task (`QAConfig.caps`), checked before each question so that all formats of
    one question stay together (a task may end up to two pairs over its cap)."""

    def __init__(self, ctx: QAContext) -> None:
        self.ctx = ctx
        self.used: dict[Task, int] = {}

    def open(self, task: Task) -> bool:
        return self.used.get(task, 0) < self.ctx.config.cap(task)

    def take(self, task: Task, pairs: list[QAPair], out: list[QAPair]) -> None:
        self.used[task] = self.used.get(task, 0) + len(pairs)
        out.extend(pairs)
