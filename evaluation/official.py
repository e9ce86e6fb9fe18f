"""Each benchmark's official answer reading and per-item verdict, reproduced rule for rule, quirks included.

The default score of every public benchmark is what its authors' (or the field's toolkit's) scoring code gives on
the same predictions, so numbers stand next to published tables. Our own, more forgiving reading
(`evaluation.extract` through `scoring.score_item`) is reported beside it as the `lenient` metric set. Sources,
each checked item for item against the code itself (tests/evaluation/fixtures/official/*.json, provenance there):

- CV-Bench: cambrian-mllm/cambrian eval/eval/{ade,coco,omni}/*_test.py (`extract_mcq_answer`, `compute_metrics`).
- Q-Spatial: andrewliao11/Q-Spatial-Bench-code examples/evaluate_success_rate.ipynb (`QSpatialEvaluator`).
- RoboSpatial-Home: chanhee-luke/RoboSpatial-Eval evaluation.py (`evaluate_answer`).
- EmbSpatial-Bench: open-compass/VLMEvalKit spatial_bench/matching_func.py (`can_match_option`) + cal_scores.py;
  with a judge, spatial_bench/llm_extract.py (`EmbSpatialScorer`).
- 3DSRBench, MMBench: open-compass/VLMEvalKit vlmeval/utils/matching_util.py (`can_infer`); with a judge,
  dataset/utils/multiple_choice.py's matching prompt (`VLMEvalKitMCQScorer`).
- SpatialRGPT-Bench: AnjieCheng/SpatialRGPT scripts/srgpt/eval/evaluate_spatial_with_gpt4.py (its GPT judge
  prompts and reply reading, `SpatialRGPTScorer`).

Where the official code asks an LLM, the judge is any OpenAI-compatible endpoint (`assets.llm.LLMClient`) and the
messages are the official ones, character for character.

Nothing here is copied code: each function restates the rule it reproduces and says which quirk it keeps.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.items import EvalItem, ItemResult

# ------------------------------------------------------------------------------------------------ the result


def official_result(
    item: EvalItem, prediction: str | None, parsed: str, correct: bool, reason: str = "", **detail: float
) -> ItemResult:
    return ItemResult.of(item, prediction, parsed, correct, reason, score_detail=dict(detail))


OfficialScorer = Callable[[EvalItem, str | None], ItemResult]

# ------------------------------------------------------------------------------------------------ CV-Bench


def cambrian_mcq_answer(text: str, strip: str = ".") -> str:
    """Cambrian's reading: lowercase, keep what follows the last "answer is" / "answer is:" / "answer:" (each
    keyword applied in turn), strip, drop trailing `strip` characters (ADE20K/COCO scripts: ".", Omni3D script:
    ".:,"), then every "(" on the left and ")" on the right, and keep the first character."""
    text = text.lower().strip()
    for keyword in ("answer is", "answer is:", "answer:"):
        if keyword in text:
            text = text.split(keyword)[-1]
    text = text.strip().rstrip(strip).lstrip("(").rstrip(")")
    return text[0] if len(text) > 1 else text


def cv_bench(item: EvalItem, prediction: str | None) -> ItemResult:
    """Per source script: ADE20K and COCO compare the letter; Omni3D strips ".:," and also accepts the first
    character equal to the whole option text (so a bare count "2" counts for option "2")."""
    if prediction is None:
        return official_result(item, None, "", False, "no prediction")
    omni = item.split == "Omni3D"
    parsed = cambrian_mcq_answer(prediction, ".:," if omni else ".")
    truth = str(item.answer).lower()[1:2]  # "(B)" -> "b"
    ok = parsed == truth
    if omni and not ok and item.correct_index is not None:
        ok = parsed == str(item.options[item.correct_index])
    return official_result(item, prediction, parsed, ok)


# ------------------------------------------------------------------------------------------------ Q-Spatial

_QSPATIAL_CM = {
    **dict.fromkeys(("meters", "meter", "m", "metre", "metres"), 100.0),
    **dict.fromkeys(("centimeters", "centimeter", "cm"), 1.0),
    **dict.fromkeys(("feet", "foot", "ft"), 30.48),
    **dict.fromkeys(("inch", "inches", "in"), 2.54),
    "mm": 0.1,
}


def qspatial_multiplier(unit: str) -> float:
    """Centimetres per unit after `lower()` only: any other spelling (" meters", "meters.", "millimeters",
    "yards") is unknown and counts as 1 (the notebook prints a warning and goes on)."""
    return _QSPATIAL_CM.get(str(unit).lower(), 1.0)


def qspatial(item: EvalItem, prediction: str | None) -> ItemResult:
    """The notebook evaluator: the last `scalar{...}` (backslash optional), every `\\d+\\.?\\d*` in it averaged
    (so signs, leading dots, thousands separators and exponents split into several numbers), the last
    `distance_unit{...}`, both sides in centimetres, success iff max(p/g, g/p) < 2. A response without a scalar
    or a unit makes the notebook raise: never a success."""
    if prediction is None:
        return official_result(item, None, "", False, "no prediction")
    gt_cm = float(item.meta["answer_value"]) * qspatial_multiplier(str(item.meta["answer_unit"]))
    scalars = re.findall(r"scalar{([^}]*)}", prediction)
    units = re.findall(r"distance_unit{([^}]*)}", prediction)
    if not scalars:
        return official_result(item, prediction, "", False, "unparseable: no scalar{} (official code raises)")
    if not units:
        return official_result(
            item, prediction, "", False, "unparseable: no distance_unit{} (official code raises)"
        )
    numbers = re.findall(r"\d+\.?\d*", scalars[-1])
    value = float(np.array(numbers).astype(float).mean()) if numbers else math.nan  # numpy's sum, bit for bit
    pred_cm = value * qspatial_multiplier(units[-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        p, g = np.float64(pred_cm), np.float64(gt_cm)
        ok = bool(max(p / g, g / p) < 2)
    return official_result(
        item,
        prediction,
        f"{pred_cm:.6g} cm",
        ok,
        "" if numbers else "no number in scalar{}",
        pred_cm=pred_cm,
        gt_cm=gt_cm,
    )


# ------------------------------------------------------------------------------------------------ RoboSpatial


def point_in_polygon(x: float, y: float, polygon: Sequence[Sequence[float]]) -> bool:
    """Ray casting, as RoboSpatial-Eval does it (points on some edges count as inside, on others not)."""
    inside = False
    j = len(polygon) - 1
    for i in range(len(polygon)):
        xi, yi = polygon[i]
        xj, yj = polygon[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


_UNSIGNED = r"(\d+\.?\d*)"
_TUPLE = re.compile(rf"\(\s*{_UNSIGNED}\s*,\s*{_UNSIGNED}\s*\)")
_LIST = re.compile(rf"\[\s*{_UNSIGNED}\s*,\s*{_UNSIGNED}\s*\]")


def robospatial_point(text: str) -> tuple[float, float] | None:
    """The first point RoboSpatial-Eval reads from a reply: an unsigned "(x, y)", else "[x, y]", else the first
    bracketed list read as a Python literal (its first point). Signs are not part of its number pattern."""
    for pattern in (_TUPLE, _LIST):
        m = pattern.search(text)
        if m:
            return float(m.group(1)), float(m.group(2))
    m = re.search(r"\[(.*?)\]", text, re.DOTALL)
    if m is None:
        return None
    content = re.sub(r",(\S)", r", \1", m.group(1)).strip()
    content = content[:-1] if content.endswith(",") else content
    try:
        value = ast.literal_eval("[" + content + "]")
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        m = _TUPLE.search(content)
        return (float(m.group(1)), float(m.group(2))) if m else None
    if not value:
        return None
    if len(value) == 2 and all(isinstance(v, int | float) for v in value):
        point = tuple(value)
    elif isinstance(value[0], tuple | list) and len(value[0]) == 2:
        point = tuple(value[0])
    else:
        return None
    try:
        return float(point[0]), float(point[1])
    except (TypeError, ValueError):
        return None


def robospatial(item: EvalItem, prediction: str | None) -> ItemResult:
    """Yes/no ground truth: the lowered, stripped reply must start with "yes"/"no" (so "Yesterday" is yes and
    "Not really" is no, while "The answer is yes" is wrong). Otherwise the ground truth is a polygon and the first
    point read from the reply must fall inside it. An empty reply is wrong."""
    if prediction is None:
        return official_result(item, None, "", False, "no prediction")
    reply = prediction.strip().lower()
    truth = str(item.answer).strip().lower()
    if truth in ("yes", "no"):
        return official_result(item, prediction, reply[:16], bool(reply) and reply.startswith(truth))
    try:
        polygon = ast.literal_eval(str(item.answer))
    except (SyntaxError, ValueError):
        return official_result(item, prediction, "", False, "ground truth is not a polygon")
    if not isinstance(polygon, list) or len(polygon) < 3:
        return official_result(item, prediction, "", False, "ground truth is not a polygon")
    point = robospatial_point(prediction)
    if point is None:
        return official_result(item, prediction, "", False, "unparseable: no point")
    return official_result(
        item, prediction, f"({point[0]:g}, {point[1]:g})", point_in_polygon(*point, polygon)
    )


# ------------------------------------------------------------------------------------------------ VLMEvalKit

_VERBOSE_ANSWER = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")
_REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)


def vlmevalkit_can_infer(answer: str, choices: Mapping[str, str]) -> str | None:
    """VLMEvalKit's `can_infer` (exact matching, no judge): the option letter, "Z" for a refusal, or None.

    Letter rule: punctuation ".()[],:;!*#{}" becomes space; if exactly one option letter is a whole token and it
    is among the last four tokens, that letter ("A man ..." is option A when A is the only letter token near the
    end); a lone "Z" token means Z; else "answer is X". Text rule: when the reply is at most twice as long as all
    option texts together, the one option whose lowered text is a substring of the lowered reply."""
    answer = str(answer)
    letter: str | None = None
    if "Failed to obtain answer via API" not in answer:
        if any(refusal in answer for refusal in _REFUSALS):
            return "Z"
        tokens = re.sub(r"[.()\[\],:;!*#{}]", " ", answer).split()
        present = [c for c in choices if c in tokens]
        if len(present) == 1:
            letter = next((c for c in choices if c in tokens and tokens.index(c) > len(tokens) - 5), None)
        elif not present and "Z" in tokens:
            return "Z"
        if letter is None:
            m = _VERBOSE_ANSWER.search(answer)
            if m and m.group(1).upper() in choices:
                letter = m.group(1).upper()
    if letter:
        return letter
    lowered = answer.lower()
    if len(lowered) > 2 * sum(len(str(v)) for v in choices.values()):
        return None
    hits = [k for k, v in choices.items() if str(v).lower() in lowered]
    return hits[0] if len(hits) == 1 else None


def vlmevalkit_mcq(item: EvalItem, prediction: str | None) -> ItemResult:
    """One row under exact matching: the inferred letter ("Z" when nothing is inferred) equals the answer."""
    if prediction is None:
        return official_result(item, None, "", False, "no prediction")
    letter = vlmevalkit_can_infer(prediction, _choices(item))
    if letter is None:
        return official_result(item, prediction, "Z", False, "no option inferred (exact matching gives Z)")
    return official_result(item, prediction, letter, letter == item.answer)


def _inferred(result: ItemResult) -> bool:
    """`can_infer` read something (a letter, or Z for a refusal): VLMEvalKit asks no judge for this row."""
    return result.prediction is not None and not result.reason.startswith("no option inferred")


def _choices(item: EvalItem) -> dict[str, str]:
    return {label: option for label, option in zip(item.labels, item.options, strict=True)}


_MATCH_PROMPT = (
    "You are an AI assistant who will help me to match "
    "an answer with several options of a single-choice question. "
    "You are provided with a question, several options, and an answer, "
    "and you need to find which option is most similar to the answer. "
    "If the meaning of all options are significantly different from the answer, output Z. "
    "Your should output a single uppercase character in A, B, C, D (if they are valid options), and Z. \n"
    "Example 1: \n"
    "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
    "Answer: a cute teddy bear\nYour output: A\n"
    "Example 2: \n"
    "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
    "Answer: Spider\nYour output: Z\n"
    "Example 3: \n"
    "Question: {}?\nOptions: {}\nAnswer: {}\nYour output: "
)
_MATCH_PROMPT_CN = (
    "你是一个帮助我匹配答案与单选题中多个选项的 AI 助手。"
    "你会被提供：一个问题，多个选项，一个答案。你的任务是找到与答案意义最相近的选项。"
    "如果所有选项的意义都与答案显著不同，则输出 Z。"
    "你应该输出一个单个的大写字母，例如 A, B, C, D（如果它们是有效选项），或 Z。"
    "例 1:"
    "问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 一只可爱的泰迪熊\n输出: A\n"
    "例 2: \n"
    "问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 蜘蛛\n输出: Z\n"
    "例 3: \n"
    "问题: {}?\n选项: {}\n答案: {}\n输出: "
)


def vlmevalkit_judge_messages(item: EvalItem, prediction: str) -> list[dict[str, str]]:
    """VLMEvalKit's answer-matching request (multiple_choice.build_prompt, or build_prompt_cn for a question with
    CJK characters), sent as its OpenAI wrapper sends it: one user turn."""
    options = "There are several options: \n" + "".join(f"{k}. {v}\n" for k, v in _choices(item).items())
    template = _MATCH_PROMPT_CN if re.search("[\u4e00-\u9fff]", item.question) else _MATCH_PROMPT
    return [{"role": "user", "content": template.format(item.question, options, prediction)}]


class VLMEvalKitMCQScorer:
    """MMBench / 3DSRBench as VLMEvalKit scores them. Without a judge: exact matching (`vlmevalkit_mcq`). With an
    OpenAI-compatible judge, a row `can_infer` cannot read goes to the judge with VLMEvalKit's matching prompt, up to
    three tries, the reply read by `can_infer` again. After three useless replies VLMEvalKit picks a random option;
    we count the row wrong instead and say so. For circular groups (MMBench) `prepare` runs VLMEvalKit's
    eval_circular_group order: no judge call when a readable row is already wrong, and the first wrong judged
    rotation ends the group."""

    def __init__(self, client: object | None) -> None:
        self.client = client
        self.mode = "llm" if client is not None else "exact matching"
        self._decided: dict[str, ItemResult] = {}

    def _judge(self, item: EvalItem, prediction: str) -> ItemResult:
        messages = vlmevalkit_judge_messages(item, prediction)
        raw: list[str] = []
        for attempt in range(3):
            try:  # a later try asks again rather than reading the cached first reply
                reply = self.client.complete_text(messages, use_cache=attempt == 0)  # type: ignore[attr-defined]
            except Exception as err:  # noqa: BLE001 - VLMEvalKit's wrapper turns any API failure into a retry
                raw.append(f"<failed: {err}>")
                continue
            raw.append(reply)
            if "Failed to obtain answer via API" in reply:
                continue
            letter = vlmevalkit_can_infer(reply, _choices(item))
            if letter:
                result = official_result(item, prediction, letter, letter == item.answer)
                break
        else:
            result = official_result(
                item,
                prediction,
                "",
                False,
                "judge gave no option in 3 tries (VLMEvalKit would pick one at random)",
            )
        result.judge_model = str(getattr(getattr(self.client, "config", None), "model", ""))
        result.judge_prompt = json.dumps(messages, ensure_ascii=False)
        result.judge_raw = json.dumps(raw, ensure_ascii=False)
        return result

    def prepare(self, items: Sequence[EvalItem], predictions: Sequence[str | None]) -> None:
        if self.client is None:
            return
        groups: dict[str, list[tuple[EvalItem, str | None]]] = {}
        for item, prediction in zip(items, predictions, strict=True):
            groups.setdefault(item.group or item.item_id, []).append((item, prediction))
        for rows in groups.values():
            if len(rows) < 2:
                continue
            rows.sort(key=lambda row: _index_key(row[0].item_id))
            read = [vlmevalkit_mcq(item, prediction) for item, prediction in rows]
            inferred = [_inferred(r) for r in read]
            if any(ok and not r.correct for ok, r in zip(inferred, read, strict=True)) or all(inferred):
                self._decided.update({r.item_id: r for r in read})  # settled without the judge
                continue
            failed = False
            for (item, prediction), r, ok in zip(rows, read, inferred, strict=True):
                if ok or prediction is None:
                    self._decided[item.item_id] = r
                elif failed:
                    r.reason = "not judged: an earlier rotation was already wrong (VLMEvalKit stops there)"
                    self._decided[item.item_id] = r
                else:
                    self._decided[item.item_id] = self._judge(item, prediction)
                failed = failed or not self._decided[item.item_id].correct

    def __call__(self, item: EvalItem, prediction: str | None) -> ItemResult:
        if item.item_id in self._decided:
            return self._decided[item.item_id]
        result = vlmevalkit_mcq(item, prediction)
        if self.client is not None and prediction is not None and not _inferred(result):
            return self._judge(item, prediction)
        return result


def _index_key(item_id: str) -> tuple[int, float | str]:
    try:
        return (0, float(item_id))
    except ValueError:
        return (1, item_id)


_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\ufeff]")
_TAGGED = re.compile(
    r"<\s*answer\b[^>]*>\s*([A-Ja-j])(?:\s*[\.．:：\)\]】、])?.*?<\s*/\s*answer\s*>", re.I | re.S
)
_TIGHT = r"\.,:;!?\)\]】》」』，。；、：）】》」』"
_OPTION_LINE = re.compile(r"^(?:[*_>\-\s]*)(?:option|选项)\s+[A-J]\s*[:：]", re.I)
_SINGLE_LINE = re.compile(r"^\s*[*_`>（）\[\]【】\(\)]*\s*([A-Fa-f])\s*[*_`（）\[\]【】\(\)]*\s*$")
_LABELED_LINE = re.compile(r"^\s*([A-F])\s*[\.．:：\)\]】、-]\s+", re.I)
_INLINE = re.compile(rf"(?<![A-Za-z])[*_`（\[\{{\(]*\s*([A-F])\s*[*_`）\]\}})]*(?=$|[\s{_TIGHT}])")


def _letter_before(tag: str, letters: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z])[\(\[\{{（【]?\s*([{letters}])\s*[\)\]\}}）】]?\s*</\s*{tag}\s*>", re.I)


def _pick_from_lines(lines: Sequence[str]) -> str | None:
    for line in reversed([ln.strip() for ln in lines if ln.strip()]):
        if _OPTION_LINE.search(line):
            continue
        for pattern in (_SINGLE_LINE, _LABELED_LINE):
            m = pattern.fullmatch(line) if pattern is _SINGLE_LINE else pattern.match(line)
            if m:
                return m.group(1).upper()
        tokens = {t.upper() for t in _INLINE.findall(line)}
        if len(tokens) == 1:
            return tokens.pop()
    return None


def vlmevalkit_match_option(text: str, letters: str = "ABCDEF") -> str | None:
    """VLMEvalKit's spatial-bench `can_match_option` (the rule path of EmbSpatial-Bench), in its order: a letter
    opening an <answer> block; a letter just before </answer> or </think> in the last 800 characters; the last
    six lines after </think> (a line that is one letter, a line starting "X." / "X)", or a line whose standalone
    capitals are one letter; "option X:" lines skipped; a sentence-initial article "A" counts); the same on the
    last 800 characters; the first "answer is X"-style phrase; a single distinct standalone letter overall."""
    if not isinstance(text, str):
        return None
    text = _ZERO_WIDTH.sub("", text.strip())
    m = _TAGGED.search(text)
    if m:
        return m.group(1).upper()
    tail = text[-800:]
    for tag in ("answer", "think"):
        m = _letter_before(tag, letters).search(tail)
        if m:
            return m.group(1).upper()
    ends = list(re.finditer(r"</\s*think\s*>", text, re.I)) or list(re.finditer(r"<\s*think\s*>", text, re.I))
    segment = text[ends[-1].end() :].strip() if ends else text
    pick = _pick_from_lines(segment.splitlines()[-6:]) or _pick_from_lines(tail.splitlines()[-6:])
    if pick:
        return pick
    phrase = re.compile(
        r"(?i)(?:final\s*answer|the\s*answer\s*is|answer(?:\s*is)?|correct\s*answer|答案|最终答案|结论|所以|因此|我选(?:择)?|选择|选)"
        rf"\s*[:：>＝=]?\s*[\(\[\{{（【]?\s*([{letters}])\s*[\)\]\}}）】]?(?:\b|[.)、。])"
    )
    m = phrase.search(text)
    if m:
        return m.group(1).upper()
    cleaned = "\n".join(line for line in text.splitlines() if not _OPTION_LINE.search(line))
    found = set(
        re.findall(rf"(?<![A-Za-z])[\(\[\{{（【]?\s*([{letters}])\s*[\)\]\}}）】]?(?![A-Za-z])", cleaned)
    )
    return found.pop() if len(found) == 1 else None


_EXTRACT_JUDGE_PROMPT = (
    "You are an expert grading assistant.\n"
    "Your job has TWO tasks:\n"
    "1) From the candidate's full response, EXTRACT the final answer in a concise, normalized form.\n"
    "2) Compare this extracted answer with the STANDARD ANSWER and grade it as:\n"
    "   - A: CORRECT\n"
    "   - B: INCORRECT\n"
    "   - C: INVALID\n"
    "\n"
    "Here are the detailed evaluation criteria:\n"
    "1. ALWAYS refer to the given STANDARD ANSWER. You do NOT need to re-solve the question; the "
    "standard answer has already been provided and is always correct. Your only job is to judge "
    "whether the candidate's final answer is consistent with the standard answer according to the "
    "form of the question. THE STANDARD ANSWER IS ALWAYS CORRECT AND THE QUESTION IS PERFECTLY "
    "VALID. NEVER QUESTION THEM.\n"
    "2. ONLY compare the FINAL ANSWER — COMPLETELY IGNORE any potential errors or issues in the "
    "REASONING PROCESS. Even if the reasoning is wrong, as long as the final answer matches the "
    "standard answer, grade it as CORRECT.\n"
    "3. Answers may be expressed in different ways (e.g., mathematical expressions, textual "
    "descriptions). As long as the meaning is the same as the standard answer, treat them as "
    "equivalent. If the standard answer does not specify a unit but the candidate's answer includes "
    "a correct unit for the given value, consider it CORRECT.\n"
    "4. Some answers may consist of multiple items, such as multiple-choice questions with multiple "
    "correct options, multi-select questions, or multi-blank fill-in-the-blank questions. "
    "Regardless of the question type, the final answer is considered CORRECT only if it matches the "
    "standard answer exactly at the level of all required items. For multi-select or multi-blank "
    "questions, ALL parts must be answered correctly and match the standard answer exactly to be "
    "deemed CORRECT.\n"
    "5. If the candidate's answer is wrapped in LaTeX-style markers like \\boxed{{...}}, IGNORE the "
    "\\boxed and only use the inner content as the candidate's final answer when comparing with the "
    "standard answer.\n"
    "6. If the candidate's answer is INVALID — for example, incomplete (cut off mid-response), "
    "containing a large amount of abnormal repetitive content, clearly irrelevant to the question, "
    "or explicitly refusing to answer due to ethical concerns, lack of information, or other "
    "external factors — then you MUST grade it as C: INVALID.\n"
    "7. This instruction applies to all problem types, including single-choice MCQ, multi-select "
    "MCQ, numeric problems, short-answer questions, and general VQA-style questions. In all cases, "
    "only the FINAL ANSWER and its consistency with the standard answer matter.\n"
    "8. The question or options may contain image placeholders such as '<image>', '<image id=1>', "
    "or similar tokens. You CANNOT see these images. Treat these placeholders as unknown content "
    "and DO NOT hallucinate or infer any specific visual details from them. If the standard answer "
    "or candidate's answer refers to an option associated with an image (e.g., 'choose A'), judge "
    "correctness only based on the stated answer, not by imagining the image.\n"
    "\n"
    "IMPORTANT – OUTPUT FORMAT:\n"
    "• You MUST return EXACTLY ONE line in the following format:\n"
    "  <GRADE>\\t<EXTRACTED_ANSWER>\n"
    "  where <GRADE> is one of A, B, or C.\n"
    "• <EXTRACTED_ANSWER> should be the final answer you extracted from the candidate's response, "
    "in a normalized, concise form (e.g., a number, a letter option, or a short phrase).\n"
    "• If you cannot extract any meaningful answer, or the response is INVALID, output:\n"
    "  C\\tN/A\n"
    "• Do NOT add any extra text, explanation, or additional lines.\n"
    "\n"
    "Now, judge the following question.\n"
    "<Original Question Begin>\n"
    "{question}\n"
    "{options_block}<Original Question End>\n"
    "<Standard Answer Begin>\n"
    "{gold_answer}\n"
    "<Standard Answer End>\n"
    "<Candidate's Answer Begin>\n"
    "{llm_response}\n"
    "<Candidate's Answer End>\n"
    "Your output:"
)


def embspatial_judge_messages(item: EvalItem, prediction: str) -> list[dict[str, str]]:
    """VLMEvalKit's spatial-bench LLM grading request (llm_extract.extract_ans_by_llm, mode "mcq"): the question,
    the options as "A. text" lines (whitespace collapsed), the standard answer as "A. text", the candidate's
    response; one user turn, as its OpenAI wrapper sends it."""
    choices = {label: re.sub(r"\s+", " ", str(option)).strip() for label, option in _choices(item).items()}
    options = "".join(f"{k}. {v}\n" for k, v in choices.items())
    letter = item.labels[item.correct_index] if item.correct_index is not None else item.answer
    gold = f"{letter}. {choices[letter]}" if letter in choices else str(item.answer)
    prompt = _EXTRACT_JUDGE_PROMPT.format(
        question=item.question,
        gold_answer=gold,
        llm_response=prediction,
        options_block=f"Options:\n{options}\n" if options else "",
    )
    return [{"role": "user", "content": prompt}]


def embspatial_grade(reply: str) -> tuple[str, str] | None:
    """(grade, extracted) from a judge reply by VLMEvalKit's reading of its first line, or None (asked again)."""
    text = reply.strip()
    if "Failed to obtain answer via API" in text or not text:
        return None
    m = re.match(r"^\s*([ABC])\b(.*)$", text.splitlines()[0].strip())
    if m:
        rest = re.sub(r"^(?:\\[tnr])+", "", re.sub(r"^[\s\|,:]+", "", m.group(2)))
        return m.group(1), rest.strip() or "N/A"
    m = re.match(r"^\s*([ABC])\s*$", text)
    return (m.group(1), "N/A") if m else None


