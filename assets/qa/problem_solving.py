"""Level-3 spatial problem solving with an LLM: the paper's two-stage teacher/student protocol (Sec. 3.2, App. 7.3).

Stage 1 (teacher): the LLM sees *privileged* 3D facts of the scene (every object's reference, category, center in
the gravity frame, size, distance to the camera, facing direction, and pairwise distances) and optionally the image.
It writes multi-step questions and, for each, the answer, its type (judgement / numeric / choice), a detailed
reasoning trace and the structured spatial facts needed to solve it.

Stage 2 (student): a fresh prompt gets only each question and its facts (no coordinates, no image) and must derive
the answer. A problem is kept only when the student agrees with the teacher (numeric within 10 %, judgement and
choice exactly after normalisation). That filter removes questions whose answer does not follow from the stated
facts, and the student's short trace becomes the pair's `reasoning` (what the VLM learns to produce).

Every failure (endpoint down, malformed JSON after retries, budget spent, disagreement, unknown object ids) becomes
a reason in `ProblemSolvingResult.rejected`; nothing here raises for a bad reply.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from assets.llm import BudgetExceeded, LLMClient, LLMError
from assets.qa.context import QAContext, refer
from assets.qa.formats import multiple_choice
from assets.records import TASK_LEVEL, DrawBox, QAFormat, QAPair, SceneObject, Task

NUMERIC_TOLERANCE = 0.10  # relative agreement required between student and teacher numbers (paper: 10 %)
MAX_FACT_OBJECTS = 15  # objects described to the teacher; bounded so prompts stay small in crowded scenes


# ------------------------------------------------------------------------------------------------ schemas


class SpatialFact(BaseModel):
    """One structured fact, e.g. {subject: "the sofa", relation: "width", value: 2.1, unit: "m"}."""

    subject: str = Field(min_length=1)
    relation: str = Field(
        min_length=1, description="width, height, length, distance_to, left_of, gap_between..."
    )
    object: str | None = None
    value: float | None = None
    unit: str | None = None
    text: str = Field(default="", description="The fact in one plain sentence.")

    def render(self) -> str:
        if self.text:
            return self.text
        parts = [self.subject, self.relation.replace("_", " ")]
        if self.object:
            parts.append(self.object)
        if self.value is not None:
            parts.append(f"{self.value:g}{' ' + self.unit if self.unit else ''}")
        return " ".join(parts)


class TeacherProblem(BaseModel):
    question: str = Field(min_length=8)
    answer: str = Field(min_length=1)
    answer_type: Literal["judgement", "numeric", "choice"]
    numeric_value: float | None = None
    unit: str | None = None
    options: list[str] = Field(
        default_factory=list, description="Choice questions: the options, answer among them."
    )
    reasoning: str = Field(min_length=1)
    facts: list[SpatialFact] = Field(min_length=1)
    object_ids: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _typed_answer(self) -> TeacherProblem:
        if self.answer_type == "numeric" and (
            self.numeric_value is None or not math.isfinite(self.numeric_value)
        ):
            raise ValueError("numeric problems need a finite numeric_value")
        if self.answer_type == "choice" and len(self.options) < 2:
            raise ValueError("choice problems need at least two options")
        return self


class TeacherReply(BaseModel):
    problems: list[TeacherProblem] = Field(min_length=1)


class StudentAnswer(BaseModel):
    index: int = Field(ge=0)
    reasoning: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    numeric_value: float | None = None


class StudentReply(BaseModel):
    answers: list[StudentAnswer]


# ------------------------------------------------------------------------------------------------ prompts

TEACHER_SYSTEM = (
    "You are a teacher writing spatial reasoning exercises about one photographed scene. You are given privileged "
    "3D information: every object's textual reference, its center in a gravity-aligned frame (x to the right of the "
    "camera, y forward away from the camera, z up; meters), its size (width, height, length in meters), distance "
    "to the camera, facing direction, and pairwise distances. Write questions that need several reasoning steps "
    "over object positions, sizes, orientations and distances (e.g. whether something fits somewhere, what can be "
    "reached, which object to move, how far to walk). Refer to objects ONLY by their given references, exactly as "
    "written. Never mention coordinates or the 3D data in the question. For each question give the answer, its "
    "answer_type (judgement for yes/no or which-object answers, numeric for a number, choice when you list options), "
    "numeric_value and unit for numeric answers, a detailed reasoning trace, the object_ids involved, and a list "
    "of structured facts (subject, relation, object, value, unit, text) that together are sufficient to derive the "
    "answer without the 3D data."
)
PROMPT_KINDS = {
    "basic": "Write {n} basic spatial reasoning questions (yes/no or which-object) about this scene.",
    "quantitative": "Write {n} quantitative spatial reasoning questions whose answers are numbers (meters, counts "
    "or degrees), each needing at least two computation steps.",
    "prior": "Write {n} questions that combine the scene's geometry with everyday knowledge of object sizes and "
    "human use, like these examples: 'Could the chair be pushed under the table without hitting its top?', "
    "'If I walk from the door to the sofa, how far do I walk?', 'Which object on the desk is closest to the "
    "lamp?'.",
}
STUDENT_SYSTEM = (
    "You are a student solving spatial reasoning questions. For each question you get only a list of spatial facts. "
    "Derive the answer from those facts alone, step by step but briefly. For numeric questions give numeric_value "
    "in the unit asked; for yes/no questions answer Yes or No; for choice questions answer with the option text."
)


def scene_facts(ctx: QAContext, objects: Sequence[SceneObject]) -> dict[str, object]:
    """The teacher's privileged view of the scene: per-object geometry and pairwise distances (gravity frame)."""
    assert ctx.frame is not None
    rows = []
    centers = {}
    for obj in objects:
        geom = ctx.geom(obj)
        centers[obj.instance_id] = geom.center_grav
        row: dict[str, object] = {
            "id": obj.instance_id,
            "reference": refer(obj, ctx)[0],
            "category": obj.category,
            "center_m": [round(float(c), 2) for c in geom.center_grav],
            "size_m": {
                "width": round(obj.box3d.width, 2),
                "height": round(obj.box3d.height, 2),
                "length": round(obj.box3d.length, 2),
            },
            "distance_to_camera_m": round(geom.distance, 2),
        }
        if obj.front_grav is not None:
            row["facing"] = [round(float(c), 2) for c in obj.front_grav]
        rows.append(row)
    pairs = []
    ids = list(centers)
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            delta = centers[b] - centers[a]
            pairs.append(
                {
                    "ids": [a, b],
                    "direct_m": round(float(np.linalg.norm(delta)), 2),
                    "horizontal_m": round(float(np.linalg.norm(delta[:2])), 2),
                    "vertical_m": round(float(abs(delta[2])), 2),
                }
            )
    return {"frame": "x right, y forward (away from camera), z up; meters", "objects": rows, "pairs": pairs}


