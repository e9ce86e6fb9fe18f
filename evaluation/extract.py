"""Answer extraction that survives real model output.

Models answer "B", "(b)", "The answer is B.", "**B. the chair**", "the chair", "<think>...</think>B", "Yes, it
is.", "about 1 meter 20 cm", "3.5-4 m", "five feet", "0.61m -0.20m 1.17m". Each function here turns such text
into the value a scorer compares, or None when the text does not commit to one (the scorer then counts the item
wrong with the reason). Rules are ordered from the most explicit signal to the weakest, and each weak rule
refuses to guess when the text is ambiguous.

Traps seen in public toolkits that these rules avoid on purpose (each has a regression test): a start-anchored
letter regex reads "The answer is B" as T; a substring test for "no" matches "not", "know", "cannot"; a
sentence starting with the article "A" is read as option A.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from evaluation.units import UNIT_ALIASES, canonical_unit, to_meters

# ------------------------------------------------------------------------------------------- helpers

_THINK_END = re.compile(r"</think>", re.I)
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.I | re.S)
_MARKDOWN = re.compile(r"\*\*|__|`")


def final_answer_region(text: str) -> str:
    """The part of a response that holds the answer: inside the last <answer> tag, else after </think>."""
    text = text or ""
    tags = _ANSWER_TAG.findall(text)
    if tags and tags[-1].strip():
        text = tags[-1]
    else:
        parts = _THINK_END.split(text)
        if len(parts) > 1:
            text = parts[-1]
    return _MARKDOWN.sub("", text).strip()


def normalize_text(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


# ------------------------------------------------------------------------------------ multiple choice


def label_core(label: str) -> str:
    """'(A)' -> 'A', 'b.' -> 'b', 'II' -> 'II': the token a model writes for an option label."""
    return re.sub(r"^[\s(\[{]+|[\s)\]}.:]+$", "", label)


@dataclass(frozen=True)
class Choice:
    index: int | None
    rule: str  # which rule decided, for the per-item record


def extract_choice(text: str, labels: Sequence[str], options: Sequence[str] = ()) -> Choice:
    """Index of the option a response picks, or Choice(None, reason).

    `labels` are the option labels as shown in the prompt (any style: 'A', '(a)', '1', 'II'); `options` the
    option texts, so a model that answers with the text instead of the letter is still read correctly.
    """
    cores = [label_core(lab) for lab in labels]
    upper = [c.upper() for c in cores]
    region = final_answer_region(text)
    if not region:
        return Choice(None, "empty response")

    def index_of(token: str) -> int | None:
        token = token.strip().upper()
        return upper.index(token) if token in upper else None

    # Longest labels first so 'II' is tried before 'I'.
    alternation = "|".join(re.escape(c) for c in sorted(set(cores), key=len, reverse=True))

    # 1. The whole response is a label: "B", "(b)", "B.", "[C]".
    bare = region.strip().strip("()[]{}.:;,!*'\" \n")
    idx = index_of(bare)
    if idx is not None:
        return Choice(idx, "bare label")

    # 2. An explicit marker: "answer is (C)", "Answer: b", "option B", "\boxed{C}". A lowercase letter must be
    #    closed by punctuation or the end, so "the answer is a chair" is not option A.
    marker = re.compile(
        r"(?:answer|option|choice)s?(?:\s+(?:is|would\s+be|should\s+be))?\s*[:：]?\s*(?:option\s+)?"
        rf"(?P<open>[\(\[])?(?P<label>{alternation})(?P<close>[\)\]])?(?P<after>[.,:;!]|\s+\S|\s*$)?",
        re.I,
    )
    hits = []
    for m in marker.finditer(region):
        lab = m.group("label")
        after = m.group("after") or ""
        lowercase_word = lab.isalpha() and lab.islower() and not m.group("open")
        if lowercase_word and after and after.strip() and after.strip()[0].isalnum():
            continue  # "answer is a chair"
        if len(lab) == 1 and lab.isalpha() and re.match(r"\w", region[m.end("label") :][:1] or " "):
            continue  # "answer is Bed" - the letter is the start of a word
        hits.append(lab)
    hits += re.findall(rf"\\boxed\{{\s*[\(\[]?({alternation})[\)\]]?\s*\}}", region, re.I)
    if hits:
        idx = index_of(hits[-1])
        if idx is not None:
            return Choice(idx, "answer marker")

    # 3. The response starts with a label and a delimiter: "B. the chair", "(A) left", "C: ...", "D - ...".
    m = re.match(rf"^\s*[\(\[]?({alternation})(?:[\)\]]|[.:](?:\s|$)|\s+[-\u2013]\s)", region, re.I)
    if m:
        return Choice(index_of(m.group(1)), "leading label")

    # 4. The response names exactly one option's text (an option inside a longer matched option is not counted).
    if options:
        norm_region = f" {normalize_text(region)} "
        matched = [
            i
            for i, opt in enumerate(options)
            if normalize_text(str(opt)) and f" {normalize_text(str(opt))} " in norm_region
        ]
        maximal = [
            i
            for i in matched
            if not any(
                j != i and normalize_text(str(options[i])) in normalize_text(str(options[j])) for j in matched
            )
        ]
        if len(maximal) == 1:
            return Choice(maximal[0], "option text")
        if len(maximal) > 1:
            return Choice(None, "several option texts named")

    # 5. Exactly one distinct parenthesised label anywhere: "... so I pick (B) because ...".
    found = {index_of(x) for x in re.findall(rf"[\(\[]({alternation})[\)\]]", region, re.I)} - {None}
    if len(found) == 1:
        return Choice(found.pop(), "parenthesised label")

    # 6. Exactly one distinct standalone capital label letter; the article "A" and pronoun "I" (followed by a
    #    lowercase word) do not count.
    letters = set()
    for m in re.finditer(r"(?<![\w'’])([A-Z]{1,4})(?![\w'’])", region):
        token = m.group(1)
        if token not in cores:
            continue
        if token in ("A", "I") and re.match(r"\s+[a-z’']", region[m.end() :]):
            continue
        letters.add(token)
    if len(letters) == 1:
        return Choice(index_of(letters.pop()), "single capital label")
    if len(letters) > 1:
        return Choice(None, "several labels named")
    return Choice(None, "no option label or option text found")


# ------------------------------------------------------------------------------------------- yes / no

_YES = {"yes": True, "true": True, "correct": True, "no": False, "false": False, "incorrect": False}


def extract_yes_no(text: str) -> bool | None:
    """True for yes/true, False for no/false, None when the response commits to neither (or to both).

    Words are matched whole, so "not", "know", "cannot", "nothing" never read as "no".
    """
    region = final_answer_region(text).lower()
    if not region:
        return None
    m = re.match(r"^[\W_]*(yes|no|true|false|correct|incorrect)\b", region)
    if m:
        return _YES[m.group(1)]
    marks = re.findall(r"answer(?:\s+is)?\s*[:：]?\s*[\W_]*(yes|no|true|false)\b", region)
    if marks:
        return _YES[marks[-1]]
    polarities = {_YES[w] for w in re.findall(r"\b(yes|no|true|false)\b", region)}
    if len(polarities) == 1:
        return polarities.pop()
    return None


# ------------------------------------------------------------------------------------------- numbers

_SMALL = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_WORD_NUMBER = re.compile(
    r"\b(?:(?P<tens>" + "|".join(_TENS) + r")(?:[\s-]+(?P<unit>" + "|".join(list(_SMALL)[1:10]) + r"))?"
    r"|(?P<small>" + "|".join(_SMALL) + r"))\b",
    re.I,
)
_UNIT_WORDS = "meters?|metres?|feet|foot|inch(?:es)?|yards?|centimet(?:er|re)s?|millimet(?:er|re)s?"


def words_to_digits(text: str) -> str:
    """'two and a half meters' stays partly words, but 'five feet', 'twenty-one', 'half a meter' and
    'a foot' become digits, so the numeric rules below see them."""
    text = re.sub(r"\b(?:one\s+and\s+a\s+half)\b", "1.5", text, flags=re.I)
    text = re.sub(r"\bhalf\s+(?:a|an)\s+(?=(?:" + _UNIT_WORDS + r")\b)", "0.5 ", text, flags=re.I)
    text = re.sub(r"\b(?:a|an)\s+(?=(?:" + _UNIT_WORDS + r")\b)", "1 ", text, flags=re.I)

    def repl(m: re.Match[str]) -> str:
        if m.group("tens"):
            value = _TENS[m.group("tens").lower()] + (
                _SMALL[m.group("unit").lower()] if m.group("unit") else 0
            )
        else:
            value = _SMALL[m.group("small").lower()]
        return str(value)

    return _WORD_NUMBER.sub(repl, text)


_NUM = r"[-+\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+\u2212]?\.\d+"
_WORD_UNITS = sorted((a for a in UNIT_ALIASES if a[0].isalpha()), key=len, reverse=True)
_MARK_UNITS = sorted((a for a in UNIT_ALIASES if not a[0].isalpha()), key=len, reverse=True)
# Word units may follow after a space ("1.2 m"); quote marks only directly ("5'6\"", "12\"").
_UNIT = (
    r"(?:\s*(?P<{name}>(?:" + "|".join(re.escape(a) for a in _WORD_UNITS) + r"))\.?(?![a-zA-Z])"
    r"|(?P<{name}m>" + "|".join(re.escape(a) for a in _MARK_UNITS) + r"))"
)
_RANGE_SEP = r"(?:\s*[-\u2013\u2014~]\s+|[-\u2013\u2014~]|\s+to\s+)"
_QUANTITY = re.compile(
    rf"(?<![\w.])(?P<between>between\s+)?(?P<a>{_NUM})(?:{_UNIT.format(name='ua')})?"
    rf"(?:(?:{_RANGE_SEP}|(?(between)\s+and\s+|(?!)))(?P<b>{_NUM}))?(?:{_UNIT.format(name='u')})?",
    re.I,
)
# Region tags such as "Region [0]" or "<mask>" hold numbers that are not answers.
_NOT_ANSWER_NUMBERS = re.compile(
    r"(?:region|object)\s*\[\s*\d+\s*\]|\[\s*\d+\s*\]|<[^>]*>|\b\d+\s*(?:st|nd|rd|th)\b", re.I
)
_ANSWER_MARKER = re.compile(r"(?:answer|therefore|thus|so|approximately|about|around|roughly)\b", re.I)


def _num(token: str) -> float:
    return float(token.replace(",", "").replace("\u2212", "-"))


@dataclass(frozen=True)
class Quantity:
    value: float  # as written, in `unit` (the mean for a range)
    unit: str | None  # canonical unit, None when the text gave none
    start: int
    end: int

    def meters(self, default_unit: str | None = None) -> float | None:
        unit = self.unit or default_unit
        return None if unit is None else to_meters(self.value, unit)


def find_quantities(text: str) -> list[Quantity]:
    """Every number in the text with its unit, ranges averaged ("3.5-4 m" -> 3.75 m) and compound lengths
    summed ("1 meter 20 cm" -> 1.2 m, "5'6\"" -> 5.5 ft)."""
    text = _NOT_ANSWER_NUMBERS.sub(lambda m: " " * len(m.group(0)), words_to_digits(text or ""))
    found: list[Quantity] = []
    for m in _QUANTITY.finditer(text):
        a = _num(m.group("a"))
        unit_a = m.group("ua") or m.group("uam")
        unit = m.group("u") or m.group("um") or unit_a
        value = a if m.group("b") is None else (a + _num(m.group("b"))) / 2.0
        if m.group("b") is None and unit_a and (m.group("u") or m.group("um")):
            unit = unit_a  # impossible shape; keep the first unit
        found.append(Quantity(value, canonical_unit(unit), m.start(), m.end()))
    return _merge_compounds(found, text)


_COMPOUND = {("m", "cm"), ("m", "mm"), ("ft", "in"), ("yd", "ft"), ("cm", "mm")}


def _merge_compounds(found: list[Quantity], text: str) -> list[Quantity]:
    merged: list[Quantity] = []
    for q in found:
        if merged:
            prev = merged[-1]
            gap = text[prev.end : q.start]
            if (
                prev.unit
                and q.unit
                and (prev.unit, q.unit) in _COMPOUND
                and re.fullmatch(r"\s*(?:and|,)?\s*", gap)
                and q.value >= 0
            ):
                total_m = to_meters(prev.value, prev.unit) + to_meters(q.value, q.unit)
                merged[-1] = Quantity(total_m, "m", prev.start, q.end)
                continue
        merged.append(q)
    return merged


def extract_quantity(text: str, default_unit: str | None = None) -> float | None:
    """A length in meters from free text, or None.

    The answer is the last quantity with a unit after the last answer marker ("the answer is", "so", "about"),
    else the last quantity with a unit anywhere; a bare number counts only when no quantity has a unit, and then
    only with `default_unit` (a benchmark's official assumption; None means refuse to guess).
    """
    region = final_answer_region(text)
    quantities = find_quantities(region)
    if not quantities:
        return None
    markers = list(_ANSWER_MARKER.finditer(words_to_digits(region)))
    with_unit = [q for q in quantities if q.unit]
    if with_unit:
        if markers:
            after = [q for q in with_unit if q.start >= markers[-1].start()]
            if after:
                return after[0].meters()
        return with_unit[-1].meters()
    if default_unit is None:
        return None
    return quantities[-1].meters(default_unit)


def extract_number(text: str) -> float | None:
    """A unitless number (a count, a ratio): the first after the last answer marker, else the last one."""
    region = final_answer_region(text)
    quantities = find_quantities(region)
    if not quantities:
        return None
    markers = list(_ANSWER_MARKER.finditer(words_to_digits(region)))
    if markers:
        after = [q for q in quantities if q.start >= markers[-1].start()]
        if after:
            return after[0].value
    return quantities[-1].value


_VECTOR_NUM = re.compile(rf"(?P<n>{_NUM})(?:{_UNIT.format(name='u')})?", re.I)


def extract_vector(text: str, default_unit: str = "m") -> tuple[float, float, float] | None:
    """The last three consecutive numbers (each with an optional unit) as an (x, y, z) triple in meters.

    Accepts "0.61m -0.20m 1.17m", "(0.61, -0.2, 1.17)", "x=0.61 m, y=-0.20 m, z=1.17 m". Numbers count as
    consecutive when only spaces, commas, brackets or axis names separate them.
    """
    region = _NOT_ANSWER_NUMBERS.sub(lambda m: " " * len(m.group(0)), final_answer_region(text))
    tokens = list(_VECTOR_NUM.finditer(region))
    best: tuple[float, float, float] | None = None
    for i in range(len(tokens) - 2):
        window = tokens[i : i + 3]
        gaps = [region[window[k].end() : window[k + 1].start()] for k in range(2)]
        if not all(re.fullmatch(r"[\s,;()\[\]xyzXYZ=:]*", g) for g in gaps):
            continue
        try:
            best = tuple(  # type: ignore[assignment]
                to_meters(_num(t.group("n")), t.group("u") or t.group("um") or default_unit) for t in window
            )
        except ValueError:
            continue
    return best


def extract_qspatial(text: str) -> float | None:
    """Q-Spatial's official reading, in meters: the last `\\scalar{...}` (all numbers in it averaged, so ranges
    become their mean) with the last `\\distance_unit{...}`; an unknown or missing unit means centimeters
    (official: factor 1 in cm). Responses without the markup fall back to `extract_quantity` with that default."""
    region = final_answer_region(text)
    scalars = re.findall(r"\\scalar\{([^}]*)\}", region)
    if not scalars:
        return extract_quantity(region, default_unit="cm")
    # Unsigned on purpose: in "3-4" the dash is a range, not a minus sign.
    numbers = [_num(n) for n in re.findall(r"\d+(?:,\d{3})*(?:\.\d+)?|\.\d+", words_to_digits(scalars[-1]))]
    if not numbers:
        return None
    value = sum(numbers) / len(numbers)
    units = re.findall(r"\\distance_unit\{([^}]*)\}", region)
    unit = canonical_unit(units[-1]) if units else None
    return to_meters(value, unit or "cm")


def extract_clock(text: str) -> int | None:
    """Clock-hour direction ("at 2 o'clock", "the 11 o’clock direction") as 1..12, or None."""
    hours = re.findall(
        r"\b(\d{1,2})\s*(?:o['’]?\s*clock|:00)", words_to_digits(final_answer_region(text)), re.I
    )
    hours = [int(h) for h in hours if 1 <= int(h) <= 12]
    return hours[-1] if hours else None