class EmbSpatialScorer:
    """EmbSpatial-Bench as VLMEvalKit scores it: without a judge its rule path (`embspatial`); with an
    OpenAI-compatible judge every item is graded by the LLM (up to three tries for a readable first line; grade A is
    a hit, anything else or three unreadable replies is not)."""

    def __init__(self, client: object | None) -> None:
        self.client = client
        self.mode = "llm" if client is not None else "exact matching"

    def __call__(self, item: EvalItem, prediction: str | None) -> ItemResult:
        if self.client is None or prediction is None:
            return embspatial(item, prediction)
        messages = embspatial_judge_messages(item, str(prediction))
        raw: list[str] = []
        graded = None
        for attempt in range(3):
            try:
                reply = self.client.complete_text(messages, use_cache=attempt == 0)  # type: ignore[attr-defined]
            except Exception as err:  # noqa: BLE001 - an API failure is a retry in VLMEvalKit
                raw.append(f"<failed: {err}>")
                continue
            raw.append(reply)
            graded = embspatial_grade(reply)
            if graded is not None:
                break
        grade, extracted = graded or ("C", "N/A")
        result = official_result(
            item,
            prediction,
            extracted,
            grade == "A",
            "" if graded else "judge reply unreadable 3 times (graded C, invalid)",
        )
        result.judge_model = str(getattr(getattr(self.client, "config", None), "model", ""))
        result.judge_prompt = json.dumps(messages, ensure_ascii=False)
        result.judge_raw = json.dumps(raw, ensure_ascii=False)
        return result


