"""qa_dataset: the release over all QA shards: a manifest (shards, row counts, content digests, counts per
level/task/format), a bar plot of the counts, and a loader that checks the digests before concatenating.

The manifest pins the exact bytes of every shard's parquet, so a training run that logs the manifest digest can be
traced to the data it saw; `load_qa_dataset` refuses a shard whose bytes changed since the manifest was written.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from assets.qa.shards import QA_SCHEMA
from assets.qa.shards import STAGE as SHARD_STAGE
from assets.stage import DataError, StageReport
from assets.storage import atomic_dir, atomic_write_bytes, atomic_write_json, shard_dir

STAGE = "qa_dataset"
MANIFEST = "manifest.json"
PLOT = "counts.png"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _shard_entry(root: Path, shard: str) -> dict[str, object]:
    path = shard_dir(root, SHARD_STAGE, shard) / "qa.parquet"
    if not path.exists():
        raise DataError(f"{path} does not exist: materialize qa_shards for {shard} first")
    try:
        table = pq.read_table(path, columns=["level", "task", "format"])
    except (OSError, ValueError) as err:
        raise DataError(f"unreadable {path}: {err}") from err
    counts = {col: dict(sorted(Counter(table.column(col).to_pylist()).items())) for col in ("level", "task", "format")}
    return {"shard": shard, "path": str(path.relative_to(root)), "rows": table.num_rows,
            "sha256": file_digest(path), "counts": counts}


def _plot_counts(totals: dict[str, Counter], path: Path) -> None:
    """Bar charts of pairs per task (coloured by level) and per format, written atomically as PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from assets.records import TASK_LEVEL, Task

    fig, (ax_task, ax_fmt) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    tasks = [t.value for t in Task]
    level_colors = {"L0": "#4c72b0", "L1": "#55a868", "L2": "#c44e52", "L3": "#8172b2"}
    ax_task.bar(tasks, [totals["task"].get(t, 0) for t in tasks],
                color=[level_colors[TASK_LEVEL[Task(t)].value] for t in tasks])
    ax_task.set_title("QA pairs per task (colour = level)")
    ax_task.tick_params(axis="x", rotation=60)
    formats = sorted(totals["format"])
    ax_fmt.bar(formats, [totals["format"][f] for f in formats], color="#937860")
    ax_fmt.set_title("QA pairs per format")
    ax_fmt.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def build_qa_dataset(root: Path, shards: list[str]) -> StageReport:
    """Manifest and counts plot over the given shards; a missing or unreadable shard is a rejection, not a crash
    (the manifest lists only the shards it could read)."""
    root = Path(root)
    out_dir = root / STAGE
    report = StageReport(stage=STAGE, shard="all", output_dir=out_dir)
    entries = []
    for shard in sorted(set(shards)):
        report.num_in += 1
        try:
            entries.append(_shard_entry(root, shard))
        except DataError as err:
            report.reject(shard, str(err))
    report.num_out = len(entries)
    totals: dict[str, Counter] = {col: Counter() for col in ("level", "task", "format")}
    for entry in entries:
        for col, counts in entry["counts"].items():  # type: ignore[union-attr]
            totals[col].update(counts)
    rows = sum(int(e["rows"]) for e in entries)  # type: ignore[arg-type]
    dataset_digest = hashlib.sha256(json.dumps([(e["shard"], e["sha256"]) for e in entries]).encode()).hexdigest()
    manifest = {
        "shards": entries,
        "num_shards": len(entries),
        "num_rows": rows,
        "counts": {col: dict(sorted(c.items())) for col, c in totals.items()},
        "dataset_digest": dataset_digest,
        "schema": [f.name for f in QA_SCHEMA],
        "rejected": [r.as_dict() for r in report.rejections],
    }
    with atomic_dir(out_dir) as tmp:
        atomic_write_json(tmp / MANIFEST, manifest)
        if rows:
            _plot_counts(totals, tmp / PLOT)
    report.thumbnail = out_dir / PLOT if rows else None
    report.metadata.update({"num_rows": rows, "num_shards": len(entries), "dataset_digest": dataset_digest})
    for col, counts in totals.items():
        for key, n in sorted(counts.items()):
            report.metadata[f"count_{col}_{key}"] = n
    return report


def load_qa_dataset(root: Path, verify: bool = True) -> pd.DataFrame:
    """All rows of the dataset as one DataFrame (columns of `QA_SCHEMA`), in manifest shard order.

    With `verify`, each shard's bytes must still match the manifest digest (a re-materialized shard needs a new
    dataset build); a mismatch raises DataError naming the shard.
    """
    root = Path(root)
    manifest_path = root / STAGE / MANIFEST
    if not manifest_path.exists():
        raise DataError(f"{manifest_path} does not exist: build the qa_dataset first")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    frames = []
    for entry in manifest["shards"]:
        path = root / entry["path"]
        if verify and file_digest(path) != entry["sha256"]:
            raise DataError(f"shard {entry['shard']} changed since the manifest was built ({path})")
        frames.append(pq.read_table(path, schema=QA_SCHEMA).to_pandas())
    if not frames:
        return QA_SCHEMA.empty_table().to_pandas()
    return pd.concat(frames, ignore_index=True)
