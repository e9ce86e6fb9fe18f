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

import hashlib
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from assets.qa.context import QAContext, RandomSource
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
    text = format(meters / METERS_PER_UNIT[unit], _LENGTH_SPEC[unit])  # convert_length, then fixed decimals
    if text[0] == "-" and float(text) == 0.0:
        text = text[1:]
    return f"{text} {unit}"


_LENGTH_SPEC = {unit: f".{decimals}f" for unit, decimals in UNIT_DECIMALS.items()}


def _fmt2(x: float) -> str:
    text = f"{x:.2f}"
    return "0.00" if text == "-0.00" else text


def format_xyz(xyz: Sequence[float]) -> str:
    """Camera-frame point as '0.61m -0.20m 1.17m' (the official HiSpatial xyz style)."""
    if len(xyz) == 3:  # the usual case, without a generator per call
        return f"{_fmt2(float(xyz[0]))}m {_fmt2(float(xyz[1]))}m {_fmt2(float(xyz[2]))}m"
    return " ".join(f"{_fmt2(float(c))}m" for c in xyz)


def format_vector(vec: Sequence[float]) -> str:
    """A unit direction as '0.61 -0.20 0.77' (two decimals, no unit)."""
    if len(vec) == 3:
        return f"{_fmt2(float(vec[0]))} {_fmt2(float(vec[1]))} {_fmt2(float(vec[2]))}"
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


def numeric_distractors(
    rng: RandomSource,
    truth: float,
    k: int,
    min_rel: float = 0.25,
    max_factor: float = 3.0,
    min_separation: float = 0.15,
) -> list[float]:
    """`k` wrong positive values, each outside truth x (1 +- min_rel) and at least `min_separation` (relative)
    from each other, so a multiple-choice question has exactly one defensible option."""
    if truth <= 0 or not math.isfinite(truth):
        raise ValueError(f"numeric distractors need a positive finite truth, got {truth}")
    lo = math.log(max(1.0 + min_rel, 1.0 / (1.0 - min(min_rel, 0.9))) * 1.02)
    hi = math.log(max_factor)
    if hi <= lo:
        hi = lo + 0.5
    out: list[float] = []
    min_log_gap = math.log(1.0 + min_separation)
    log, exp = math.log, math.exp
    if isinstance(rng, random.Random):  # the same draws as below, without the method-call overhead
        rnd, span = rng.random, hi - lo
        for _ in range(50 * max(k, 1)):
            if len(out) == k:
                break
            u = lo + span * rnd()  # random.Random.uniform(lo, hi), term for term
            value = truth * exp(u * (1.0 if rnd() < 0.5 else -1.0))
            for other in out:
                if abs(log(value / other)) < min_log_gap:
                    break
            else:
                out.append(value)
        return out
    # numpy: Generator.uniform(lo, hi) is lo + (hi - lo) * next_double, the very draw random() makes; calling
    # random() skips uniform()'s argument conversion (~1.1 us -> ~0.3 us) and gives the same value, bit for bit.
    uniform = (
        (lambda a, b, _rnd=rng.random: a + (b - a) * _rnd())
        if isinstance(rng, np.random.Generator)
        else rng.uniform
    )
    for _ in range(50 * max(k, 1)):
        if len(out) == k:
            break
        r = exp(uniform(lo, hi) * (1.0 if rng.random() < 0.5 else -1.0))
        value = truth * r
        for other in out:
            if abs(log(value / other)) < min_log_gap:
                break
        else:
            out.append(value)
    return out


def length_distractors(
    rng: RandomSource, meters: float, unit: str, k: int, min_rel: float = 0.25
) -> list[float]:
    """`numeric_distractors` checked on the values as displayed in `unit`: after rounding (e.g. whole cm) each
    wrong value still lies outside truth x (1 +- min_rel) and shows a different number from the others.
    Usually one draw suffices; tiny values in coarse units may come back with fewer than `k`."""
    per_unit, decimals = METERS_PER_UNIT[unit], UNIT_DECIMALS[unit]
    shown_truth = round(meters / per_unit, decimals)  # length_value, inlined
    out: list[float] = []
    seen: set[float] = set()
    for _ in range(3):
        for value in numeric_distractors(rng, meters, k - len(out), min_rel):
            shown = round(value / per_unit, decimals)
            if shown <= 0 or shown in seen or abs(shown - shown_truth) < min_rel * shown_truth:
                continue
            seen.add(shown)
            out.append(value)
        if len(out) >= k:
            break
    return out


def distance3(p: Sequence[float], q: Sequence[float]) -> float:
    return math.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 + (p[2] - q[2]) ** 2)


