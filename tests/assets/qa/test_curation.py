"""The optional model stages over a release: rephrasing into conversations (references must survive), a judge with
reasons, farthest-point diversity selection over CLIP embeddings; over real HTTP against a scripted
OpenAI-compatible server, with the real LLM client (cache and budget)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from assets.llm import LLMClient, LLMConfig
from assets.qa.config import QAConfig
from assets.qa.curation import (
    curate_release,
    diverse_subset,
    farthest_point_sampling,
    judge_pairs,
    missing_references,
    rephrase_conversations,
)
from assets.qa.dataset import build_qa_dataset, load_qa_dataset
from assets.qa.shards import qa_shard
from assets.references import assign_references
from assets.storage import read_scenes, shard_dir, write_scenes
from tests.openai_server import Reply, json_reply, serve


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from assets.synthetic import SyntheticConfig, write_synthetic_shard

    root = tmp_path_factory.mktemp("curation")
    write_synthetic_shard(root, "synthetic-000", SyntheticConfig(num_scenes=3, seed=1))
    scenes = read_scenes(shard_dir(root, "source_images", "synthetic-000") / "scenes.jsonl")
    path = shard_dir(root, "object_references", "synthetic-000") / "scenes.jsonl"
    path.parent.mkdir(parents=True)
    write_scenes(path, [assign_references(s) for s in scenes])
    qa_shard(root, "synthetic-000", QAConfig(l0_eval_samples=0, include_l3=False))
    build_qa_dataset(root, ["synthetic-000"])
    return root


@pytest.fixture(scope="module")
def rows(root):
    out = load_qa_dataset(root).to_dict("records")
    for row in out:
        row["references"] = list(row["references"])
    return out


def _questions(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^\d+\. (.*?)  \[references:", text, flags=re.MULTILINE)]


def rewriter(drop_references_in: int | None = None):
    """A model that rewrites each question as 'Quick one: <question>'; on its `drop_references_in`-th request it
    replaces every quoted reference by 'it' (a rewrite that must be rejected)."""
    calls = {"n": 0}

    def reply(request) -> Reply:
        calls["n"] += 1
        text = request.text
        turns = []
        for q in _questions(text):
            if calls["n"] == drop_references_in:
                for ref in re.findall(r"'([^']+)'", text):
                    q = q.replace(ref, "it")
            turns.append({"question": f"Quick one: {q}"})
        return json_reply({"turns": turns})

    return reply


def test_missing_references():
    assert missing_references("Is The Red Mug left of the lamp?", ["the red mug", "the lamp"]) == []
    assert missing_references("Is it left of the lamp?", ["the red mug", "the lamp"]) == ["the red mug"]


def test_rephrasing_keeps_answers_and_rejects_lost_references(rows, tmp_path):
    with serve(rewriter(drop_references_in=2)) as server:
        client = LLMClient(LLMConfig(base_url=server.base_url, model="m", backoff_s=0.0, cache_dir=tmp_path))
        records = rephrase_conversations(client, rows, max_images=3, max_turns=4)
        assert len(server.requests) == 3
        assert len(records) == 2  # the second image's rewrite lost its references
        by_id = {r["qa_id"]: r for r in rows}
        for record in records:
            turns = record["conversations"]
            assert turns[0]["value"].startswith("<image>\nQuick one: ")
            for k, qa_id in enumerate(record["qa_ids"]):
                row = by_id[qa_id]
                assert turns[2 * k + 1]["value"] == row["answer"]
                assert not missing_references(turns[2 * k]["value"], row["references"])
        # a re-run pays nothing: every reply is cached
        again = rephrase_conversations(client, rows, max_images=3, max_turns=4)
        assert len(server.requests) == 3 and again == records and client.stats.cache_hits == 3


def test_judge_records_reasons_and_stops_at_the_budget(root, rows):
    def judge(request) -> Reply:
        assert request.image_urls, "the judge sees the image"
        keep = "True or false" not in request.text
        return json_reply({"keep": keep, "reason": "clear question" if keep else "wrapper adds nothing"})

    with serve(judge) as server:
        client = LLMClient(LLMConfig(base_url=server.base_url, model="m", backoff_s=0.0, max_calls=5))
        from assets.qa.curation import CurationReport

        report = CurationReport()
        verdicts = judge_pairs(client, rows, root, max_items=20, report=report)
    assert len(verdicts) == 5 and report.budget_exhausted
    assert all(v["reason"] for v in verdicts)
    assert [v["keep"] for v in verdicts] == ["True or false" not in r["question"] for r in rows[:5]]


def test_farthest_point_sampling_covers_the_clusters():
    rng = np.random.default_rng(0)
    centres = np.eye(4)
    points = np.concatenate([c + 0.01 * rng.normal(size=(25, 4)) for c in centres])
    chosen = farthest_point_sampling(points, 4)
    assert sorted(i // 25 for i in chosen) == [0, 1, 2, 3]  # one per cluster before any repeat
    assert len(set(farthest_point_sampling(points, 10))) == 10
    assert farthest_point_sampling(points, 500)[:4] == chosen
    with pytest.raises(ValueError):
        farthest_point_sampling(np.zeros((0, 3)), 2)


def test_curate_release_writes_its_outputs(root, tmp_path):
    from assets.wild.clip import ClipScorer

    scorer = ClipScorer.tiny(["a photo"])
    files = sorted({r["image_file"] for r in load_qa_dataset(root).to_dict("records")})
    subset = diverse_subset(root, files, scorer, 2)
    assert len(subset) == 2 and set(subset) <= set(files)
    with serve(rewriter()) as server:
        client = LLMClient(LLMConfig(base_url=server.base_url, model="m", backoff_s=0.0))
        report = curate_release(root, client, rephrase_images=2, scorer=scorer, subset_size=2)
    out = root / "qa_dataset" / "curation"
    assert len(json.loads((out / "conversations.json").read_text())) == report.conversations == 2
    assert json.loads((out / "diverse_subset.json").read_text()) == subset
    assert json.loads((out / "report.json").read_text())["curation_conversations"] == 2
