"""From the model's answer text to a value: the same extraction functions evaluation scores with.

The kind of answer expected (a length, an xyz / direction vector, an option, yes/no, a count) is given by the
caller or read from the question's wording; the text is then parsed by `evaluation.extract`, so `hispatial ask`
and the benchmarks never disagree about what an answer said.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from evaluation.extract import (
    extract_choice,
    extract_clock,
    extract_number,
    extract_quantity,
    extract_vector,
    extract_yes_no,
    label_core,
)
from evaluation.items import AnswerKind

# Our model answers lengths in meters (docs/CONVENTIONS.md "Answers"), so a bare number is read as meters.
DEFAULT_UNIT = "m"

_YES_NO_START = re.compile(
    r"^\s*(is|are|was|were|does|do|did|can|could|will|would|should|has|have|had)\b", re.I
)
_VECTOR_WORDS = re.compile(
    r"\b(3d (coordinates?|position)|coordinates?|xyz|direction vector|unit vector)\b", re.I
)
_CLOCK_WORDS = re.compile(r"o['’]?\s*clock", re.I)
_COUNT_WORDS = re.compile(r"\bhow many\b", re.I)
_LENGTH_WORDS = re.compile(
    r"\b(how (far|tall|wide|long|high|deep|big|close)|distance|height|width|length|depth of|"
    r"in (meters|metres|centimeters|cm|feet|inches)|how much (taller|shorter|wider|longer|higher|farther|closer))\b",
    re.I,
)
_TRUE_FALSE = re.compile(r"\b(true or false|yes or no)\b", re.I)
_LABELLED_LINE = re.compile(r"^\s*(\(?[A-Z]\)|[A-Z][.:])\s+(.+?)\s*$", re.M)


def infer_kind(question: str, options: Sequence[str] = ()) -> AnswerKind:
    """The answer kind a question asks for, from its wording (options given -> a choice)."""
    if options or len(_LABELLED_LINE.findall(question)) >= 2:
        return AnswerKind.CHOICE
    if _TRUE_FALSE.search(question) or _YES_NO_START.match(question):
        return AnswerKind.YES_NO
    if _VECTOR_WORDS.search(question):
        return AnswerKind.VECTOR
    if _CLOCK_WORDS.search(question):
        return AnswerKind.CLOCK
    if _COUNT_WORDS.search(question):
        return AnswerKind.NUMBER
    if _LENGTH_WORDS.search(question):
        return AnswerKind.LENGTH
    return AnswerKind.JUDGED


def options_in_question(question: str) -> tuple[list[str], list[str]]:
    """(labels, option texts) written into the question as labelled lines ("A. the chair")."""
    found = _LABELLED_LINE.findall(question)
    return [label for label, _ in found], [text for _, text in found]


@dataclass(frozen=True)
class Parsed:
    """What the answer says, typed. `value` is meters (length), [x, y, z] meters (vector), an option dict
    {index, label, option}, True/False, a number or a clock hour; None when the text commits to nothing, and then
    `reason` says why."""

    kind: str
    value: object
    unit: str | None = None
    reason: str = ""


def parse_answer(
    text: str, kind: AnswerKind | str, options: Sequence[str] = (), labels: Sequence[str] = ()
) -> Parsed:
    """Parse `text` as `kind` with evaluation.extract (the benchmarks' own readers)."""
    kind = AnswerKind(kind)
    if kind == AnswerKind.CHOICE:
        labels = list(labels) or [chr(ord("A") + i) for i in range(len(options))]
        choice = extract_choice(text, labels, options)
        if choice.index is None:
            return Parsed(kind.value, None, reason=choice.rule)
        option = options[choice.index] if choice.index < len(options) else None
        return Parsed(
            kind.value, {"index": choice.index, "label": label_core(labels[choice.index]), "option": option}
        )
    if kind == AnswerKind.YES_NO:
        verdict = extract_yes_no(text)
        return Parsed(kind.value, verdict, reason="" if verdict is not None else "no yes/no found")
    if kind == AnswerKind.VECTOR:
        vector = extract_vector(text, default_unit=DEFAULT_UNIT)
        return Parsed(
            kind.value,
            None if vector is None else [round(c, 4) for c in vector],
            "m",
            "" if vector is not None else "no three consecutive numbers found",
        )
    if kind == AnswerKind.LENGTH:
        meters = extract_quantity(text, default_unit=DEFAULT_UNIT)
        return Parsed(kind.value, meters, "m", "" if meters is not None else "no length found")
    if kind == AnswerKind.NUMBER:
        number = extract_number(text)
        return Parsed(kind.value, number, None, "" if number is not None else "no number found")
    if kind == AnswerKind.CLOCK:
        hour = extract_clock(text)
        return Parsed(kind.value, hour, "o'clock", "" if hour is not None else "no clock direction found")
    return Parsed(kind.value, None, reason="free-form answer: no value to extract")
