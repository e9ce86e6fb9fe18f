"""Judging free-form answers: an LLM judge when an endpoint is configured, a rule-based fallback otherwise.

The authors judge SpatialRGPT's qualitative items and our L3 problem-solving items with GPT (paper sec. 8,
following SpatialRGPT). `LLMJudge` sends the question, the ground truth and the prediction through the shared
`assets.llm.LLMClient` (retries, budget, response cache) and stores, per item, the prompt, the model and the raw
validated verdict. A failing or malformed judge reply is a verdict of None: the item counts as wrong with the
reason recorded; it is never replaced by a guess. `RuleJudge` is the deterministic fallback used when no
endpoint is set; every report says which one scored it (`Judge.mode`).
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, Field

from assets.llm import LLMClient, LLMError
from evaluation.extract import (
    extract_choice,
    extract_number,
    extract_quantity,
    extract_yes_no,
    normalize_text,
)
from evaluation.items import EvalItem
from evaluation.scoring import NumericRule, Verdict
from evaluation.units import canonical_unit, to_meters

JUDGE_SYSTEM = (
    "You are a strict grader of answers to spatial questions about an image. You see the question, the "
    "ground-truth answer and a model's answer. Decide whether the model's answer means the same as the ground "
    "truth: for judgement questions (which object, yes/no, left/right, ...) the conclusion must match; for a "
    "numeric question the model's number must fall within {tolerance} relative error of the ground-truth value "
    "after converting both to the same unit. Ignore wording, politeness and extra explanation."
)


class JudgeReply(BaseModel):
    """The judge's verdict: `correct` is 1 (matches) or 0 (does not), as in SpatialRGPT's judge."""

    correct: int = Field(ge=0, le=1)
    extracted_answer: str = Field(default="", description="The model's answer as the judge read it.")


def judge_messages(item: EvalItem, prediction: str, tolerance: float) -> list[dict[str, str]]:
    question = item.question or item.prompt
    user = (
        f"Question: {question}\n"
        f"Ground-truth answer: {item.answer}\n"
        f"Model answer: {prediction}\n"
        'Reply as JSON: {"correct": 1 or 0, "extracted_answer": "<the model\'s answer in a few words>"}'
    )
    return [
        {"role": "system", "content": JUDGE_SYSTEM.format(tolerance=f"{tolerance:.0%}")},
        {"role": "user", "content": user},
    ]


class LLMJudge:
    """Judge through an OpenAI-compatible endpoint (`LLMClient.from_env("HISPATIAL_JUDGE")` in production)."""

    mode = "llm"

    def __init__(self, client: LLMClient, tolerance: float = 0.25) -> None:
        self.client = client
        self.tolerance = tolerance

    @property
    def model(self) -> str:
        return self.client.config.model

    def judge(self, item: EvalItem, prediction: str) -> Verdict:
        messages = judge_messages(item, prediction, self.tolerance)
        prompt = json.dumps(messages)
        try:
            reply = self.client.complete_json(messages, JudgeReply)
        except LLMError as err:  # includes BudgetExceeded: wrong with a reason, never a guess
            return Verdict(None, f"judge failed: {err}", self.model, prompt, "")
        return Verdict(
            bool(reply.correct), "", self.model, prompt, reply.model_dump_json(), reply.extracted_answer
        )


# Relation words and their opposites: a qualitative answer's conclusion is which side of a pair it names.
_OPPOSITES: list[tuple[str, str]] = [
    (r"\bleft\b", r"\bright\b"),
    (r"\babove\b|\bhigher\b|\bover\b", r"\bbelow\b|\blower\b|\bunder(?:neath)?\b|\bbeneath\b"),
    (r"\bbigger\b|\blarger\b|\bbig\b|\blarge\b", r"\bsmaller\b|\bsmall\b"),
    (r"\btaller\b|\btall\b", r"\bshorter\b|\bshort\b"),
    (r"\bwider\b|\bwide\b", r"\bthinner\b|\bthin\b|\bnarrower\b|\bnarrow\b"),
    (r"\bbehind\b|\bfarther\b|\bfurther\b", r"\bin front\b|\bcloser\b|\bnearer\b"),
]
_NEGATION = re.compile(r"\b(?:not|isn't|is not|aren't|no)\b", re.I)


class RuleJudge:
    """Deterministic fallback when no judge endpoint is set.

    In order: options (multiple choice), yes/no/true/false (a judgement answer such as "No. The gap is 0.13 m"
    is judged on its conclusion), a numeric ground truth (`item.value`, unit in `item.meta["unit"]`) within
    `tolerance` relative error, the side of an opposite-word pair the ground truth names (left vs
    right, above vs below, ...; a negated prediction flips its side), else the ground truth's normalised text
    contained in the prediction. Anything it cannot read is wrong with the reason recorded.
    """

    mode = "rule"
    model = "rule-based"

    def __init__(self, tolerance: float = 0.25) -> None:
        self.tolerance = tolerance

    def judge(self, item: EvalItem, prediction: str) -> Verdict:
        if item.options and item.correct_index is not None:
            labels = item.labels or [chr(ord("A") + i) for i in range(len(item.options))]
            choice = extract_choice(prediction, labels, item.options)
            if choice.index is None:
                return Verdict(None, f"unparseable: {choice.rule}", self.model)
            return Verdict(
                choice.index == item.correct_index, "", self.model, parsed=item.options[choice.index]
            )
        truth_yes = (
            extract_yes_no(item.answer)
            if re.match(r"^\W*(yes|no|true|false)\b", item.answer.lower())
            else None
        )
        if truth_yes is not None:
            said = extract_yes_no(prediction)
            if said is None:
                return Verdict(None, "unparseable: no yes/no", self.model)
            return Verdict(said == truth_yes, "", self.model, parsed="yes" if said else "no")
        if item.value is not None:  # a numeric question: within `tolerance` relative error
            unit = str(item.meta.get("unit") or "")
            if canonical_unit(unit):
                pred = extract_quantity(prediction, default_unit=unit)
                truth = to_meters(item.value, unit)
            else:
                pred, truth = extract_number(prediction), item.value
            if pred is None:
                return Verdict(None, "unparseable: no number", self.model)
            rule = NumericRule("relative_error", threshold=self.tolerance)
            return Verdict(rule.check(pred, truth), "", self.model, parsed=f"{pred:.4g}")
        truth_text = item.answer.lower()
        pred_text = prediction.lower()
        for first, second in _OPPOSITES:
            t_first, t_second = bool(re.search(first, truth_text)), bool(re.search(second, truth_text))
            if t_first == t_second:
                continue
            p_first, p_second = bool(re.search(first, pred_text)), bool(re.search(second, pred_text))
            if p_first == p_second:
                return Verdict(None, "unparseable: prediction names neither or both sides", self.model)
            side = p_first
            if _NEGATION.search(pred_text) and not _NEGATION.search(truth_text):
                side = not side
            return Verdict(side == t_first, "", self.model, parsed="first" if side else "second")
        norm_truth = normalize_text(item.answer)
        if norm_truth and f" {norm_truth} " in f" {normalize_text(prediction)} ":
            return Verdict(True, "", self.model, parsed=norm_truth)
        return Verdict(False, "rule judge: ground truth not found in prediction", self.model)


def make_judge(client: LLMClient | None, tolerance: float = 0.25) -> LLMJudge | RuleJudge:
    """The LLM judge when a client is configured, else the rule-based fallback."""
    return LLMJudge(client, tolerance) if client is not None else RuleJudge(tolerance)
