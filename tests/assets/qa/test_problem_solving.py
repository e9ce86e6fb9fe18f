"""The teacher/student problem-solving protocol against a real local OpenAI-protocol server."""

from __future__ import annotations

import json

import pytest

from assets.llm import LLMClient, LLMConfig
from assets.qa.config import QAConfig
from assets.qa.context import QAContext
from assets.qa.l3 import generate_l3
from assets.qa.problem_solving import (
    STUDENT_SYSTEM,
    TEACHER_SYSTEM,
    StudentAnswer,
    TeacherProblem,
    answers_agree,
    generate_llm_problems,
    normalize_answer,
)
from assets.records import QAFormat, QAPair, Task
from tests.assets.qa.test_l3 import HAND_SPECS, make_scene
from tests.openai_server import RecordedRequest, Reply, error_reply, json_reply, serve

FACT = {
    "subject": "the grey sofa",
    "relation": "width",
    "value": 2.0,
    "unit": "m",
    "text": "The sofa is 2.0 m wide.",
}
GAP_FACT = {
    "subject": "gap",
    "relation": "gap_between",
    "object": "the grey sofa and the small table",
    "value": 0.7,
    "unit": "m",
    "text": "The gap between the grey sofa and the small table is 0.7 m.",
}

TEACHER = {
    "problems": [
        {
            "question": "Could the grey sofa be moved into the gap between the laptop and the small table?",
            "answer": "No",
            "answer_type": "judgement",
            "reasoning": "The sofa is 2.0 m wide but the gap is only 0.7 m.",
            "facts": [FACT, GAP_FACT],
            "object_ids": [1, 7],
        },
        {
            "question": "How much wider is the grey sofa than the gap between it and the small table, in meters?",
            "answer": "1.3 m",
            "answer_type": "numeric",
            "numeric_value": 1.3,
            "unit": "m",
            "reasoning": "2.0 - 0.7 = 1.3",
            "facts": [FACT, GAP_FACT],
            "object_ids": [1, 7],
        },
        {
            "question": "Which object is closest to the wooden chair?",
            "answer": "the grey sofa",
            "answer_type": "choice",
            "options": ["the grey sofa", "the small table", "the laptop"],
            "reasoning": "Distances 1.9, 4.2 and 2.5 m.",
            "facts": [
                {
                    "subject": "the wooden chair",
                    "relation": "distance_to",
                    "object": "the grey sofa",
                    "value": 1.9,
                    "unit": "m",
                }
            ],
            "object_ids": [6],
        },
    ]
}


def student(answers: list[dict]) -> Reply:
    return json_reply({"answers": answers})


AGREEING = [
    {"index": 0, "reasoning": "2.0 m > 0.7 m, so it does not fit.", "answer": "No."},
    {"index": 1, "reasoning": "2.0 - 0.7 = 1.3 m.", "answer": "1.32 m", "numeric_value": 1.32},
    {"index": 2, "reasoning": "1.9 m is the smallest distance.", "answer": "The grey sofa"},
]


def router(teacher: Reply, student_reply: Reply):
    def route(request: RecordedRequest) -> Reply:
        if TEACHER_SYSTEM in request.text:
            return teacher
        assert STUDENT_SYSTEM in request.text
        return student_reply

    return route


def context(seed: int = 0, **config) -> QAContext:
    return QAContext.build(make_scene(HAND_SPECS), QAConfig(seed=seed, **config))


def client(url: str, **overrides) -> LLMClient:
    return LLMClient(LLMConfig(base_url=url, model="teacher-model", backoff_s=0.0, **overrides))


def test_agreeing_student_keeps_every_problem():
    with serve(router(json_reply(TEACHER), student(AGREEING))) as server:
        ctx = context()
        result = generate_llm_problems(ctx, client(server.base_url), max_problems=3)
    assert result.rejected == [] and len(result.pairs) == 3
    for pair in result.pairs:
        QAPair.model_validate(pair.model_dump())
        assert pair.task == Task.PROBLEM_SOLVING and pair.generator == "llm"
    judgement, numeric, choice = result.pairs
    assert judgement.answer == "No" and judgement.reasoning == AGREEING[0]["reasoning"]
    assert judgement.object_ids[:2] == [1, 7] and judgement.format == QAFormat.FREE_FORM
    assert numeric.value == 1.3 and numeric.unit == "m" and numeric.reasoning == "2.0 - 0.7 = 1.3 m."
    assert (
        choice.format == QAFormat.MULTIPLE_CHOICE and choice.options[choice.correct_index] == "the grey sofa"
    )
    assert sorted(choice.options) == sorted(TEACHER["problems"][2]["options"])
    # The teacher saw privileged geometry; the student saw only the facts.
    teacher_request, student_request = server.requests
    assert "center_m" in teacher_request.text and "the grey sofa" in teacher_request.text
    assert "center_m" not in student_request.text and "The sofa is 2.0 m wide." in student_request.text
    assert "2.0 - 0.7 = 1.3" not in student_request.text  # the teacher's reasoning is not leaked