def xyz_distractors(
    rng: RandomSource, truth: Sequence[float], k: int, min_rel: float, taken: Sequence[Sequence[float]] = ()
) -> list[tuple[float, float, float]]:
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
            d = (
                [rng.gauss(0.0, 1.0) for _ in range(3)]
                if isinstance(rng, random.Random)
                else list(rng.normal(size=3))
            )
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
        return self.text.format_map(kwargs)  # == format(**kwargs) without copying the fields a second time


def templates(prefix: str, *texts: str) -> tuple[Template, ...]:
    """Number a task's phrasings: templates('l1.size.ff', 'How wide is {a}?', ...) -> ids l1.size.ff.0, .1..."""
    return tuple(Template(f"{prefix}.{i}", t) for i, t in enumerate(texts))


def pick(rng: RandomSource, options: Sequence[Template]) -> Template:
    return options[int(rng.random() * len(options))]


def capitalize(text: str) -> str:
    """Upper-case the first letter only (references keep their own casing)."""
    first = text[:1]
    upper = first.upper()
    return text if upper == first else upper + text[1:]  # no copy when it already starts upper-case


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


_LABELLED = re.compile(r"^\s*(\(?[A-Za-z]\)|[A-Za-z][.:]|\(?\d+[).:]|\(?[IVX]+[).:])\s")


def with_options_listed(question: str, options: Sequence[str], fmt: QAFormat | str) -> str:
    """The question as the model sees it in this project's (`hispatial`) prompt style, the one rule for training,
    evaluation, inference (through `training.prompts.render_question`) and the LLaVA/HF exports: a multiple-choice
    question keeps its text when it already lists every option; otherwise the options are appended one per line,
    labelled A., B., ... unless they carry a label of their own."""
    if QAFormat(fmt) != QAFormat.MULTIPLE_CHOICE or not options or all(opt in question for opt in options):
        return question
    lines = [opt if _LABELLED.match(opt) else f"{chr(ord('A') + i)}. {opt}" for i, opt in enumerate(options)]
    return question + "\n" + "\n".join(lines)


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


def multiple_choice(
    rng: RandomSource,
    stem: str,
    correct: str,
    distractors: Sequence[str],
    *,
    min_options: int = 3,
    max_options: int = 5,
    style: str | None = None,
) -> MultipleChoice | None:
    """Shuffle the correct option among distinct distractors; the correct index is uniform over the positions.

    Returns None when fewer than one distinct distractor exists (a one-option question teaches nothing).
    """
    drawn = _multiple_choice(rng, stem, correct, distractors, min_options, max_options, style)
    if drawn is None:
        return None
    question, options, correct_index, answer, style = drawn
    return MultipleChoice(
        question=question, options=options, correct_index=correct_index, answer=answer, label_style=style
    )


def _multiple_choice(
    rng: RandomSource,
    stem: str,
    correct: str,
    distractors: Sequence[str],
    min_options: int,
    max_options: int,
    style: str | None,
) -> tuple[str, list[str], int, str, str] | None:
    """`multiple_choice` as a plain tuple (question, options, correct_index, answer, style), for `emit`."""
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
    perm = rng.permutation(len(unique))
    options = [unique[perm[i]] for i in range(n - 1)]
    correct_index = int(rnd() * n)
    options.insert(correct_index, correct)
    if not style:
        style = LABEL_STYLES[int(rnd() * _N_STYLES)]
    elif style not in _LABELS:
        raise ValueError(f"unknown label style {style!r}; choose from {LABEL_STYLES}")
    prefixes = _LABEL_PREFIXES[style]
    instruction = _MC_INSTRUCTIONS[int(rnd() * _N_INSTRUCTIONS)]
    sep = "\n" if rnd() < 0.5 else " "
    answer = prefixes[correct_index] + correct
    if not isinstance(stem, str):  # a lazy stem (`emit_deferred`): the question text is assembled when built
        return (
            lambda: f"{stem()}{instruction}\n{sep.join(map(str.__add__, prefixes, options))}",
            options,
            correct_index,
            answer,
            style,
        )
    return (
        f"{stem}{instruction}\n{sep.join(map(str.__add__, prefixes, options))}",
        options,
        correct_index,
        answer,
        style,
    )


_LABEL_PREFIXES = {style: tuple(f"{label} " for label in labels) for style, labels in _LABELS.items()}
_N_STYLES, _N_INSTRUCTIONS = len(LABEL_STYLES), len(_MC_INSTRUCTIONS)


# -------------------------------------------------------------------------------------------------- true / false

TF_WRAPPERS = templates(
    "tf",
    "True or false: {s}",
    "Is the following statement true or false? {s}",
    "{s} True or false?",
    "Determine whether this statement is correct (answer True or False): {s}",
)


