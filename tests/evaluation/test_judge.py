"""The LLM judge over real HTTP (tests/openai_server.py) and the rule-based fallback."""

from pathlib import Path

from assets.llm import LLMClient, LLMConfig
from evaluation.benchmarks import REGISTRY
from evaluation.config import EvalConfig
from evaluation.items import AnswerKind, EvalItem
from evaluation.judge import LLMJudge, RuleJudge, make_judge
from evaluation.run import score_items
from tests.openai_server import error_reply, json_reply, serve, text_reply

FIXTURES = Path(__file__).parent / "fixtures"


def _item(answer: str, **kw) -> EvalItem:
    return EvalItem(
        item_id="j1",
        benchmark="spatialrgpt",
        prompt="Is the chair left of the table?",
        question="Is the chair left of the table?",
        kind=AnswerKind.JUDGED,
        answer=answer,
        **kw,
    )


def _client(server, tmp_path: Path | None = None, **kw) -> LLMClient:
    return LLMClient(
        LLMConfig(
            base_url=server.base_url,
            model="judge-model",
            backoff_s=0,
            max_retries=1,
            cache_dir=tmp_path,
            **kw,
        )
    )


def test_llm_judge_records_prompt_model_and_raw_verdict(tmp_path):
    with serve([json_reply({"correct": 1, "extracted_answer": "left"})]) as server:
        judge = LLMJudge(_client(server, tmp_path))
        verdict = judge.judge(_item("Yes, it is to the left."), "Yep, on the left side.")
        assert verdict.correct is True and verdict.model == "judge-model"
        assert '"correct":1' in verdict.raw.replace(" ", "")
        assert "Yep, on the left side." in verdict.prompt
        sent = server.requests[0].text
        assert "Ground-truth answer: Yes, it is to the left." in sent and "Model answer: Yep" in sent
        # the response cache: the same question is not paid for twice
        again = judge.judge(_item("Yes, it is to the left."), "Yep, on the left side.")
        assert again.correct is True and len(server.requests) == 1


def test_failed_or_malformed_judge_reply_is_wrong_with_a_reason():
    with serve([text_reply("I think it is correct!"), error_reply(500)]) as server:
        verdict = LLMJudge(_client(server)).judge(_item("yes"), "yes")
        assert verdict.correct is None and verdict.reason.startswith("judge failed")
        assert len(server.requests) == 2  # retried once, then gave up


def test_judge_failure_stays_in_the_denominator():
    spec = REGISTRY["spatialrgpt"]
    items = [it for it in spec.load(FIXTURES / "spatialrgpt", EvalConfig()) if it.kind == AnswerKind.JUDGED]
    assert len(items) == 2
    with serve([json_reply({"correct": 1}), text_reply("not json"), text_reply("still not json")]) as server:
        results, metrics, _ = score_items(
            items, ["Yes", "the chair"], spec, EvalConfig(), LLMJudge(_client(server))
        )
    assert [r.correct for r in results] == [True, False]
    # no official templates or endpoint here: our judge decides, and the item says it was the rule fallback
    assert (
        results[1].reason.startswith("rule fallback: judge failed")
        and results[1].judge_model == "judge-model"
    )
    assert metrics["accuracy"] == 50.0 and metrics["count"] == 2


def test_rule_judge_fallback():
    judge = RuleJudge(tolerance=0.25)
    assert judge.judge(_item("Yes, the chair is left."), "yes").correct is True
    assert judge.judge(_item("Yes, the chair is left."), "No.").correct is False
    assert judge.judge(_item("The chair is to the left of the table."), "It is on the left.").correct is True
    assert (
        judge.judge(_item("The chair is to the left of the table."), "It is not on the left.").correct
        is False
    )
    assert judge.judge(_item("The chair is to the left of the table."), "somewhere").correct is None
    numeric = _item("About 1.5 m.", value=150.0, meta={"unit": "cm"})
    assert judge.judge(numeric, "1.7 meters").correct is True
    assert judge.judge(numeric, "2 meters").correct is False
    assert judge.judge(numeric, "160").correct is True  # bare number read in the question's unit
    mc = _item("the table", options=["the chair", "the table"], labels=["A", "B"], correct_index=1)
    assert judge.judge(mc, "B").correct is True


def test_make_judge_falls_back_without_endpoint(monkeypatch):
    monkeypatch.delenv("HISPATIAL_JUDGE_BASE_URL", raising=False)
    assert make_judge(LLMClient.from_env("HISPATIAL_JUDGE")).mode == "rule"
