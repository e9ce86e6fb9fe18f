"""Exports of the QA dataset in the two layouts other tools read: LLaVA/ShareGPT conversations and a Hugging Face
`datasets` parquet repository.

Input is a table in the `assets.qa.shards.QA_SCHEMA` layout (what `qa_shards` writes and `load_qa_dataset` returns;
QAPairs become one with `assets.qa.shards.pairs_to_table`), so every export reads exactly the rows the training
loader reads.

- **LLaVA/ShareGPT** (`llava.json`): ``[{"id", "image", "conversations": [{"from": "human", "value":
  "<image>\\n..."}, {"from": "gpt", "value": ...}]}]``. Multiple-choice options are part of the human turn (the
  generators already list them; any option missing from the text is appended with a label). `depth`, `draw_boxes`
  (boxes the question refers to by colour; a renderer must draw them on the image) and the task labels ride along as
  extra keys, which LLaVA-style loaders ignore. With `group_by_image`, pairs of one image (and one set of drawn
  boxes) become multi-turn conversations with a single `<image>` token.
- **Hugging Face** (`hf/`): ``data/<split>-00000-of-0000N.parquet`` plus a dataset card `README.md` whose YAML
  front matter has `configs:`, `license` and `dataset_info.features`, so ``load_dataset("<dir>")`` reads it. Given
  the data root (what the `qa_dataset` release does), the `default` config has one row per image with the image and
  its depth PNG embedded as `datasets.Image` features, the intrinsics and the image's QA pairs, and the flat pairs
  (image and depth as paths relative to the data root) are the `pairs` config under ``pairs/``; without it the flat
  pairs are the default config.

Every file is written atomically; `export_dataset` swaps the whole export directory in at once.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from assets.qa.formats import with_options_listed
from assets.qa.shards import draw_boxes_column
from assets.storage import atomic_dir, atomic_write_bytes, atomic_write_text

IMAGE_TOKEN = "<image>"
LLAVA_FILE = "llava.json"
HF_DIR = "hf"
DEFAULT_ROWS_PER_FILE = 200_000


@dataclass
class ExportSummary:
    llava_records: int = 0
    hf_files: dict[str, list[str]] = field(default_factory=dict)  # split -> relative parquet paths
    rows: dict[str, int] = field(default_factory=dict)  # split -> rows
    missing_images: list[str] = field(default_factory=list)  # scenes left out of the per-image config

    def as_metadata(self) -> dict[str, object]:
        return {
            "export_llava_records": self.llava_records,
            "export_missing_images": len(self.missing_images),
            **{f"export_rows_{split}": n for split, n in self.rows.items()},
        }


def _rows(table: pa.Table | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return table.to_pylist() if isinstance(table, pa.Table) else [dict(r) for r in table]


def _draw_boxes(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    return draw_boxes_column(row.get("draw_boxes"))


def human_turn(row: Mapping[str, Any]) -> str:
    """The question as the model sees it (`assets.qa.formats.with_options_listed`, the rule training and evaluation
    render our prompts with)."""
    return with_options_listed(str(row["question"]), list(row.get("options") or []), str(row["format"]))


def _meta(row: Mapping[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {key: row[key] for key in ("level", "task", "format") if row.get(key) is not None}
    if row.get("depth_file"):
        meta["depth"] = row["depth_file"]
    boxes = _draw_boxes(row)
    if boxes:
        meta["draw_boxes"] = boxes
    return meta


def llava_records(
    table: pa.Table | Sequence[Mapping[str, Any]], group_by_image: bool = False, max_turns: int = 8
) -> list[dict[str, Any]]:
    """LLaVA/ShareGPT conversation records, one per QA pair (or per image chunk with `group_by_image`)."""
    rows = _rows(table)
    if not group_by_image:
        return [
            {
                "id": row["qa_id"],
                "image": row["image_file"],
                "conversations": [
                    {"from": "human", "value": f"{IMAGE_TOKEN}\n{human_turn(row)}"},
                    {"from": "gpt", "value": str(row["answer"])},
                ],
                **_meta(row),
            }
            for row in rows
        ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:  # same image and same drawn boxes: the model sees one identical picture for every turn
        key = (row["image_file"], json.dumps(_draw_boxes(row), sort_keys=True))
        groups.setdefault(key, []).append(row)
    records = []
    for (image, _), members in groups.items():
        for start in range(0, len(members), max_turns):
            chunk = members[start : start + max_turns]
            turns = []
            for i, row in enumerate(chunk):
                prefix = f"{IMAGE_TOKEN}\n" if i == 0 else ""
                turns += [
                    {"from": "human", "value": prefix + human_turn(row)},
                    {"from": "gpt", "value": str(row["answer"])},
                ]
            meta = {k: v for k, v in _meta(chunk[0]).items() if k in ("depth", "draw_boxes")}
            records.append(
                {
                    "id": f"{chunk[0]['qa_id']}+{len(chunk) - 1}",
                    "image": image,
                    "conversations": turns,
                    "qa_ids": [r["qa_id"] for r in chunk],
                    **meta,
                }
            )
    return records


def write_llava_json(path: Path, table: pa.Table | Sequence[Mapping[str, Any]], **kwargs: Any) -> int:
    """Write `llava_records(table, **kwargs)` atomically; returns the number of records."""
    records = llava_records(table, **kwargs)
    atomic_write_text(Path(path), json.dumps(records, ensure_ascii=False, indent=1))
    return len(records)


DEFAULT_LICENSE = "apache-2.0"


def hf_readme(
    splits: Mapping[str, int],
    columns: Iterable[str],
    name: str = "HiSpatial spatial VQA",
    *,
    configs: Mapping[str, str] | None = None,
    features: list[dict[str, Any]] | None = None,
    license: str = DEFAULT_LICENSE,
    provenance: Mapping[str, Any] | None = None,
) -> str:
    """Dataset card: the YAML front matter the Hub and `load_dataset(<dir>)` read (`configs:` with the data files
    of each config, `license`, `dataset_info.features` of the default config), then how the data was made.

    `configs` maps config name -> folder ("default" -> "data" unless given)."""
    configs = dict(configs or {"default": "data"})
    lines = ["---", "configs:"]
    for config, folder in configs.items():
        lines += [f"- config_name: {config}", "  data_files:"]
        for split in splits:
            lines += [f"  - split: {split}", f"    path: {folder}/{split}-*"]
    lines += [f"license: {license}", "task_categories:", "- visual-question-answering"]
    if features:
        import yaml

        info = yaml.safe_dump({"dataset_info": {"features": features}}, sort_keys=False, width=110)
        lines += info.rstrip("\n").split("\n")
    lines += [
        "---",
        "",
        f"# {name}",
        "",
        "Spatial question/answer pairs generated by the HiSpatial data engine (hierarchical levels L0-L3: point",
        "queries and depth order, object localization/size/orientation, inter-object relations, perspective",
        "taking, counting and problem solving), in free-form, multiple-choice and true/false formats.",
        "",
    ]
    if "pairs" in configs:
        lines += [
            "- `default`: one row per image: `image` (RGB), `depth` (16-bit log-encoded z-depth PNG: depth =",
            "  near^(1-t) * far^t with t = (value - 1) / 65533, 0 = unknown, 65535 = infinitely far: MoGe's and the",
            "  official HiSpatial release's encoding; `depth_near_m`, `depth_far_m`), the pinhole",
            "  intrinsics (`fx`, `fy`, `cx`, `cy`; camera frame x right, y down, z forward, meters) and `qa`, the",
            '  image\'s question/answer pairs. Questions that name an object "highlighted by the <colour> box" need',
            "  that pair's `draw_boxes` drawn on the image.",
            "- `pairs`: one row per question/answer pair; `image_file` and `depth_file` are paths relative to the",
            "  data root the dataset was built from.",
        ]
    else:
        lines.append(
            "`image_file` and `depth_file` are paths relative to the data root the dataset was built from."
        )
    lines += ["", "## How it was made", ""]
    lines += [
        "Scenes with metric 3D ground truth or estimated geometry (point maps, gravity, gravity-aligned object",
        "boxes) get unique object references; template generators compute every answer from that geometry",
        "(docs/CONVENTIONS.md). References never name the quantity a question asks about; free-form answer",
        "classes are balanced per shard to within 1/k + 0.15 of uniform (the true/false bound).",
        "",
    ]
    lines += [
        f"Licence: `{license}` covers the generated annotations and the synthetic images; images taken from other",
        "collections keep their own licences (the `shard` column names the source shard of every row).",
        "",
    ]
    for key, value in (provenance or {}).items():
        lines.append(f"- {key}: {value}")
    lines += ["", "| split | rows |", "|---|---|"]
    lines += [f"| {split} | {n} |" for split, n in splits.items()]
    lines += ["", "Columns: " + ", ".join(f"`{c}`" for c in columns), ""]
    return "\n".join(lines)


def write_hf_parquet(
    out_dir: Path,
    splits: Mapping[str, pa.Table],
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    folder: str = "data",
) -> dict[str, list[str]]:
    """`out_dir/<folder>/<split>-0000i-of-0000N.parquet` + `out_dir/README.md` (the pairs as the default config;
    `write_exports` replaces the card when the pairs sit beside the per-image config); returns split -> relative
    file paths."""
    if rows_per_file < 1:
        raise ValueError("rows_per_file must be positive")
    out_dir = Path(out_dir)
    files: dict[str, list[str]] = {}
    columns: list[str] = []
    for split, table in splits.items():
        if not split.replace("_", "").isalnum():
            raise ValueError(f"split name {split!r} must be alphanumeric (underscores allowed)")
        columns = table.column_names
        n_files = max(1, math.ceil(table.num_rows / rows_per_file))
        files[split] = []
        for i in range(n_files):
            rel = f"{folder}/{split}-{i:05d}-of-{n_files:05d}.parquet"
            buf = io.BytesIO()
            pq.write_table(table.slice(i * rows_per_file, rows_per_file), buf, compression="zstd")
            atomic_write_bytes(out_dir / rel, buf.getvalue())
            files[split].append(rel)
    atomic_write_text(out_dir / "README.md", hf_readme({s: t.num_rows for s, t in splits.items()}, columns))
    return files


# Per-question fields kept in each image row's `qa` list (the image and depth are the row's own columns).
SCENE_QA_FIELDS = (
    "qa_id",
    "level",
    "task",
    "subtask",
    "format",
    "question",
    "answer",
    "options",
    "correct_index",
    "value",
    "unit",
    "draw_boxes",
    "template_id",
)


def scene_features() -> Any:
    """The `datasets.Features` of the per-image config: images as `Image`, depth alongside."""
    import datasets

    string, number = datasets.Value("string"), datasets.Value("float64")
    qa = {name: string for name in SCENE_QA_FIELDS}
    qa.update(options=datasets.List(string), correct_index=datasets.Value("int32"), value=number)
    return datasets.Features(
        {
            "scene_id": string,
            "shard": string,
            "image": datasets.Image(),
            "depth": datasets.Image(),
            "depth_near_m": number,
            "depth_far_m": number,
            "fx": number,
            "fy": number,
            "cx": number,
            "cy": number,
            "qa": datasets.List(qa),
        }
    )


def _scene_rows(
    table: pa.Table, root: Path, scenes: Mapping[str, Any], missing: list[str] | None = None
) -> dict[str, list[Any]]:
    """Columns of the per-image config: one row per scene of `table`, in first-appearance order. A scene whose
    image or depth file cannot be read is left out and its id appended to `missing` (its pairs stay in the
    flat `pairs` config and the LLaVA JSON)."""
    from PIL import Image

    by_scene: dict[str, list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        by_scene.setdefault(row["scene_id"], []).append(row)
    columns: dict[str, list[Any]] = {name: [] for name in scene_features()}
    for scene_id, rows in by_scene.items():
        first = rows[0]
        image_path = root / first["image_file"]
        depth_bytes, near, far = None, None, None
        try:
            image_bytes = image_path.read_bytes()
            if first.get("depth_file"):
                depth_bytes = (root / first["depth_file"]).read_bytes()
                with Image.open(io.BytesIO(depth_bytes)) as img:
                    near, far = float(img.text["near"]), float(img.text["far"])
        except (OSError, KeyError, ValueError):
            if missing is not None:
                missing.append(scene_id)
            continue
        intrinsics = getattr(scenes.get(scene_id), "intrinsics", None)
        columns["scene_id"].append(scene_id)
        columns["shard"].append(first["shard"])
        columns["image"].append({"bytes": image_bytes, "path": image_path.name})
        columns["depth"].append(
            {"bytes": depth_bytes, "path": Path(first["depth_file"]).name} if depth_bytes else None
        )
        columns["depth_near_m"].append(near)
        columns["depth_far_m"].append(far)
        for key in ("fx", "fy", "cx", "cy"):
            columns[key].append(float(getattr(intrinsics, key)) if intrinsics is not None else None)
        columns["qa"].append([{k: r.get(k) for k in SCENE_QA_FIELDS} for r in rows])
    return columns


def write_hf_scenes(
    out_dir: Path,
    splits: Mapping[str, pa.Table],
    root: Path,
    scenes: Mapping[str, Any],
    rows_per_file: int = 1000,
    missing: list[str] | None = None,
) -> dict[str, list[str]]:
    """`out_dir/data/<split>-0000i-of-0000N.parquet`, one row per image (`scene_features`), built by `datasets` so
    the parquet carries the features (`load_dataset` gives PIL images back)."""
    import datasets

    files: dict[str, list[str]] = {}
    for split, table in splits.items():
        dataset = datasets.Dataset.from_dict(
            _scene_rows(table, Path(root), scenes, missing), features=scene_features()
        )
        n_files = max(1, math.ceil(dataset.num_rows / rows_per_file))
        files[split] = []
        for i in range(n_files):
            rel = f"data/{split}-{i:05d}-of-{n_files:05d}.parquet"
            part = dataset.select(range(i * rows_per_file, min((i + 1) * rows_per_file, dataset.num_rows)))
            buf = (
                io.BytesIO()
            )  # the table's schema carries the features (`huggingface` metadata), as to_parquet
            pq.write_table(part.data.table, buf, compression="zstd")
            atomic_write_bytes(Path(out_dir) / rel, buf.getvalue())
            files[split].append(rel)
    return files


def write_exports(
    directory: Path,
    table: pa.Table,
    splits: Mapping[str, pa.Table] | None = None,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    group_by_image: bool = False,
    root: Path | None = None,
    scenes: Mapping[str, Any] | None = None,
    license: str = DEFAULT_LICENSE,
    provenance: Mapping[str, Any] | None = None,
) -> ExportSummary:
    """Both exports into `directory` (e.g. inside the qa_dataset stage's temp directory): `llava.json`, `hf/`.

    `splits` defaults to everything as `train`. With the data `root` (and the `scenes`, for intrinsics) the HF
    layout's default config holds one row per image with the image and depth embedded, and the flat pairs move
    to the `pairs` config; without it, the flat pairs are the default config.
    """
    directory = Path(directory)
    splits = dict(splits) if splits is not None else {"train": table}
    summary = ExportSummary()
    summary.llava_records = write_llava_json(directory / LLAVA_FILE, table, group_by_image=group_by_image)
    hf = directory / HF_DIR
    if root is None:
        summary.hf_files = write_hf_parquet(hf, splits, rows_per_file)
    else:
        pair_files = write_hf_parquet(hf, splits, rows_per_file, folder="pairs")
        summary.hf_files = write_hf_scenes(hf, splits, root, scenes or {}, missing=summary.missing_images)
        summary.hf_files.update({f"pairs/{split}": paths for split, paths in pair_files.items()})
        atomic_write_text(
            hf / "README.md",
            hf_readme(
                {s: t.num_rows for s, t in splits.items()},
                list(scene_features()),
                configs={"default": "data", "pairs": "pairs"},
                features=scene_features()._to_yaml_list(),
                license=license,
                provenance=provenance,
            ),
        )
    summary.rows = {split: t.num_rows for split, t in splits.items()}
    return summary


def export_dataset(out_dir: Path, table: pa.Table, **kwargs: Any) -> ExportSummary:
    """`write_exports` into a fresh directory swapped in atomically: readers see the old or the new export."""
    with atomic_dir(Path(out_dir)) as tmp:
        return write_exports(tmp, table, **kwargs)
