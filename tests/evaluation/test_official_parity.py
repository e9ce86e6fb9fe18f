"""Every public benchmark scores exactly as its official code does, item for item and in aggregate.

The fixtures (tests/evaluation/fixtures/official/<benchmark>.json) were produced by running each benchmark's own
scoring code on an adversarial prediction set (provenance: repository, paths, commit and how it was run, in each
file). Here the same data files are written in their published layout, loaded by our loader, and scored by our
default (official) path; every verdict and every aggregate the official code reported must match.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from assets.llm import LLMClient, LLMConfig
from evaluation.benchmarks import REGISTRY
from evaluation.config import EvalConfig
from evaluation.run import score_items
from tests.openai_server import RecordedRequest, Reply, error_reply, serve, text_reply

FIXTURES = Path(__file__).parent / "fixtures" / "official"
# fixture name -> the fixture holds its benchmark's name; *_judge: the same toolkit run with an LLM judge
BENCHMARKS = (
    "cv_bench",
    "qspatial",
    "robospatial",
    "embspatial",
    "3dsrbench",
    "mmbench",
    "spatialrgpt",
    "3dsrbench_judge",
    "mmbench_judge",
    "embspatial_judge",
)


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def materialize(files: dict[str, list[dict]], root: Path) -> Path:
    """Write the fixture's tables in the format their names say (as the releases ship them)."""
    for rel, rows in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame(rows)
        if path.suffix == ".parquet":
            frame.to_parquet(path, index=False)
        elif path.suffix == ".jsonl":
            frame.to_json(path, orient="records", lines=True)
        elif path.suffix == ".tsv":
            frame.to_csv(path, sep="\t", index=False)
        else:
            path.write_text(json.dumps(rows))
    return root


def judge_calls(item: dict) -> list[dict]:
    if "judge_calls" in item:
        return item["judge_calls"]
    return (
        [{"messages": item["judge_messages"], "reply": item["judge_reply"]}]
        if item.get("judge_messages")
        else []
    )


@contextmanager
def recorded_judge(items: list[dict]) -> Iterator[tuple[LLMClient | None, list[str]]]:
    """A real OpenAI-compatible endpoint (tests.openai_server, real HTTP, our real LLMClient) that answers each
    request with the reply the official run got for it (in order, when it asked more than once), and only when our
    messages are exactly the ones the official code sent; any other prompt is recorded in `unknown` and refused."""
    replies: dict[str, list[str]] = {}
    for item in items:
        for call in judge_calls(item):
            replies.setdefault(json.dumps(call["messages"], ensure_ascii=False), []).append(call["reply"])
    if not replies:
        yield None, []
        return
    expected = sum(len(v) for v in replies.values())
    unknown: list[str] = []

    def route(request: RecordedRequest) -> Reply:
        queue = replies.get(json.dumps(request.messages, ensure_ascii=False))
        if not queue:
            unknown.append(request.text)
            return error_reply(400, "prompt differs from the official one")
        return text_reply(queue.pop(0))

    with serve(route) as server:
        yield (
            LLMClient(LLMConfig(base_url=server.base_url, model="gpt-4-turbo", backoff_s=0, max_retries=0)),
            unknown,
        )
        assert len(server.requests) == expected, "the same judge calls as the official code"


def config_for(name: str, fx: dict, root: Path) -> EvalConfig:
    name = fx["benchmark"]
    extra: dict = {}
    if name == "robospatial":
        extra["robospatial_subsets"] = ["context", "compatibility", "configuration"]
    if name == "spatialrgpt":
        templates = root / "prompt_templates"
        templates.mkdir()
        for stem, text in fx["prompt_templates"].items():
            (templates / f"{stem}.txt").write_text(text)
        extra["spatialrgpt_templates"] = templates
    return EvalConfig(data={name: str(root)}, **extra)