def embspatial(item: EvalItem, prediction: str | None) -> ItemResult:
    """VLMEvalKit's EmbSpatialBench rule scoring: the matched letter equals the answer letter; option text is never
    matched."""
    if prediction is None:
        return official_result(item, None, "", False, "no prediction")
    letter = vlmevalkit_match_option(str(prediction))
    truth = (
        vlmevalkit_match_option(item.labels[item.correct_index]) if item.correct_index is not None else None
    )
    ok = letter is not None and truth is not None and letter.lower() == truth.lower()
    return official_result(item, prediction, letter or "", ok, "" if letter else "no option letter matched")


# ------------------------------------------------------------------------------------------------ SpatialRGPT

SPATIALRGPT_SYSTEM = "You are a helpful assistant designed to output JSON."
SPATIALRGPT_DISTANCE = {  # official category name -> the name its report uses
    "distance_data": "direct_distance",
    "horizontal_distance_data": "horizontal_distance",
    "vertical_distance_data": "vertical_distance",
    "width_data": "width",
    "height_data": "height",
}
SPATIALRGPT_QUANTITATIVE = (*SPATIALRGPT_DISTANCE, "direction")

_DIRECTION_PROMPT = """
You should help me to evaluate the response given the question and the correct answer.
You need to extract the direction of the correct answer and response.
You should output two integers in clock directions, one for the answer, and one for the response.
The output should be in JSON format.


Example 1:
Question: If you are at Region [0], where will you find Region [1]?
Answer: Region [0] will find Region [1] around the 2 o'clock direction.
Response: If you are at Region [0], you will find Region [1] around the 2 o'clock direction.
"answer_direction": 2, "response_direction": 2

Example 2:
Question: If you are at Region [0], where will you find Region [1]?
Answer: Region [0] will find Region [1] around the 12 o'clock direction.
Response: If you are at Region [0], you will find Region [1] around the 11 o'clock direction.
"answer_direction": 12, "response_direction": 11

Your Turn:
Question: {question}
Answer: {answer}
Response: {response}

"""