_N_TF_WRAPPERS = len(TF_WRAPPERS)


def balanced_truth(ctx: QAContext, key: str) -> bool:
    """Alternate True/False per `key` (e.g. task + axis) from a random start, so each kind of statement is true
    exactly half of the time within a scene (and hence over a shard), not just in expectation."""
    return ctx.flip(key)


# ------------------------------------------------------------------------------------------ specs and emission


# A question text, or (for `emit_deferred` only) a zero-argument callable that renders it when the pair is built.
Text = str | Callable[[], str]


@dataclass
class FreeForm:
    question: Text
    answer: str
    template_id: str
    value: float | None = None  # numeric answer in `unit` (as shown in the answer text)
    unit: str | None = None
    direction: tuple[float, float, float] | None = None


@dataclass
class Choice:
    """Multiple choice: `stem` is the question without options; `correct` and `distractors` are option texts."""

    stem: Text
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

    true_text: Text
    false_text: Text
    template_id: str
    yes_no: bool = False
    balance_key: str = ""


def numeric_judgement(
    rng: RandomSource,
    yes_no_prob: float,
    meters: float,
    unit: str,
    answer: str,
    wrong: Sequence[str],
    wrong_m: Sequence[float],
    yes_no_templates: Sequence[Template],
    true_false_templates: Sequence[Template],
    words: dict[str, str],
    balance_key: str,
) -> Judgement | None:
    """The true/false variant of a numeric question, shared by every length-valued task.

    Yes/no form: "is it more than X?" with X well below the truth (yes) or well above it (no); statement form:
    the true value against the first distractor. No distractor, no judgement.
    """
    if not wrong_m:
        return None
    if rng.random() < yes_no_prob:
        lower = [w for w in wrong_m if w < meters] or [meters / 1.6]
        upper = [w for w in wrong_m if w > meters] or [meters * 1.6]
        t = pick(rng, yes_no_templates)
        return Judgement(
            capitalize(t.render(x=format_length(lower[0], unit), **words)),
            capitalize(t.render(x=format_length(upper[0], unit), **words)),
            t.id,
            yes_no=True,
            balance_key=f"{balance_key}|yn",
        )
    t = pick(rng, true_false_templates)
    return Judgement(
        capitalize(t.render(x=answer, **words)),
        capitalize(t.render(x=wrong[0], **words)),
        t.id,
        balance_key=balance_key,
    )


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
    """`construct_pair` without the field-set check, for `_Emitter.pair`, whose literal field list the level tests
    pin (every generated pair is validated there)."""
    pair = _new(QAPair)
    _setattr(pair, "__dict__", fields)
    _setattr(pair, "__pydantic_fields_set__", _QA_FIELDS)
    _setattr(pair, "__pydantic_extra__", None)
    _setattr(pair, "__pydantic_private__", None)
    return pair


_new, _setattr = object.__new__, object.__setattr__


_FF, _MC, _TF = QAFormat.FREE_FORM, QAFormat.MULTIPLE_CHOICE, QAFormat.TRUE_FALSE
_QA_ID_HASH = hashlib.blake2b(
    digest_size=8
)  # copied per pair: cheaper than a new hasher with keyword arguments


class _Emitter:
    """What every pair of one question shares, computed once per question rather than once per pair (the qa-id
    key's fixed parts, the level); `pair` builds one `QAPair` exactly as `qa_id` + `_construct` would."""

    __slots__ = ("ctx", "base", "ids", "scene_id", "key_head", "key_ids", "key_tail")

    def __init__(self, ctx: QAContext, base: QABase, ids: list[int]) -> None:
        self.ctx, self.base, self.ids = ctx, base, ids
        self.scene_id = ctx.scene.scene_id
        # qa_id's key: f"{scene_id}|{task}|{template_id}|{ids}|{fmt}|{extra}" with extra = f"{subtask}|{extra}"
        self.key_head = f"{self.scene_id}|{base.task}|"
        self.key_ids = f"|{','.join(map(str, ids))}|"
        self.key_tail = f"|{base.subtask}|{base.extra}"

    def pair(
        self,
        fmt: QAFormat,
        question: str,
        answer: str,
        template_id: str,
        options: list[str] | None = None,
        correct_index: int | None = None,
        value: float | None = None,
        unit: str | None = None,
        direction: tuple[float, float, float] | None = None,
    ) -> QAPair:
        base = self.base
        if not isinstance(question, str):  # a lazy text from `emit_deferred`
            question = question()
        hasher = _QA_ID_HASH.copy()  # == qa_id(): blake2b, 8-byte digest, of the same key
        hasher.update(f"{self.key_head}{template_id}{self.key_ids}{fmt}{self.key_tail}".encode())
        return _construct(
            {
                "qa_id": hasher.hexdigest(),
                "scene_id": self.scene_id,
                "shard": self.ctx.shard,
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
                "object_ids": list(self.ids),
                "references": list(base.references),
                "draw_boxes": (
                    self.ctx.boxes_named_in(question, base.draw_boxes)
                    if base.draw_boxes or "highlighted by" in question or "(marked " in question
                    else []
                ),
                "template_id": template_id,
                "reasoning": base.reasoning,
                "generator": base.generator,
            }
        )