def same(ours: float, theirs: float | None) -> bool:
    if theirs is None or (isinstance(theirs, float) and math.isnan(theirs)):
        return ours is None or math.isnan(ours)
    return math.isclose(ours, theirs, rel_tol=0, abs_tol=1e-9)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_scores_equal_the_official_code(name: str, tmp_path: Path) -> None:
    fx = fixture(name)
    assert fx["provenance"]["commit"] and fx["provenance"]["repo"]
    root = materialize(fx["files"], tmp_path / "data")
    config = config_for(name, fx, tmp_path)
    name = fx["benchmark"]
    spec = REGISTRY[name]
    items = spec.load(root, config)
    assert sorted(it.item_id for it in items) == sorted(it["id"] for it in fx["items"]), (
        "each item loaded once"
    )
    predictions = {it["id"]: it["prediction"] for it in fx["items"]}
    with recorded_judge(fx["items"]) as (client, unknown):
        results, metrics, _ = score_items(
            items, [predictions[it.item_id] for it in items], spec, config, judge_client=client
        )
    assert not unknown, f"judge prompts differ from the official ones: {unknown[:1]}"
    ours = {r.item_id: r for r in results}

    if name == "mmbench":  # the official code reports groups: every rotation of the question must be right
        groups: dict[str, bool] = {}
        for r in results:
            groups[r.group] = groups.get(r.group, True) and r.correct
        mismatched = [
            it["id"] for it in fx["items"] if groups[ours[it["id"]].group] != it["official"]["group_correct"]
        ]
    else:
        mismatched = [
            (it["id"], it["prediction"], it["official"]["correct"], ours[it["id"]].reason)
            for it in fx["items"]
            if ours[it["id"]].correct != it["official"]["correct"]
        ]
    assert not mismatched, f"{name}: verdicts differ from the official code on {mismatched}"

    expected = dict(fx["aggregate"])
    if (
        "num_total" in expected
    ):  # RoboSpatial's counters: the item count is ours, parse counts are not reported
        assert metrics["count"] == expected.pop("num_total")
        expected.pop("illformed_responses")
    wrong = {
        k: (metrics.get(k), v) for k, v in expected.items() if k not in metrics or not same(metrics[k], v)
    }
    assert not wrong, f"{name}: aggregates differ (ours, official): {wrong}"
    lenient = {k for k in metrics if k.startswith("lenient/")}
    assert lenient, "the lenient metric set is reported beside the official one"


def test_cv_bench_reads_each_table_once_and_keeps_the_images(tmp_path: Path) -> None:
    """test_2d/test_3d ship as parquet and as JSONL; the JSONL copies have no images."""
    fx = fixture("cv_bench")
    root = materialize(fx["files"], tmp_path)
    items = REGISTRY["cv_bench"].load(root, EvalConfig())
    assert len(items) == len(fx["items"]) == len({it.item_id for it in items})
    assert {it.category for it in items} >= {"2D Count", "2D Relation", "3D Depth", "3D Distance"}


def test_robospatial_download_layout_resolves_relative_images(tmp_path: Path) -> None:
    fx = fixture("robospatial")
    root = materialize(fx["files"], tmp_path)
    (tmp_path / "images").mkdir()
    first = fx["files"]["annotations.json"][0]
    (tmp_path / first["img"]).write_bytes(b"\x89PNG")
    items = REGISTRY["robospatial"].load(root, EvalConfig(robospatial_subsets=["configuration"]))
    assert items and all(it.category == "configuration" for it in items)
    assert items[0].image_path == tmp_path / first["img"] and items[0].has_image


def test_qspatial_scannet_images_from_the_authors_render_layout(tmp_path: Path) -> None:
    """The HF release has no QSpatial_scannet images; the authors' script renders them under its checkout."""
    fx = fixture("qspatial")
    root = materialize(fx["files"], tmp_path / "data")
    first = fx["files"]["data/QSpatial_scannet-00000-of-00001.parquet"][0]
    image = tmp_path / "code" / first["image_path"]
    image.parent.mkdir(parents=True)
    image.write_bytes(b"\xff\xd8")
    items = REGISTRY["qspatial"].load(root, EvalConfig(qspatial_image_root=tmp_path / "code"))
    scannet = [it for it in items if it.split == "QSpatial_scannet"]
    assert scannet[0].image_path == image and scannet[0].has_image
    assert not REGISTRY["qspatial"].load(root, EvalConfig())[0].has_image  # no root given: reported missing