_DISTANCE_PROMPT = """
You should help me to evaluate the response given the question and the correct answer.
You need to convert the distance of the correct answer and response to meters. The conversion factors are as follows: 1 inch = 0.0254 meters. 1 foot = 0.3048 meters. 1 centimeter (cm) = 0.01 meters.
You should output two floats in meters, one for the answer, and one for the response.
The output should be in JSON format.


Example 1:
Question: Measure the width of Region [0].?
Answer: The width of Region [0] is 1.02 meters.
Response: Region [0] is 2.17 meters wide.
"answer_in_meters": 1.02, "response_in_meters": 2.17

Example 2:
Question: What is the height of Region [1]?
Answer: The height of Region [1] is 10.0 inches.
Response: It is 48.47 centimeters.
"answer_in_meters": 0.25, "response_in_meters": 0.48

Example 3:
Question: What is the radius of Region [0]?
Answer: Region [0] is 77.56 centimeters wide.
Response: It is 35.9 inches wide.
"answer_in_meters": 0.78, "response_in_meters": 0.91

Example 4:
Question: How far away is Region [0] from Region [1]?
Answer: Region [0] and Region [1] are 11.4 meters apart.
Response: 22.32 feet.
"answer_in_meters": 11.4, "response_in_meters": 6.80

Your Turn:
Question: {question}
Answer: {answer}
Response: {response}

"""  # noqa: E501

