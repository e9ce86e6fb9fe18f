"""Turn a stage's report into Dagster metadata: counts, rejections by reason, a preview table, a thumbnail, and a
data version from the stage's content digest. Kept apart from assets.py so each asset stays a few lines."""

from __future__ import annotations

import base64
import io
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from PIL import Image

from assets.stage import StageReport
from assets.storage import directory_digest

PREVIEW_ROWS = 8
INLINE_IMAGE_MAX_BYTES = 100_000


def markdown_table(
    rows: Sequence[Mapping[str, Any]], max_rows: int = PREVIEW_ROWS, max_cell: int = 80
) -> str:
    """A GitHub-markdown table of the first rows (Dagster renders MetadataValue.md in the asset page)."""
    rows = list(rows)[:max_rows]
    if not rows:
        return "_(empty)_"
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)

    def cell(value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        text = text.replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= max_cell else text[: max_cell - 1] + "…"

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def rejection_table(report: StageReport, max_examples: int = 3) -> str:
    """Rejections grouped by reason (the text before the first ':' after the error type), with example items."""
    if not report.rejections:
        return "_no rejections_"
    by_reason: dict[str, list[str]] = {}
    for rejection in report.rejections:
        by_reason.setdefault(_reason_kind(rejection.reason), []).append(rejection.item)
    rows = [
        {"reason": reason, "count": len(items), "examples": ", ".join(items[:max_examples])}
        for reason, items in sorted(by_reason.items(), key=lambda kv: -len(kv[1]))
    ]
    return markdown_table(rows, max_rows=50, max_cell=120)


def _reason_kind(reason: str) -> str:
    """Collapse per-item details ("ValueError: unreadable image x.jpg: ...") to a groupable kind."""
    head = reason.split(": ", 2)
    return ": ".join(head[:2])[:100] if len(head) > 1 else reason[:100]


def content_digest(output_dir: Path) -> str:
    """The stage's content digest from `_manifest.json` (key `digest`/`content_hash`), else hashed from disk."""
    manifest_path = Path(output_dir) / "_manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        for key in ("digest", "content_digest", "content_hash", "sha256"):
            value = manifest.get(key) or (manifest.get("metadata") or {}).get(key)
            if isinstance(value, str) and value:
                return value
    return directory_digest(output_dir)


def _scalar_metadata(values: Mapping[str, object]) -> dict[str, Any]:
    """Stage-provided metadata as Dagster values: numbers and text as-is, anything else as JSON."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, bool | int | str):
            out[key] = value
        elif isinstance(value, float):
            out[key] = value if math.isfinite(value) else str(value)
        elif value is None:
            continue
        else:
            out[key] = dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))
    return out


def thumbnail_metadata(path: Path | None, inline_width: int = 384) -> dict[str, Any]:
    """The thumbnail as a path, plus a downscaled JPEG inline in markdown so the asset page shows it without
    file access (kept under INLINE_IMAGE_MAX_BYTES: event-log rows should stay small)."""
    if path is None or not Path(path).exists():
        return {}
    path = Path(path)
    out: dict[str, Any] = {"thumbnail": dg.MetadataValue.path(str(path))}
    with Image.open(path) as image:
        preview = image.convert("RGB")
        if preview.width > inline_width:
            preview = preview.resize(
                (inline_width, max(1, round(preview.height * inline_width / preview.width)))
            )
        buffer = io.BytesIO()
        preview.save(buffer, format="JPEG", quality=75, optimize=True)
    data = buffer.getvalue()
    if len(data) <= INLINE_IMAGE_MAX_BYTES:
        encoded = base64.b64encode(data).decode()
        out["thumbnail_preview"] = dg.MetadataValue.md(f"![{path.stem}](data:image/jpeg;base64,{encoded})")
    return out


def make_thumbnail(root: Path, stage: str, shard: str, explicit: Path | None) -> Path | None:
    """The report's own thumbnail, or one drawn by assets.visualize when that module is available.

    A thumbnail is a convenience: failing to draw one never fails the stage."""
    if explicit is not None:
        return Path(explicit)
    try:
        from assets.visualize import shard_thumbnail
    except ImportError:
        return None
    out_path = Path(root) / "_thumbnails" / stage / f"{shard}.png"
    try:
        result = shard_thumbnail(root, stage, shard, out_path)
    except (ValueError, OSError, KeyError) as err:
        dg.get_dagster_logger().warning(f"no thumbnail for {stage}/{shard}: {err}")
        return None
    return Path(result) if result else (out_path if out_path.exists() else None)


def stage_result(
    report: StageReport,
    root: Path,
    extra: Mapping[str, Any] | None = None,
    thumbnail: bool = True,
) -> dg.MaterializeResult:
    """MaterializeResult for one stage run: what every partitioned stage asset returns."""
    output_dir = Path(report.output_dir)
    digest = content_digest(output_dir) if output_dir.exists() else ""
    reasons = Counter(_reason_kind(r.reason) for r in report.rejections)
    metadata: dict[str, Any] = {
        "num_in": dg.MetadataValue.int(report.num_in),
        "num_out": dg.MetadataValue.int(report.num_out),
        "num_rejected": dg.MetadataValue.int(len(report.rejections)),
        "rejections": dg.MetadataValue.md(rejection_table(report)),
        "rejection_reasons": dg.MetadataValue.json(dict(reasons)),
        "preview": dg.MetadataValue.md(markdown_table(report.preview)),
        "output_dir": dg.MetadataValue.path(str(output_dir)),
        "content_digest": digest,
    }
    metadata.update(_scalar_metadata(report.metadata))
    if thumbnail:
        metadata.update(
            thumbnail_metadata(make_thumbnail(root, report.stage, report.shard, report.thumbnail))
        )
    if extra:
        metadata.update(extra)
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(digest) if digest else None)
