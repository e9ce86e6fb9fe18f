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
- **Hugging Face** (`hf/`): ``data/<split>-00000-of-0000N.parquet`` plus a `README.md` whose YAML front matter has
  a `configs:` entry, so ``datasets.load_dataset("parquet", data_files=...)`` and ``load_dataset("<dir>")`` both
  read it. Image and depth are stored as paths relative to the data root.

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

from assets.qa.formats import option_labels
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

    def as_metadata(self) -> dict[str, object]:
        return {
            "export_llava_records": self.llava_records,
            **{f"export_rows_{split}": n for split, n in self.rows.items()},
        }


def _rows(table: pa.Table | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return table.to_pylist() if isinstance(table, pa.Table) else [dict(r) for r in table]


def _draw_boxes(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    boxes = row.get("draw_boxes") or []
    return json.loads(boxes) if isinstance(boxes, str) else list(boxes)


def human_turn(row: Mapping[str, Any]) -> str:
    """The question as the model sees it: options listed (appended with labels when the text lacks them)."""
    question = str(row["question"])
    options = list(row.get("options") or [])
    if options and not all(opt in question for opt in options):
        labels = option_labels("upper", len(options))
        question += "\n" + "\n".join(f"{label} {opt}" for label, opt in zip(labels, options, strict=True))
    return question


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


def hf_readme(splits: Mapping[str, int], columns: Iterable[str], name: str = "HiSpatial spatial VQA") -> str:
    """Dataset card with the YAML `configs:` front matter the Hub and `load_dataset(<dir>)` use to find files."""
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split in splits:
        lines += [f"  - split: {split}", f"    path: data/{split}-*"]
    lines += [
        "task_categories:",
        "- visual-question-answering",
        "---",
        "",
        f"# {name}",
        "",
        "Spatial question/answer pairs generated by the HiSpatial data engine (hierarchical levels L0-L3).",
        "`image_file` and `depth_file` are paths relative to the data root the dataset was built from.",
        "",
        "| split | rows |",
        "|---|---|",
    ]
    lines += [f"| {split} | {n} |" for split, n in splits.items()]
    lines += ["", "Columns: " + ", ".join(f"`{c}`" for c in columns), ""]
    return "\n".join(lines)


def write_hf_parquet(
    out_dir: Path, splits: Mapping[str, pa.Table], rows_per_file: int = DEFAULT_ROWS_PER_FILE
) -> dict[str, list[str]]:
    """`out_dir/data/<split>-0000i-of-0000N.parquet` + `out_dir/README.md`; returns split -> relative file paths."""
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
            rel = f"data/{split}-{i:05d}-of-{n_files:05d}.parquet"
            buf = io.BytesIO()
            pq.write_table(table.slice(i * rows_per_file, rows_per_file), buf, compression="zstd")
            atomic_write_bytes(out_dir / rel, buf.getvalue())
            files[split].append(rel)
    atomic_write_text(out_dir / "README.md", hf_readme({s: t.num_rows for s, t in splits.items()}, columns))
    return files


def write_exports(
    directory: Path,
    table: pa.Table,
    splits: Mapping[str, pa.Table] | None = None,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    group_by_image: bool = False,
) -> ExportSummary:
    """Both exports into `directory` (e.g. inside the qa_dataset stage's temp directory): `llava.json`, `hf/`.

    `splits` defaults to everything as `train`.
    """
    directory = Path(directory)
    splits = dict(splits) if splits is not None else {"train": table}
    summary = ExportSummary()
    summary.llava_records = write_llava_json(directory / LLAVA_FILE, table, group_by_image=group_by_image)
    summary.hf_files = write_hf_parquet(directory / HF_DIR, splits, rows_per_file)
    summary.rows = {split: t.num_rows for split, t in splits.items()}
    return summary


def export_dataset(out_dir: Path, table: pa.Table, **kwargs: Any) -> ExportSummary:
    """`write_exports` into a fresh directory swapped in atomically: readers see the old or the new export."""
    with atomic_dir(Path(out_dir)) as tmp:
        return write_exports(tmp, table, **kwargs)