_QUALITATIVE_HEAD = """
You should help me to evaluate the response given the question and the correct answer.
To mark a response, you should output a single integer between 0 and 1.
1 means that the response perfectly matches the answer.
0 means that the response is completely different from the answer.
The output should be in JSON format.

"""


def _fill(template: str, question: str, answer: str, response: str) -> str:
    """The script fills its prompt as an f-string and then calls `.format(question, answer, response)` on the
    result, so braces inside a question, answer or response are parsed again: "{}" takes the question's place
    and "{1.0}" raises (the item then counts as a failed match). Reproduced by doing the same."""
    values = {"question": question, "answer": answer, "response": response}
    filled = re.sub(r"\{(question|answer|response)\}", lambda m: values[m.group(1)], template)
    return filled.format(question, answer, response)


def spatialrgpt_messages(
    item: EvalItem, prediction: str, templates: Mapping[str, str] | None = None
) -> list[dict[str, str]]:
    """The exact messages the official script sends for this item (question = the bench's `text_q`, answer = the
    ground-truth turn). Raises (KeyError, IndexError, ValueError, AttributeError) where the script's own prompt
    building raises; qualitative items need the authors' example file for the category (`templates`)."""
    question = str(item.meta.get("text_q") or item.question)
    answer = item.answer
    if item.category == "direction":
        content = _fill(_DIRECTION_PROMPT, question, answer, prediction)
    elif item.category in SPATIALRGPT_DISTANCE:
        content = _fill(_DISTANCE_PROMPT, question, answer, prediction)
    else:
        name = "choice" if "choice" in item.category else item.category
        if not templates or name not in templates:
            raise KeyError(f"no SpatialRGPT prompt template for {name!r}")
        examples = templates[name].strip().format(question=question)
        post = "\n\nYour Turn:\nQuestion: {question}\nAnswer: {answer}\nResponse: {response}\n    "
        content = _QUALITATIVE_HEAD + examples + _fill(post, question, answer, prediction)
    return [{"role": "system", "content": SPATIALRGPT_SYSTEM}, {"role": "user", "content": content}]


