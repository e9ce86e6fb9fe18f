"""Batch mode: many questions from a folder of images or a JSONL file, answered in batches, written as a
predictions file that `python -m evaluation score --predictions` reads as is.

JSONL input, one request per line (paths relative to the file's folder)::

    {"id": "q1", "image": "imgs/room.jpg", "question": "How far is {b1} from {b2}?", "boxes": [[10, 20, 200, 300],
     [300, 40, 500, 400]], "points": [[120, 80]], "options": [...], "kind": "length",
     "depth": "depth/room.png", "intrinsics": {"fx": ..., "fy": ..., "cx": ..., "cy": ...}}

`python -m evaluation items` output is accepted unchanged (`prompt`, `image_png_b64`, `options`, `labels`,
`kind`): its prompts are sent as rendered, so a batch run over them scores like the built-in model predictor.
A folder is every image in it (sorted), all asked the same question; the id is the file name.

Output: one line per request, `{"id", "prediction", "kind", "value", "unit", "reason", "error"}`; a request with
bad input gets `"prediction": null` and its error (the scorer counts it wrong; nothing drops out).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from assets.storage import write_jsonl
from inference.asker import Answer, AskRequest, SpatialAsker
from inference.inputs import AskInputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_REQUEST_FIELDS = (
    "question",
    "prompt",
    "points",
    "boxes",
    "options",
    "labels",
    "kind",
    "depth",
    "intrinsics",
)


def is_batch_source(path: Path | str) -> bool:
    path = Path(path)
    return path.is_dir() or path.suffix.lower() == ".jsonl"


def read_requests(source: Path | str, question: str | None = None) -> list[AskRequest]:
    """Requests from a folder of images (all asked `question`) or a JSONL file; a malformed line raises
    AskInputError naming the line (a silently skipped line would shrink the run)."""
    source = Path(source)
    if source.is_dir():
        if not question:
            raise AskInputError(f"{source} is a folder: give the question to ask about every image in it")
        images = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise AskInputError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)})")
        return [AskRequest(image=p, question=question, id=p.name) for p in images]
    if not source.is_file():
        raise AskInputError(f"{source}: no such file or folder")
    requests = []
    for lineno, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            raise AskInputError(f"{source}:{lineno}: not a JSON object ({err})") from err
        requests.append(_request(row, source.parent, question, f"{source.name}:{lineno}"))
    if not requests:
        raise AskInputError(f"{source}: no requests")
    return requests


def _request(row: dict, base: Path, question: str | None, where: str) -> AskRequest:
    image = row.get("image_png_b64") or row.get("image_b64")
    if image is None:
        name = row.get("image") or row.get("image_path")
        if not name:
            raise AskInputError(f"{where}: no image (`image`, `image_path` or `image_png_b64`)")
        image = _relative(name, base)
    fields = {k: row[k] for k in _REQUEST_FIELDS if row.get(k) is not None}
    for key in ("depth", "intrinsics"):
        if isinstance(fields.get(key), str):
            candidate = base / fields[key]
            fields[key] = str(candidate) if candidate.is_file() else fields[key]
    if not fields.get("question") and not fields.get("prompt"):
        if not question:
            raise AskInputError(f"{where}: no question (`question` or `prompt`)")
        fields["question"] = question
    return AskRequest(image=image, id=str(row.get("id", where)), **fields)


def _relative(name: str, base: Path) -> str:
    path = Path(name).expanduser()
    return str(path if path.is_absolute() else base / path)


def prediction_row(request: AskRequest, result: Answer | AskInputError) -> dict:
    if isinstance(result, AskInputError):
        return {
            "id": request.id,
            "prediction": None,
            "kind": request.kind,
            "value": None,
            "unit": None,
            "reason": "",
            "error": str(result),
        }
    return {
        "id": request.id,
        "prediction": result.answer,
        "kind": result.kind,
        "value": result.value,
        "unit": result.unit,
        "reason": result.reason,
        "error": None,
    }


def run_batch(
    asker: SpatialAsker,
    requests: Sequence[AskRequest],
    out_path: Path | str,
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, int]:
    """Answer every request (batched generation, a progress bar on the terminal) and write the predictions file
    atomically. Returns {"answered", "failed"}."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("asking"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=not progress
    ) as bar:
        task = bar.add_task("ask", total=len(requests))
        results = asker.ask_many(requests, batch_size, on_progress=lambda n: bar.advance(task, n))
    rows = [prediction_row(r, a) for r, a in zip(requests, results, strict=True)]
    write_jsonl(Path(out_path), rows)
    failed = sum(1 for row in rows if row["error"])
    return {"answered": len(rows) - failed, "failed": failed}
