"""qa_shards: one shard's scenes (from object_references) in, its QA pairs out as `qa_shards/<shard>/qa.parquet`.

One parquet row per `QAPair`, with an explicit pyarrow schema (`QA_SCHEMA`): list fields stay lists, the direction
is list<float64>, drawn boxes are a JSON string (they are read only when rendering the image), and the scene's
image/depth paths ride along so the training loader needs no join. Every pair is validated against the `QAPair`
schema before it is written, so a generator bug surfaces as a rejected scene with its reason, not a bad row.

Shard directory (swapped in atomically): `qa.parquet`, `skipped.jsonl` (per scene: why questions were not asked),
`rejected.jsonl` (scenes that could not be used at all), `_manifest.json` (counts per level/task/format, config).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assets.qa.config import QAConfig
from assets.qa.context import QAContext
from assets.qa.engine import generate_scene_qa
from assets.qa.quality import balance_pairs
from assets.records import DrawBox, QAPair, Scene
from assets.scene_stage import SceneLine, parse_scene, read_scene_lines
from assets.stage import DATA_ERRORS, DataError, StageReport, process_items
from assets.storage import (
    atomic_dir,
    atomic_write_json,
    directory_digest,
    load_point_map,
    load_rgb,
    shard_dir,
    write_jsonl,
)

STAGE = "qa_shards"
UPSTREAM = "object_references"
PREVIEW_ROWS = 8

QA_SCHEMA = pa.schema(
    [
        pa.field("qa_id", pa.string(), nullable=False),
        pa.field("scene_id", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("level", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("subtask", pa.string(), nullable=False),
        pa.field("format", pa.string(), nullable=False),
        pa.field("question", pa.string(), nullable=False),
        pa.field("answer", pa.string(), nullable=False),
        pa.field("options", pa.list_(pa.string()), nullable=False),
        pa.field("correct_index", pa.int32()),
        pa.field("value", pa.float64()),
        pa.field("unit", pa.string()),
        pa.field("direction", pa.list_(pa.float64())),
        pa.field("object_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("references", pa.list_(pa.string()), nullable=False),
        pa.field("draw_boxes", pa.string(), nullable=False),  # JSON list of DrawBox records
        pa.field("template_id", pa.string(), nullable=False),
        pa.field("reasoning", pa.string(), nullable=False),
        pa.field("generator", pa.string(), nullable=False),
        pa.field("image_file", pa.string(), nullable=False),  # relative to the data root, from the scene
        pa.field("depth_file", pa.string()),
    ]
)


def pairs_to_table(pairs: list[QAPair], scenes: dict[str, Scene]) -> pa.Table:
    """QAPairs (and their scenes' file paths) -> a table with `QA_SCHEMA`."""
    cols: dict[str, list] = {name: [] for name in QA_SCHEMA.names}
    for p in pairs:
        scene = scenes[p.scene_id]
        cols["qa_id"].append(p.qa_id)
        cols["scene_id"].append(p.scene_id)
        cols["shard"].append(p.shard)
        cols["level"].append(str(p.level))
        cols["task"].append(str(p.task))
        cols["subtask"].append(p.subtask)
        cols["format"].append(str(p.format))
        cols["question"].append(p.question)
        cols["answer"].append(p.answer)
        cols["options"].append(list(p.options))
        cols["correct_index"].append(p.correct_index)
        cols["value"].append(p.value)
        cols["unit"].append(p.unit)
        cols["direction"].append(list(p.direction) if p.direction is not None else None)
        cols["object_ids"].append(list(p.object_ids))
        cols["references"].append(list(p.references))
        cols["draw_boxes"].append(json.dumps([b.model_dump() for b in p.draw_boxes]))
        cols["template_id"].append(p.template_id)
        cols["reasoning"].append(p.reasoning)
        cols["generator"].append(p.generator)
        cols["image_file"].append(scene.image_file)
        cols["depth_file"].append(scene.depth_file)
    return pa.table(cols, schema=QA_SCHEMA)


def draw_boxes_column(value: str | list | None) -> list[dict]:
    """The `draw_boxes` column (a JSON string in `QA_SCHEMA`; a list where a table was built from dicts) as a
    list of DrawBox dicts: the format's one JSON column, decoded in one place."""
    if isinstance(value, str):
        return json.loads(value) if value.strip() else []
    return list(value or [])


def row_to_pair(row: dict) -> QAPair:
    """One `QA_SCHEMA` row (as `pyarrow` gives it) -> a validated QAPair; the scene file columns are dropped.

    The one decoder of the format (training, evaluation, the official converter and the exports' round trip read
    rows through it): `draw_boxes` is the only JSON column; a bad row raises a ValueError/KeyError."""
    # columns QAPair does not know (the scene file paths) are dropped; a null takes the field's default
    row = {k: v for k, v in row.items() if k in QAPair.model_fields and v is not None}
    row["draw_boxes"] = [DrawBox.model_validate(b) for b in draw_boxes_column(row.get("draw_boxes"))]
    if row.get("direction") is not None:
        row["direction"] = tuple(row["direction"])
    return QAPair.model_validate(row)


def table_to_pairs(table: pa.Table) -> list[QAPair]:
    """Inverse of `pairs_to_table` (validated records; the scene file columns are dropped); any bad row raises."""
    return [row_to_pair(row) for row in table.to_pylist()]


def read_pairs_lenient(path: Path) -> tuple[list[QAPair], list[str]]:
    """The QAPairs of one `qa.parquet`; rows that fail validation are skipped and described (`path:row: why`)."""
    pairs: list[QAPair] = []
    problems: list[str] = []
    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, ValueError) as err:
        raise DataError(f"unreadable {path}: {err}") from err
    for index, row in enumerate(rows):
        try:
            pairs.append(row_to_pair(row))
        except DATA_ERRORS as err:
            problems.append(f"{path}:{index}: {type(err).__name__}: {err}")
    return pairs, problems