def load_spatialrgpt_templates(directory: Path) -> dict[str, str]:
    """The authors' qualitative example files (scripts/srgpt/eval/prompt_templates/*.txt of a SpatialRGPT
    checkout), read as they are: they are part of the judge prompt and are not shipped with this project."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"SpatialRGPT prompt templates not found: {directory}")
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.txt"))}


@dataclass(frozen=True)
class SpatialRGPTVerdict:
    correct: bool
    matched: bool  # the judge reply was usable (the script's match_success)
    answer: float | None = None  # meters, or clock hour
    response: float | None = None
    error_rate: float | None = None
    mark: int | None = None
    reason: str = ""


def spatialrgpt_verdict(item: EvalItem, reply: str) -> SpatialRGPTVerdict:
    """Read a judge reply as the script does: `json.loads`, then `float()` (distances) or `int()` (clock hours)
    of its two fields, or the `your_mark` field (None counts as 0). Anything that raises is a failed match and a
    wrong item. Distances: success iff 0.75*gt <= pred <= 1.25*gt, error |p-g|/(g+1e-4); direction: clock
    difference <= 1."""
    try:
        data = json.loads(reply)
        if item.category == "direction":
            a, r = int(data["answer_direction"]), int(data["response_direction"])
            diff = abs(a - r)
            err = min(diff, 12 - diff)
            return SpatialRGPTVerdict(err <= 1, True, a, r, float(err))
        if item.category in SPATIALRGPT_DISTANCE:
            a, r = float(data["answer_in_meters"]), float(data["response_in_meters"])
            ok = r <= 1.25 * a and r >= 0.75 * a
            return SpatialRGPTVerdict(bool(ok), True, a, r, float(np.abs(r - a) / (a + 1e-4)))
        mark = data["your_mark"]
        mark = 0 if mark is None else mark
        return SpatialRGPTVerdict(int(mark > 0) == 1, True, mark=int(mark))
    except Exception as err:  # noqa: BLE001 - the script's bare except: every failure is a failed match
        return SpatialRGPTVerdict(False, False, reason=f"judge reply unusable: {type(err).__name__}: {err}")


def spatialrgpt_qualitative_group(category: str) -> str:
    """The script's report groups, in its order of tests (so "long"/"short" land in tall/short)."""
    for words, name in (
        (("short", "tall"), "tall/short"),
        (("left", "right"), "left/right"),
        (("below", "above"), "below/above"),
        (("behind", "front"), "behind/front"),
        (("big", "small"), "big/small"),
        (("wide", "thin"), "wide/thin"),
    ):
        if any(w in category for w in words):
            return name
    raise ValueError(f"SpatialRGPT: unknown qualitative category {category!r}")