def test_disagreeing_student_drops_problems_with_reasons():
    wrong = [
        {"index": 0, "reasoning": "It fits.", "answer": "Yes"},
        {
            "index": 1,
            "reasoning": "Roughly 1.5.",
            "answer": "1.5",
            "numeric_value": 1.5,
        },  # 15 % off: rejected
        {"index": 2, "reasoning": "closest", "answer": "the grey sofa"},
    ]
    with serve(router(json_reply(TEACHER), student(wrong))) as server:
        result = generate_llm_problems(context(), client(server.base_url), max_problems=3)
    assert [p.subtask for p in result.pairs] == ["llm_choice"]
    assert len(result.rejected) == 2 and all("disagrees" in r for r in result.rejected)


@pytest.mark.parametrize(
    ("teacher_value", "student_value", "agree"),
    [(1.3, 1.42, True), (1.3, 1.44, False), (2.0, 1.81, True), (0.0, 0.0, True), (0.0, 0.01, False)],
)
def test_numeric_agreement_is_within_ten_percent(teacher_value, student_value, agree):
    teacher = TeacherProblem(
        question="How far is it, in meters?",
        answer=str(teacher_value),
        answer_type="numeric",
        numeric_value=teacher_value,
        unit="m",
        reasoning="r",
        facts=[FACT],
    )
    got = StudentAnswer(index=0, reasoning="r", answer=f"{student_value} m")  # number parsed from the text
    assert answers_agree(teacher, got)[0] is agree


def test_judgement_normalisation():
    assert normalize_answer("Yes, it fits.") == "yes" == normalize_answer("TRUE")
    assert normalize_answer("No") == "no" == normalize_answer("false.")
    assert normalize_answer("The Grey Sofa!") == "grey sofa"


def test_student_skipping_and_unknown_objects_are_rejected():
    teacher = json.loads(json.dumps(TEACHER))
    teacher["problems"][2]["object_ids"] = [99]
    with serve(router(json_reply(teacher), student(AGREEING[:1]))) as server:
        result = generate_llm_problems(context(), client(server.base_url), max_problems=3)
    assert len(result.pairs) == 1
    assert any("unknown object ids [99]" in r for r in result.rejected)
    assert any("student skipped problem 1" in r for r in result.rejected)


def test_broken_endpoint_falls_back_to_rule_problems_without_crashing():
    caps = {Task.PROBLEM_SOLVING: 6}
    with serve([], default=error_reply(500)) as server:
        ctx = context(caps=caps)
        pairs = generate_l3(ctx, llm=client(server.base_url, max_retries=1))
    solving = [p for p in pairs if p.task == Task.PROBLEM_SOLVING]
    assert solving and all(p.generator == "rule" for p in solving) and len(solving) <= 6
    assert any("teacher call failed" in s for s in ctx.skips)
    assert len(server.requests) == 2  # one attempt + one retry, then gave up


def test_malformed_teacher_json_is_retried_then_used():
    replies = [
        Reply(content="{not json"),
        json_reply({"problems": []}),
        json_reply(TEACHER),
        student(AGREEING),
    ]
    with serve(replies) as server:
        llm = client(server.base_url, max_retries=3)
        result = generate_llm_problems(context(), llm, max_problems=3)
    assert len(result.pairs) == 3 and llm.stats.invalid_replies == 2 and len(server.requests) == 4


def test_budget_exhausted_after_teacher_gives_fewer_questions_with_reason():
    with serve(router(json_reply(TEACHER), student(AGREEING))) as server:
        ctx = context(caps={Task.PROBLEM_SOLVING: 4})
        pairs = generate_l3(ctx, llm=client(server.base_url, max_calls=1))
    assert len(server.requests) == 1
    assert any("budget exhausted before student call" in s for s in ctx.skips)
    assert all(p.generator == "rule" for p in pairs if p.task == Task.PROBLEM_SOLVING)


def test_llm_pairs_fill_the_cap_first_and_rerun_hits_the_cache(tmp_path):
    caps = {Task.PROBLEM_SOLVING: 4}
    with serve(router(json_reply(TEACHER), student(AGREEING))) as server:
        first = generate_l3(context(caps=caps), llm=client(server.base_url, cache_dir=tmp_path))
        llm = client(server.base_url, cache_dir=tmp_path)
        second = generate_l3(context(caps=caps), llm=llm)
    solving = [p for p in first if p.task == Task.PROBLEM_SOLVING]
    assert [p.generator for p in solving][:3] == ["llm"] * 3 and len(solving) <= 4
    assert len(server.requests) == 2 and llm.stats.cache_hits == 2
    assert [p.model_dump() for p in first] == [p.model_dump() for p in second]