def shard_parquet(root: Path, shard: str) -> Path:
    """Where a shard's QA table lives: `<root>/qa_shards/<shard>/qa.parquet`."""
    return shard_dir(Path(root), STAGE, shard) / "qa.parquet"


def written_shards(root: Path) -> list[str]:
    """The shards that have a QA table under `root`, sorted (whether or not a release lists them)."""
    return sorted(p.parent.name for p in (Path(root) / STAGE).glob("*/qa.parquet"))


def _point_map(root: Path, scene: Scene) -> tuple[np.ndarray, np.ndarray] | str:
    if not scene.depth_file:
        return "L0: scene has no depth file"
    try:
        return load_point_map(root / scene.depth_file, scene.intrinsics)
    except (OSError, ValueError, KeyError) as err:  # unreadable depth costs only the L0 questions
        return f"L0: unreadable depth {scene.depth_file}: {type(err).__name__}: {err}"


def qa_shard(
    root: Path, shard: str, config: QAConfig | None = None, llm: object | None = None
) -> StageReport:
    """Generate and write the QA pairs of one shard; returns the report the Dagster layer turns into metadata."""
    root = Path(root)
    config = config or QAConfig()
    out_dir = shard_dir(root, STAGE, shard)
    report = StageReport(stage=STAGE, shard=shard, output_dir=out_dir)
    lines = read_scene_lines(shard_dir(root, UPSTREAM, shard) / "scenes.jsonl")
    scenes: dict[str, Scene] = {}
    skipped: list[dict[str, object]] = []

    def one(line: SceneLine) -> list[QAPair]:
        scene = parse_scene(line)
        if scene.scene_id in scenes:
            raise DataError(f"duplicate scene id {scene.scene_id}")
        points = None
        reasons: list[str] = []
        if config.l0_eval_samples > 0:
            loaded = _point_map(root, scene)
            if isinstance(loaded, str):
                reasons.append(loaded)
            else:
                points = loaded
        image = None
        if llm is not None:  # the LLM teacher of L3 problem solving sees the image (paper Sec. 3.2)
            try:
                image = load_rgb(root / scene.image_file)
            except ValueError as err:
                reasons.append(f"L3 problem solving: image not shown to the LLM: {err}")
        ctx = QAContext.build(scene, config, None, *(points or (None, None)))
        ctx.shard = shard  # rows belong to the partition being written, whatever the upstream record says
        pairs, why = generate_scene_qa(scene, ctx, config, llm=llm, image=image)
        if points is None and config.l0_eval_samples > 0:
            why = [w for w in why if w != "L0: no point map given"]
        try:  # generators build pairs unvalidated for speed; nothing reaches disk unvalidated
            pairs = [QAPair.model_validate(p.model_dump()) for p in pairs]
        except ValueError as err:
            raise DataError(f"generated pair failed validation: {err}") from err
        scenes[scene.scene_id] = scene
        reasons.extend(why)
        if reasons or not pairs:
            skipped.append({"scene_id": scene.scene_id, "num_pairs": len(pairs), "reasons": reasons})
        return pairs

    per_scene = process_items(lines, one, report, item_id=lambda line: line.item_id)
    pairs = [p for scene_pairs in per_scene for p in scene_pairs]
    balance: dict[str, object] = {}
    if config.balance_answers:  # free-form answer classes within the true/false bound, per shard
        pairs, balance = balance_pairs(pairs)
        report.metadata["balance_dropped_questions"] = balance["dropped_questions"]
    table = pairs_to_table(pairs, scenes)
    report.metadata.update(_counts(table))
    report.metadata.update(
        {
            "num_scenes": len(scenes),
            "num_pairs": table.num_rows,
            "pairs_per_scene": round(table.num_rows / len(scenes), 2) if scenes else 0.0,
            "scenes_with_skips": len(skipped),
            "include_l3": config.include_l3,
            "seed": config.seed,
        }
    )
    report.preview = [
        {k: row[k] for k in ("task", "format", "question", "answer")}
        for row in table.slice(0, PREVIEW_ROWS).to_pylist()
    ]
    with atomic_dir(out_dir) as tmp:
        pq.write_table(table, tmp / "qa.parquet", compression="zstd")
        write_jsonl(tmp / "skipped.jsonl", skipped)
        write_jsonl(tmp / "rejected.jsonl", [r.as_dict() for r in report.rejections])
        digest = directory_digest(tmp)
        report.metadata["content_digest"] = digest
        atomic_write_json(
            tmp / "_manifest.json",
            {
                **report.manifest(),
                "digest": digest,
                "config": config.model_dump(mode="json"),
                "balance": balance,
            },
        )
    return report


def _counts(table: pa.Table) -> dict[str, object]:
    """Pairs per level, task and format (flat keys such as `count_task_size`, for asset metadata)."""
    out: dict[str, object] = {}
    for column in ("level", "task", "format"):
        for key, n in sorted(Counter(table.column(column).to_pylist()).items()):
            out[f"count_{column}_{key}"] = n
    return out