def teacher_messages(facts: dict[str, object], kind: str, n: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": TEACHER_SYSTEM},
        {
            "role": "user",
            "content": PROMPT_KINDS[kind].format(n=n) + "\n\nScene:\n" + json.dumps(facts, sort_keys=True),
        },
    ]


def student_messages(problems: Sequence[TeacherProblem]) -> list[dict[str, str]]:
    items = []
    for i, problem in enumerate(problems):
        item: dict[str, object] = {
            "index": i,
            "question": problem.question,
            "answer_type": problem.answer_type,
            "facts": [fact.render() for fact in problem.facts],
        }
        if problem.answer_type == "numeric" and problem.unit:
            item["answer_unit"] = problem.unit
        if problem.options:
            item["options"] = problem.options
        items.append(item)
    return [
        {"role": "system", "content": STUDENT_SYSTEM},
        {
            "role": "user",
            "content": "Questions:\n"
            + json.dumps(items, sort_keys=True)
            + "\nReturn one answer per question index.",
        },
    ]


# ------------------------------------------------------------------------------------------------ agreement

_YES = {"yes", "true", "correct", "y"}
_NO = {"no", "false", "incorrect", "n"}
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def normalize_answer(text: str) -> str:
    """Lower-case words without punctuation or leading articles; yes/true -> yes, no/false -> no."""
    words = re.sub(r"[^a-z0-9]+", " ", text.lower()).split()
    if words and words[0] in _YES:
        return "yes"
    if words and words[0] in _NO:
        return "no"
    while words and words[0] in {"the", "a", "an"}:
        words = words[1:]
    return " ".join(words)


def first_number(text: str) -> float | None:
    match = _NUMBER.search(text)
    return float(match.group()) if match else None


def answers_agree(teacher: TeacherProblem, student: StudentAnswer) -> tuple[bool, str]:
    """The paper's acceptance rule: numeric within 10 % relative error, judgement/choice exact (normalised)."""
    if teacher.answer_type == "numeric":
        truth = teacher.numeric_value
        got = student.numeric_value if student.numeric_value is not None else first_number(student.answer)
        if got is None or truth is None:
            return False, "student gave no number"
        ok = abs(got - truth) <= NUMERIC_TOLERANCE * abs(truth) if truth != 0 else abs(got) < 1e-9
        return ok, f"teacher {truth:g} vs student {got:g}"
    want, got_text = normalize_answer(teacher.answer), normalize_answer(student.answer)
    return want == got_text, f"teacher {want!r} vs student {got_text!r}"


# ------------------------------------------------------------------------------------------------ pipeline


@dataclass
class ProblemSolvingResult:
    pairs: list[QAPair] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    teacher_problems: int = 0


def _objects_of(problem: TeacherProblem, ctx: QAContext, by_id: dict[int, SceneObject]) -> list[SceneObject]:
    """Objects a problem involves: its declared ids plus any object whose reference appears in the question."""
    unknown = [i for i in problem.object_ids if i not in by_id]
    if unknown:
        raise ValueError(f"unknown object ids {unknown}")
    ids = list(dict.fromkeys(problem.object_ids))
    for obj_id, obj in by_id.items():
        if obj_id not in ids and refer(obj, ctx)[0].lower() in problem.question.lower():
            ids.append(obj_id)
    return [by_id[i] for i in ids]