def spatialrgpt_aggregate(results: Sequence[ItemResult]) -> dict[str, float]:
    """The script's score.json: per quantitative category success (failed matches count 0) and mean error of the
    matched items (x100), abs_rel of the matched distance items (its compute_errors, rounded to 3 places), per
    qualitative group accuracy, the pooled quantitative (direction included) and qualitative accuracies, and the
    number of failed matches."""
    out: dict[str, float] = {}
    quant: dict[str, list[ItemResult]] = {}
    qual: dict[str, list[ItemResult]] = {}
    for r in results:
        if r.category in SPATIALRGPT_QUANTITATIVE:
            quant.setdefault(SPATIALRGPT_DISTANCE.get(r.category, r.category), []).append(r)
        elif r.split == "qualitative":
            qual.setdefault(spatialrgpt_qualitative_group(r.category), []).append(r)

    def pct(flags: list[int]) -> float:  # the script's np.sum(x) / len(x) * 100, in that order
        return float(np.sum(flags) / len(flags) * 100)

    for name, rows in qual.items():
        out[f"Qual_{name}_acc"] = pct([int(r.correct) for r in rows])
    if qual:
        out["Qual_overall_acc"] = pct([int(r.correct) for v in qual.values() for r in v])
    for name, rows in quant.items():
        out[f"Quan_{name}_acc"] = pct([int(r.correct) for r in rows])
        errors = [r.score_detail["error_rate"] for r in rows if "error_rate" in r.score_detail]
        if errors:
            out[f"Quan_{name}_err"] = float(np.sum(errors) / len(errors) * 100)
    for category in SPATIALRGPT_DISTANCE:
        matched = [r for r in results if r.category == category and "error_rate" in r.score_detail]
        if matched:
            average, count = 0.0, 0  # the script's RunningAverage of compute_errors' abs_rel
            with np.errstate(divide="ignore", invalid="ignore"):
                for r in matched:
                    gt, pred = np.array([r.score_detail["answer"]]), np.array([r.score_detail["response"]])
                    average = (float(np.mean(np.abs(gt - pred) / gt)) + count * average) / (count + 1)
                    count += 1
            out[f"Quan_{category}_absrel"] = round(average, 3)
    if quant:
        out["Quan_overall_acc"] = pct([int(r.correct) for v in quant.values() for r in v])
    out["Match_fail_count"] = float(sum(1 for r in results if r.reason.startswith("judge")))
    return out


