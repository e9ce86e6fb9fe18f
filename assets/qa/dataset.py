"""qa_dataset: the release over all QA shards: a manifest (shards, row counts, content digests, counts per
level/task/format, answer distributions), bar plots of the counts and answer classes, the quality report
(`assets.qa.quality`), the LLaVA and Hugging Face exports (`assets.qa.export`), and a loader that checks the digests
before concatenating. `export_subset` writes the same exports for a chosen subset (the `hispatial export` command).

The manifest pins the exact bytes of every shard's parquet, so a training run that logs the manifest digest can be
traced to the data it saw; `load_qa_dataset` refuses a shard whose bytes changed since the manifest was written.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from assets.qa import export
from assets.qa.quality import quality_report
from assets.qa.shards import QA_SCHEMA, read_pairs_lenient, shard_parquet, written_shards
from assets.records import QAPair
from assets.stage import DataError, StageReport
from assets.storage import (
    atomic_dir,
    atomic_write_bytes,
    atomic_write_json,
    directory_digest,
    read_scenes,
    shard_dir,
)

STAGE = "qa_dataset"
# The release manifest is the stage manifest every stage directory carries (assets/storage.py's layout): shards,
# their sha256, counts, the dataset digest, and `digest` (the directory's content hash) last. Releases built before
# the one rule named it `manifest.json`; readers still accept that name.
MANIFEST = "_manifest.json"
LEGACY_MANIFEST = "manifest.json"
PLOT = "counts.png"
ANSWER_PLOT = "answers.png"
QUALITY = "quality.json"
SCENES_STAGE = "object_references"  # where the scenes (intrinsics) of the QA shards are read from


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def release_digest(shard_digests: list[tuple[str, str]]) -> str:
    """The dataset digest of a release: sha256 over its (shard, parquet sha256) pairs in order."""
    return hashlib.sha256(json.dumps(shard_digests).encode()).hexdigest()


def unreleased_digest(root: Path) -> str:
    """The same digest rule over every written shard, for a root without a release (ad-hoc training data)."""
    return release_digest(
        [(shard, file_digest(shard_parquet(root, shard))) for shard in written_shards(root)]
    )


def _shard_entry(root: Path, shard: str) -> dict[str, object]:
    path = shard_parquet(root, shard)
    if not path.exists():
        raise DataError(f"{path} does not exist: materialize qa_shards for {shard} first")
    try:
        table = pq.read_table(path, columns=["level", "task", "format"])
    except (OSError, ValueError) as err:
        raise DataError(f"unreadable {path}: {err}") from err
    counts = {
        col: dict(sorted(Counter(table.column(col).to_pylist()).items()))
        for col in ("level", "task", "format")
    }
    return {
        "shard": shard,
        "path": str(path.relative_to(root)),
        "rows": table.num_rows,
        "sha256": file_digest(path),
        "counts": counts,
    }


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
    ax_task.bar(
        tasks,
        [totals["task"].get(t, 0) for t in tasks],
        color=[level_colors[TASK_LEVEL[Task(t)].value] for t in tasks],
    )
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
    dataset_digest = release_digest([(str(e["shard"]), str(e["sha256"])) for e in entries])
    manifest = {
        "shards": entries,
        "num_shards": len(entries),
        "num_rows": rows,
        "counts": {col: dict(sorted(c.items())) for col, c in totals.items()},
        "dataset_digest": dataset_digest,
        "schema": [f.name for f in QA_SCHEMA],
        "rejected": [r.as_dict() for r in report.rejections],
    }
    table = _read_entries(root, entries)
    quality = quality_report(table.to_pylist())
    manifest["answer_distribution"] = quality["answer_distribution"]
    manifest["true_false"] = quality["true_false"]
    manifest["quality"] = {
        k: quality[k]
        for k in ("leaks", "unbalanced", "duplicate_questions", "ambiguous_items", "failures", "passed")
    }
    with atomic_dir(out_dir) as tmp:
        atomic_write_json(tmp / QUALITY, quality)
        summary = export.write_exports(
            tmp,
            table,
            root=root,
            scenes=_scenes(root, [str(e["shard"]) for e in entries]),
            provenance={
                "manifest dataset_digest": dataset_digest,
                "shards": ", ".join(str(e["shard"]) for e in entries),
                "rows": rows,
            },
        )
        manifest["exports"] = {
            "llava": export.LLAVA_FILE,
            "hf": export.HF_DIR,
            "llava_records": summary.llava_records,
            "hf_files": summary.hf_files,
        }
        if rows:
            _plot_counts(totals, tmp / PLOT)
            _plot_answers(quality["answer_distribution"], quality["true_false"], tmp / ANSWER_PLOT)
        manifest.update(
            {
                "stage": STAGE,
                "shard": "all",
                "num_in": report.num_in,
                "num_out": report.num_out,
                "num_rejected": len(report.rejections),
                "digest": directory_digest(tmp),
            }
        )
        atomic_write_json(tmp / MANIFEST, manifest)
    report.thumbnail = out_dir / PLOT if rows else None
    report.metadata.update({"num_rows": rows, "num_shards": len(entries), "dataset_digest": dataset_digest})
    report.metadata.update(summary.as_metadata())
    report.metadata.update(quality_metadata(quality))
    for col, counts in totals.items():
        for key, n in sorted(counts.items()):
            report.metadata[f"count_{col}_{key}"] = n
    return report


def quality_metadata(quality: dict) -> dict[str, object]:
    """Flat metadata of a quality report: leak counts, duplicates, ambiguous items, out-of-bound classes."""
    out: dict[str, object] = {f"quality_leaks_{k}": v for k, v in quality["leaks"].items()}
    out.update(
        {
            "quality_duplicate_questions": quality["duplicate_questions"],
            "quality_ambiguous_items": quality["ambiguous_items"],
            "quality_unbalanced_classes": len(quality["unbalanced"]),
            "quality_passed": quality["passed"],
        }
    )
    return out


def _read_entries(root: Path, entries: list[dict[str, object]]) -> pa.Table:
    tables = [pq.read_table(root / str(e["path"]), schema=QA_SCHEMA) for e in entries]
    return pa.concat_tables(tables) if tables else QA_SCHEMA.empty_table()


def _scenes(root: Path, shards: list[str]) -> dict[str, object]:
    """scene_id -> Scene of the given shards (for the exports' intrinsics); shards without scenes are skipped."""
    scenes: dict[str, object] = {}
    for shard in shards:
        path = shard_dir(root, SCENES_STAGE, shard) / "scenes.jsonl"
        if path.exists():
            scenes.update({scene.scene_id: scene for scene in read_scenes(path)})
    return scenes


def _plot_answers(answers: dict[str, dict[str, int]], truth: dict[str, dict[str, int]], path: Path) -> None:
    """Stacked shares of the free-form answer classes per family and of True/False per task, as PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3, 2]})
    for ax, dist, title in (
        (axes[0], answers, "free-form answer classes (share per family)"),
        (axes[1], truth, "true/false answers (share per task)"),
    ):
        names = list(dist)
        bottoms = [0.0] * len(names)
        for j, name in enumerate(names):
            total = sum(dist[name].values()) or 1
            for k, (cls, n) in enumerate(dist[name].items()):
                ax.bar(j, n / total, bottom=bottoms[j], color=plt.cm.tab20(k % 20), edgecolor="white")
                if n / total > 0.08:
                    ax.text(j, bottoms[j] + n / total / 2, cls[:14], ha="center", va="center", fontsize=6)
                bottoms[j] += n / total
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(title)
        ax.axhline(0.5, color="black", linewidth=0.5, linestyle=":")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def export_subset(
    root: Path,
    out_dir: Path,
    *,
    levels: list[str] | None = None,
    tasks: list[str] | None = None,
    formats: list[str] | None = None,
    shards: list[str] | None = None,
    verify: bool = True,
    license: str = export.DEFAULT_LICENSE,
) -> export.ExportSummary:
    """LLaVA JSON and the HF layout of the released rows that match every given filter, into `out_dir` (swapped
    in atomically). An unknown level/task/format/shard is a DataError naming it, not an empty export."""
    frame = load_qa_dataset(root, verify=verify)
    for column, wanted in (("level", levels), ("task", tasks), ("format", formats), ("shard", shards)):
        if wanted:
            unknown = sorted(set(wanted) - set(frame[column]))
            if unknown:
                raise DataError(
                    f"no released rows with {column} {unknown}; have {sorted(set(frame[column]))}"
                )
            frame = frame[frame[column].isin(wanted)]
    if frame.empty:
        raise DataError("the chosen subset has no rows")
    table = pa.Table.from_pandas(frame, schema=QA_SCHEMA, preserve_index=False)
    chosen = sorted(set(frame["shard"]))
    return export.export_dataset(
        out_dir,
        table,
        root=Path(root),
        scenes=_scenes(Path(root), chosen),
        license=license,
        provenance={
            "subset": json.dumps({"levels": levels, "tasks": tasks, "formats": formats, "shards": shards}),
            "rows": len(frame),
        },
    )


QUALITY_EXPERIMENT = "hispatial-qa-dataset"


def read_quality(root: Path) -> dict:
    """The release's quality report (`quality.json`); DataError when the dataset was never built."""
    path = Path(root) / STAGE / QUALITY
    if not path.exists():
        raise DataError(f"{path} does not exist: build the qa_dataset first")
    return json.loads(path.read_text(encoding="utf-8"))


def manifest_path(root: Path) -> Path | None:
    """The release manifest's path (`qa_dataset/_manifest.json`, or a release's older `manifest.json`), or None
    when no release was built."""
    for name in (MANIFEST, LEGACY_MANIFEST):
        path = Path(root) / STAGE / name
        if path.exists():
            return path
    return None


def release_manifest(root: Path) -> dict:
    """The release manifest (`qa_dataset/_manifest.json`); DataError when the dataset was never built."""
    path = manifest_path(root)
    if path is None:
        raise DataError(f"{Path(root) / STAGE / MANIFEST} does not exist: build the qa_dataset first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"unreadable {path}: {err}") from err


def released_shard_paths(root: Path, verify: bool = True) -> list[Path]:
    """The `qa.parquet` of every shard the release lists, in manifest order.

    With `verify`, each file's bytes must still match the manifest's sha256 (a shard re-materialized, truncated or
    edited after the release was built needs a new dataset build); a missing or changed shard raises DataError
    naming it, so no reader silently trains or exports on other data than the release recorded."""
    root = Path(root)
    paths = []
    for entry in release_manifest(root)["shards"]:
        path = root / entry["path"]
        if not path.exists():
            raise DataError(f"shard {entry['shard']} is listed by the release but {path} does not exist")
        if verify and file_digest(path) != entry["sha256"]:
            raise DataError(
                f"shard {entry['shard']} changed since the manifest was built ({path}): "
                "rebuild the qa_dataset"
            )
        paths.append(path)
    return paths


def read_qa_pairs(root: Path) -> tuple[list[QAPair], list[str]]:
    """Every QA pair of the release as validated QAPairs, for training: shards verified against the manifest
    (a changed shard raises DataError), rows that fail validation skipped and described (`path:row: why`).

    Without a release (no `qa_dataset/_manifest.json`: the tests' and ad-hoc roots) every written shard is read,
    unverified, since there is nothing to verify against."""
    root = Path(root)
    if manifest_path(root) is not None:
        paths = released_shard_paths(root)
    else:
        paths = [shard_parquet(root, shard) for shard in written_shards(root)]
    pairs: list[QAPair] = []
    problems: list[str] = []
    for path in paths:
        shard_pairs, shard_problems = read_pairs_lenient(path)
        pairs += shard_pairs
        problems += shard_problems
    return pairs, problems


def load_qa_dataset(root: Path, verify: bool = True) -> pd.DataFrame:
    """All rows of the dataset as one DataFrame (columns of `QA_SCHEMA`), in manifest shard order.

    With `verify`, each shard's bytes must still match the manifest digest (`released_shard_paths`)."""
    frames = [
        pq.read_table(path, schema=QA_SCHEMA).to_pandas() for path in released_shard_paths(root, verify)
    ]
    if not frames:
        return QA_SCHEMA.empty_table().to_pandas()
    return pd.concat(frames, ignore_index=True)