def _to_pair(
    ctx: QAContext, problem: TeacherProblem, student: StudentAnswer, kind: str, objects: list[SceneObject]
) -> QAPair:
    references: list[str] = []
    boxes: list[DrawBox] = []
    for obj in objects:
        text, drawn = refer(obj, ctx)
        references.append(text)
        boxes += drawn
    ids = [o.instance_id for o in objects]
    question, answer, options, correct_index, fmt = (
        problem.question,
        problem.answer,
        [],
        None,
        QAFormat.FREE_FORM,
    )
    if problem.answer_type == "choice":
        correct = next(
            (o for o in problem.options if normalize_answer(o) == normalize_answer(problem.answer)), None
        )
        if correct is not None and 2 <= len(problem.options) <= 6:
            mc = multiple_choice(
                ctx.rng,
                problem.question,
                correct,
                [o for o in problem.options if o != correct],
                min_options=len(problem.options),
                max_options=len(problem.options),
            )
            if mc is not None:
                question, answer, options, correct_index = (
                    mc.question,
                    mc.answer,
                    mc.options,
                    mc.correct_index,
                )
                fmt = QAFormat.MULTIPLE_CHOICE
    digest = hashlib.blake2b(problem.question.encode(), digest_size=6).hexdigest()
    return QAPair(
        qa_id=ctx.qa_id(Task.PROBLEM_SOLVING, f"llm.{kind}", ids, fmt, digest),
        scene_id=ctx.scene.scene_id,
        shard=ctx.shard,
        level=TASK_LEVEL[Task.PROBLEM_SOLVING],
        task=Task.PROBLEM_SOLVING,
        subtask=f"llm_{problem.answer_type}",
        format=fmt,
        question=question,
        answer=answer,
        options=options,
        correct_index=correct_index,
        value=problem.numeric_value if problem.answer_type == "numeric" else None,
        unit=problem.unit if problem.answer_type == "numeric" else None,
        object_ids=ids,
        references=references,
        draw_boxes=boxes,
        template_id=f"llm.{kind}",
        reasoning=student.reasoning,
        generator="llm",
    )


def generate_llm_problems(
    ctx: QAContext,
    llm: LLMClient,
    max_problems: int = 4,
    image: np.ndarray | None = None,
    kind: str | None = None,
) -> ProblemSolvingResult:
    """Teacher writes up to `max_problems` problems, the student re-derives them; agreeing ones become pairs.

    Two LLM calls per scene (one teacher, one batched student call), both cached by `LLMClient`.
    """
    result = ProblemSolvingResult()
    if ctx.frame is None or len(ctx.objects) < 2 or max_problems <= 0:
        result.rejected.append("scene unsuitable (no gravity frame or fewer than two objects)")
        return result
    kind = kind or list(PROMPT_KINDS)[int(ctx.rng.integers(len(PROMPT_KINDS)))]
    objects = list(ctx.objects)
    if len(objects) > MAX_FACT_OBJECTS:
        objects = [objects[i] for i in sorted(ctx.rng.choice(len(objects), MAX_FACT_OBJECTS, replace=False))]
    by_id = {o.instance_id: o for o in objects}
    try:
        teacher = llm.complete_json(
            teacher_messages(scene_facts(ctx, objects), kind, max_problems),
            TeacherReply,
            images=[image] if image is not None else None,
        )
    except BudgetExceeded as err:
        result.rejected.append(f"budget exhausted before teacher call: {err}")
        return result
    except LLMError as err:
        result.rejected.append(f"teacher call failed: {err}")
        return result
    problems: list[tuple[TeacherProblem, list[SceneObject]]] = []
    for problem in teacher.problems[:max_problems]:
        try:
            problems.append((problem, _objects_of(problem, ctx, by_id)))
        except ValueError as err:
            result.rejected.append(f"teacher problem {problem.question[:60]!r}: {err}")
    result.teacher_problems = len(teacher.problems)
    if not problems:
        return result
    try:
        student = llm.complete_json(student_messages([p for p, _ in problems]), StudentReply)
    except BudgetExceeded as err:
        result.rejected.append(f"budget exhausted before student call: {err}")
        return result
    except LLMError as err:
        result.rejected.append(f"student call failed: {err}")
        return result
    answers = {a.index: a for a in student.answers}
    for i, (problem, objs) in enumerate(problems):
        answer = answers.get(i)
        if answer is None:
            result.rejected.append(f"student skipped problem {i}")
            continue
        agree, detail = answers_agree(problem, answer)
        if not agree:
            result.rejected.append(f"student disagrees on problem {i} ({detail})")
            continue
        result.pairs.append(_to_pair(ctx, problem, answer, kind, objs))
    return result