class SpatialRGPTScorer:
    """SpatialRGPT-Bench scored as the authors' script does: every item goes to the judge with the script's own
    messages (distance, clock direction, or the category's qualitative examples), and the reply is read by the
    script's rules (`spatialrgpt_verdict`). The judge is any OpenAI-compatible endpoint (`assets.llm.LLMClient`,
    its `complete_text`: the messages are sent exactly as built here). Without a client, or for a qualitative
    category without the authors' example file, the `fallback` (our rule reading) decides and the item's reason
    says "rule fallback", so a report never passes a rule score off as the official GPT one."""

    def __init__(
        self,
        client: object | None,
        templates: Mapping[str, str] | None,
        fallback: Callable[[EvalItem, str | None], ItemResult],
    ) -> None:
        self.client = client
        self.templates = templates or {}
        self.fallback = fallback
        self.mode = "llm" if client is not None else "rule fallback"

    def __call__(self, item: EvalItem, prediction: str | None) -> ItemResult:
        if prediction is None:
            return official_result(item, None, "", False, "no prediction")
        qualitative = item.category not in SPATIALRGPT_QUANTITATIVE
        name = "choice" if "choice" in item.category else item.category
        if self.client is None or (qualitative and name not in self.templates):
            result = self.fallback(item, prediction)
            result.reason = "rule fallback" + (f": {result.reason}" if result.reason else "")
            d = result.score_detail
            if "pred" in d and "gt" in d:  # the same per-category figures the script reports
                result.score_detail = {"answer": d["gt"], "response": d["pred"], "error_rate": d["abs_rel"]}
            elif "clock_diff" in d:
                result.score_detail = {"error_rate": d["clock_diff"]}
            return result
        try:
            messages = spatialrgpt_messages(item, prediction, self.templates)
        except Exception as err:  # noqa: BLE001 - the script's prompt building fails inside its bare try
            return official_result(item, prediction, "", False, f"judge prompt failed: {type(err).__name__}")
        try:
            reply = self.client.complete_text(messages)  # type: ignore[attr-defined]
        except Exception as err:  # noqa: BLE001 - LLMError and budget: a failed match, as in the script
            return official_result(item, prediction, "", False, f"judge failed: {err}")
        verdict = spatialrgpt_verdict(item, reply)
        detail: dict[str, float] = {}
        if verdict.matched and verdict.answer is not None:
            detail = {
                "answer": verdict.answer,
                "response": verdict.response,
                "error_rate": verdict.error_rate,
            }
        parsed = (
            ""
            if not verdict.matched
            else (
                f"{verdict.response:g} vs {verdict.answer:g}"
                if verdict.answer is not None
                else f"mark {verdict.mark}"
            )
        )
        result = official_result(item, prediction, parsed, verdict.correct, verdict.reason, **detail)
        result.judge_model = str(getattr(getattr(self.client, "config", None), "model", ""))
        result.judge_prompt = json.dumps(messages)
        result.judge_raw = reply
        return result
