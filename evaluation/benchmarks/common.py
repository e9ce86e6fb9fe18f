"""What every loader shares: finding the data (local path or Hugging Face dataset id), reading the released table
formats (parquet, TSV, CSV, JSON, JSONL), decoding the image encodings they use, and the prompt for an option list.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from assets.stage import DataError

MCQ_INSTRUCTION = "Answer with the option's letter from the given choices directly."
LETTERS = "ABCDEFGH"


def resolve_source(spec: str | Path) -> Path:
    """A local file/directory as given, or a Hugging Face dataset id ("owner/name") fetched to the local hub
    cache. Fetching goes through huggingface_hub, so HF_HUB_OFFLINE and HF_HOME are honoured."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    text = str(spec)
    if re.fullmatch(r"[\w.-]+/[\w.-]+", text):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(repo_id=text, repo_type="dataset"))
        except Exception as err:  # hub errors are many types; all mean "not available here"
            raise DataError(f"dataset {text!r} is neither a local path nor downloadable: {err}") from err
    raise DataError(f"benchmark data not found: {text}")


TABLE_SUFFIXES = (".parquet", ".tsv", ".csv", ".jsonl", ".json")


def find_tables(root: Path, patterns: Sequence[str] = ("*",)) -> list[Path]:
    """Table files under `root` (or `root` itself) whose name matches any glob pattern, sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    found = {
        p
        for pattern in patterns
        for p in root.rglob(pattern)
        if p.is_file()
        and p.suffix.lower() in TABLE_SUFFIXES
        and not any(part.startswith(".") for part in p.parts[len(root.parts) :])
    }
    return sorted(found)


_PREFERENCE = (".parquet", ".jsonl", ".json", ".tsv", ".csv")


def one_copy_per_table(tables: Sequence[Path]) -> list[Path]:
    """Releases ship some tables twice (CV-Bench: test_2d.parquet and test_2d.jsonl, the latter without images):
    keep one file per name, the best format first (parquet, then JSONL, JSON, TSV, CSV), so no item loads twice."""
    best: dict[tuple[Path, str], Path] = {}
    for path in tables:
        key = (path.parent, path.stem)
        if key not in best or _PREFERENCE.index(path.suffix.lower()) < _PREFERENCE.index(
            best[key].suffix.lower()
        ):
            best[key] = path
    return sorted(best.values())


def read_table(path: Path) -> pd.DataFrame:
    """Read a released table in its own format. TSVs are read with every column as text (VLMEvalKit writes
    option columns that pandas would otherwise turn into floats) and empty cells as NaN."""
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".tsv":
            return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=True)
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str)
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        if suffix == ".json":
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if isinstance(data, dict):  # {"data": [...]} or {id: record}
                data = data.get("data", data.get("annotations", list(data.values())))
            return pd.DataFrame(list(data))
    except (ValueError, OSError) as err:
        raise DataError(f"cannot read {path}: {err}") from err
    raise DataError(f"unsupported table format: {path}")


def is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def decode_image(value: object) -> bytes | None:
    """Image bytes from the encodings the releases use: HF image struct {"bytes", "path"}, raw bytes, or a
    base64 string (with or without a data-URL prefix). None when absent or undecodable."""
    if is_missing(value):
        return None
    if isinstance(value, dict):
        raw = value.get("bytes")
        if raw:
            return bytes(raw)
        p = value.get("path")
        return Path(p).read_bytes() if p and Path(p).is_file() else None
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        text = value.split(",", 1)[1] if value.startswith("data:") else value
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return None
        return raw or None
    return None


def vlmevalkit_images(frame: pd.DataFrame) -> dict[str, object]:
    """VLMEvalKit TSVs store each distinct image once: a row whose `image` is another row's `index` (a short
    number) shares that row's image. Returns index -> resolved image value."""
    if "image" not in frame.columns or "index" not in frame.columns:
        return {}
    by_index = {str(i): img for i, img in zip(frame["index"], frame["image"], strict=True)}
    resolved = {}
    for idx, img in by_index.items():
        seen = 0
        while isinstance(img, str) and len(img) < 64 and img in by_index and seen < 4:
            img = by_index[img]
            seen += 1
        resolved[idx] = img
    return resolved


def format_options(
    question: str, options: Sequence[str], labels: Sequence[str] | None = None, hint: str = ""
) -> str:
    """The prompt for a multiple-choice item: optional hint, the question, one "A. option" line per option,
    and the standard instruction to answer with the letter."""
    labels = list(labels) if labels else [LETTERS[i] for i in range(len(options))]
    lines = []
    if hint:
        lines.append(f"Hint: {hint}")
    lines.append(question.strip())
    lines += [f"{label}. {option}" for label, option in zip(labels, options, strict=True)]
    lines.append(MCQ_INSTRUCTION)
    return "\n".join(lines)


def letter_index(answer: object, n: int) -> int | None:
    """'(B)', 'B', 'b.' -> 1; None when it is not one of the first n letters."""
    if is_missing(answer):
        return None
    token = str(answer).strip().strip("().: ").upper()
    if len(token) == 1 and token in LETTERS[:n]:
        return LETTERS.index(token)
    return None