def emit(
    ctx: QAContext,
    base: QABase,
    free: FreeForm | None = None,
    choice: Choice | None = None,
    judgement: Judgement | None = None,
) -> list[QAPair]:
    """One question in every enabled format (skipping formats whose spec is None or that cannot be built)."""
    pair, specs = _draw(ctx, base, free, choice, judgement)
    return [pair(*spec) for spec in specs]


def emit_deferred(
    ctx: QAContext,
    base: QABase,
    free: FreeForm | None = None,
    choice: Choice | None = None,
    judgement: Judgement | None = None,
) -> list[Callable[[], QAPair]]:
    """`emit`, split in two: every random draw (option order, labels, True/False coins, wrappers) happens now, in
    `emit`'s order; the returned callables build the pairs (hashing, draw boxes, the record) when called.

    Why: generators that drop whole questions once their cap would be exceeded (L3) must still consume the draws
    of a dropped question, so that what they keep is unchanged, but need not pay for building pairs they drop.
    For the same reason the question texts (`FreeForm.question`, `Choice.stem`, `Judgement.true_text` and
    `false_text`) may be given here as zero-argument callables returning the text: they are called only when a
    pair is built. Everything that decides a random draw (options, distractors, flags) must be given as is.
    """
    pair, specs = _draw(ctx, base, free, choice, judgement)
    return [partial(pair, *spec) for spec in specs]


def _wrap_lazy(wrapper: str, text: Callable[[], str]) -> str:
    return wrapper.format(s=text())


def _draw(
    ctx: QAContext,
    base: QABase,
    free: FreeForm | None,
    choice: Choice | None,
    judgement: Judgement | None,
) -> tuple[Callable[..., QAPair], list[tuple]]:
    """The random draws of `emit`, and the `_Emitter.pair` arguments of each pair they decide."""
    cfg = ctx.config
    formats = cfg.formats
    specs: list[tuple] = []
    if free is not None and _FF in formats:
        specs.append(
            (
                _FF,
                free.question,
                free.answer,
                free.template_id,
                None,
                None,
                free.value,
                free.unit,
                free.direction,
            )
        )
    if choice is not None and _MC in formats:
        lo, hi = cfg.mc_min_options, cfg.mc_max_options
        if choice.all_options:
            lo = hi = min(len(choice.distractors) + 1, 6)
        mc = _multiple_choice(ctx.fast, choice.stem, choice.correct, choice.distractors, lo, hi, None)
        if mc is not None:
            specs.append((_MC, mc[0], mc[3], choice.template_id, mc[1], mc[2], choice.value, choice.unit))
    if judgement is not None and _TF in formats:
        truth = ctx.flip(judgement.balance_key or f"{base.task}|{base.subtask}")
        text = judgement.true_text if truth else judgement.false_text
        if judgement.yes_no:
            specs.append((_TF, text, "Yes" if truth else "No", judgement.template_id))
        else:
            wrapper = TF_WRAPPERS[int(ctx.fast.random() * _N_TF_WRAPPERS)]  # pick(ctx.fast, TF_WRAPPERS)
            wrapped = (
                wrapper.text.format(s=text)
                if isinstance(text, str)
                else partial(_wrap_lazy, wrapper.text, text)
            )
            specs.append(
                (_TF, wrapped, "True" if truth else "False", f"{judgement.template_id}/{wrapper.id}")
            )
    return _Emitter(ctx, base, [o.instance_id for o in base.objects]).pair, specs


class Budget:
    """Per-scene cap on QA pairs per task (`QAConfig.caps`), checked before each question so that all formats of
    one question stay together (a task may end up to two pairs over its cap)."""

    def __init__(self, ctx: QAContext) -> None:
        self.ctx = ctx
        self.used: dict[Task, int] = dict.fromkeys(Task, 0)
        self._caps: dict[Task, int] = {task: ctx.config.cap(task) for task in Task}

    def open(self, task: Task) -> bool:
        return self.used[task] < self._caps[task]

    def take(self, task: Task, pairs: list[QAPair], out: list[QAPair]) -> None:
        self.used[task] += len(pairs)
        out.extend(pairs)
