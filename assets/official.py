"""The official HiSpatial shard format, read and written (microsoft/HiSpatial, hispatial/data/vqa_dataset.py).

An official shard is a tar read by webdataset: members are grouped into samples by key (the member path up to the
first dot of its file name) and, for the in-the-wild streams (Objects365 / COYO), each sample has::

    <key>.jpg             the RGB image
    <key>.png             16-bit depth in the MoGe convention (assets.storage.encode_depth_png), near/far in text
    <key>.intrinsics.pt   a 3x3 float tensor of *normalised* intrinsics (fx / W, cx / W, fy / H, cy / H), as
                          utils3d.numpy.depth_to_points takes them
    <key>.pt              the QA: {"<level>_<name>_list": [item, ...], "metadata...": ...}; an item is
                          {"qa_type", "object", "qa_pairs": [{"question", "answer", "options", "format",
                          "qa_type"}, ...]} or {"qa_type", "question", "answer"} / {"prefix", "suffix"}

`hispatial_shard` imports such tars as a `source_images` shard (every sample a scene; image and depth bytes kept
as they are, QA kept as JSON beside them); `export_official_shard` writes one of our QA shards in that layout so the
official trainer can train on it (`python -m assets.official export --root data --shard S --out S.tar`).
`.pt` members are read with `torch.load(weights_only=True)`: plain tensors, dicts, lists, strings and numbers only.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import assets.sources as sources
from assets.records import Intrinsics, QAFormat, QAPair, Scene, Task
from assets.stage import DataError, StageReport
from assets.storage import (
    decode_depth_png,
    encode_depth_png,
    encode_jpeg,
    read_depth_codes,
    read_scenes,
    shard_dir,
)

# webdataset's split of a member path into (key, extension): the extension starts at the file name's first dot
_KEY_EXT = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")

# Our tasks -> the official qa_type their items carry. The official in-the-wild sampler draws an item by its
# qa_type's weight (WildSampleTransform.DEFAULT_QA_TYPE_WEIGHTS); a type outside that table is never drawn. L0
# questions are not exported: the official loader asks them online from the point map ("level0").
OFFICIAL_QA_TYPE: dict[Task, str] = {
    Task.ORIENTATION: "vqa_orientation",
    Task.SIZE: "vqa_object_size_single",
    Task.LOCALIZATION: "vqa_query_aabb",
    Task.RELATIVE_DIRECTION: "vqa_object_direction_multi",
    Task.RELATIVE_DISTANCE: "vqa_distance_multi",
    Task.RELATIONAL_COMPARISON: "vqa_object_relation_multi",
    Task.PERSPECTIVE_TAKING: "vqa_relative_position_new_perspective",
    Task.SPATIAL_COUNTING: "vqa_counting_objects",
    Task.PROBLEM_SOLVING: "problem_solving",  # only the official CA-1M stream samples it
}
OFFICIAL_FORMAT = {
    QAFormat.FREE_FORM: "text",
    QAFormat.MULTIPLE_CHOICE: "mcq",
    QAFormat.TRUE_FALSE: "true_false",
}
_REFERRING_KEYS = [
    ("referring", "raw"),
    ("referring_i", "raw_i"),
    ("referring_j", "raw_j"),
    ("referring_k", "raw_k"),
    ("referring_l", "raw_l"),
    ("referring_m", "raw_m"),
    ("referring_n", "raw_n"),
]


# ------------------------------------------------------------------------------------------ reading


@dataclass
class OfficialSample:
    """One sample of an official tar, decoded as the official loader decodes it."""

    key: str
    image: bytes
    rgb: np.ndarray  # (H, W, 3) uint8
    depth_png: bytes | None
    depth: np.ndarray | None  # (H, W) float32 meters, NaN unknown, +inf infinite
    intrinsics_normalised: np.ndarray  # (3, 3) float64
    qa: dict = field(default_factory=dict)

    @property
    def intrinsics(self) -> Intrinsics:
        h, w = self.rgb.shape[:2]
        k = self.intrinsics_normalised
        return Intrinsics(fx=k[0, 0] * w, fy=k[1, 1] * h, cx=k[0, 2] * w, cy=k[1, 2] * h, width=w, height=h)


def group_tar_members(tar_path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) per sample, in tar order, grouping consecutive members by key as webdataset's
    `tarfile_to_samples` does (extensions lower-cased; non-files and names without an extension skipped)."""
    with tarfile.open(tar_path) as tar:
        key, parts = None, {}
        for member in tar:
            match = _KEY_EXT.match(member.name) if member.isfile() else None
            if match is None:
                continue
            member_key, ext = match.group(1), match.group(2).lower()
            if member_key != key or ext in parts:
                if key is not None:
                    yield key, parts
                key, parts = member_key, {}
            fh = tar.extractfile(member)
            parts[ext] = fh.read() if fh is not None else b""
        if key is not None:
            yield key, parts


def load_pt(data: bytes, what: str) -> object:
    """A `.pt` member, safely: only tensors and plain containers unpickle (weights_only=True)."""
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError/RuntimeError with the offending global named
        raise DataError(
            f"{what}: not loadable with weights_only=True: {str(err).splitlines()[0][:200]}"
        ) from err


def to_plain(value: object) -> object:
    """Tensors and numpy values -> lists and numbers, so the QA can be stored as JSON."""
    if isinstance(value, torch.Tensor | np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


def parse_official_sample(key: str, parts: dict[str, bytes]) -> OfficialSample:
    """Decode one sample the way the official o365/COYO pipeline does (rename jpg/png/intrinsics.pt/pt, then
    decode); a missing or undecodable member raises DataError naming it."""
    missing = [ext for ext in ("jpg", "intrinsics.pt", "pt") if ext not in parts]
    if missing:
        raise DataError(f"sample {key}: missing {', '.join(missing)} (members: {sorted(parts)})")
    try:
        with Image.open(io.BytesIO(parts["jpg"])) as img:
            rgb = np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"sample {key}: unreadable image: {err}") from err
    depth = None
    if "png" in parts:
        try:
            depth = decode_depth_png(parts["png"])
        except (OSError, SyntaxError, ValueError) as err:
            raise DataError(f"sample {key}: unreadable depth PNG: {err}") from err
        if depth.shape != rgb.shape[:2]:
            raise DataError(f"sample {key}: depth {depth.shape} does not match image {rgb.shape[:2]}")
    k = load_pt(parts["intrinsics.pt"], f"sample {key} intrinsics")
    k = np.asarray(k.tolist() if isinstance(k, torch.Tensor) else k, dtype=np.float64)
    if k.shape != (3, 3) or not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise DataError(f"sample {key}: intrinsics must be a finite 3x3 matrix with positive focals, got {k}")
    if max(k[0, 0], k[1, 1]) > 50:
        raise DataError(
            f"sample {key}: intrinsics look like pixels (fx={k[0, 0]}); official shards store them "
            "normalised by the image size"
        )
    qa = load_pt(parts["pt"], f"sample {key} QA")
    if not isinstance(qa, dict):
        raise DataError(f"sample {key}: QA is a {type(qa).__name__}, expected a dict of level lists")
    return OfficialSample(key, parts["jpg"], rgb, parts.get("png"), depth, k, qa)


def read_official_tar(tar_path: Path) -> Iterator[OfficialSample | DataError]:
    """Every sample of an official tar, or the DataError that says why it could not be read."""
    for key, parts in group_tar_members(Path(tar_path)):
        try:
            yield parse_official_sample(key, parts)
        except DataError as err:
            yield err


def count_qa_items(qa: dict) -> int:
    return sum(len(v) for k, v in qa.items() if "metadata" not in k and isinstance(v, list))


def hispatial_shard(root: Path, shard: str, tars: Sequence[Path], source: str = "hispatial") -> StageReport:
    """Import official HiSpatial tars as a `source_images` shard: one scene per sample, the JPEG and the depth PNG
    copied byte for byte (the depth codec is the official one), intrinsics de-normalised to pixels and the QA kept
    as `qa/<scene_id>.json` (metadata `qa_file`, `num_qa`). A sample that cannot be read is a rejection."""
    if not tars:
        raise DataError(f"no .tar files to import for shard {shard}")
    samples = [(f"{Path(t).name}:{i}", s) for t in tars for i, s in enumerate(read_official_tar(Path(t)))]

    def item(item_id: str, sample: OfficialSample | DataError) -> sources._Item:
        def build(tmp: Path) -> Scene:
            if isinstance(sample, DataError):
                raise sample
            sid = sources._scene_id(shard, sample.key)
            images = tmp / "images"
            if sample.image[:3] == b"\xff\xd8\xff":
                (images / f"{sid}.jpg").write_bytes(sample.image)
            else:  # webdataset's ".jpg" member that is some other format: stored as JPEG like other sources
                (images / f"{sid}.jpg").write_bytes(encode_jpeg(sample.rgb, quality=92))
            depth_file = None
            if sample.depth_png is not None:
                (tmp / "depth").mkdir(exist_ok=True)
                (tmp / "depth" / f"{sid}.png").write_bytes(sample.depth_png)
                depth_file = f"{sources.STAGE}/{shard}/depth/{sid}.png"
            (tmp / "qa").mkdir(exist_ok=True)
            (tmp / "qa" / f"{sid}.json").write_text(json.dumps(to_plain(sample.qa)))
            metadata: dict[str, float | int | str | bool] = {
                "original_key": sample.key,
                "tar": item_id.split(":", 1)[0],
                "qa_file": f"{sources.STAGE}/{shard}/qa/{sid}.json",
                "num_qa": count_qa_items(sample.qa),
            }
            return Scene(
                scene_id=sid,
                source=source,
                shard=shard,
                intrinsics=sample.intrinsics,
                image_file=f"{sources.STAGE}/{shard}/images/{sid}.jpg",
                depth_file=depth_file,
                metadata=metadata,
            )

        return sources._Item(item_id, build)

    return sources._write_shard(root, shard, source, (item(i, s) for i, s in samples))


# ------------------------------------------------------------------------------------------ writing


def _strip_listed_options(question: str, options: Sequence[str]) -> str:
    """The question without the option lines our generator writes in (the official loader lists them itself)."""
    lines = [line for line in question.split("\n") if not any(opt and opt in line for opt in options)]
    return "\n".join(lines).strip()


_OPTION_LABEL = re.compile(r"^\s*(\(?[A-Za-z]\)|[A-Za-z][.:]|\(?\d+[).:]|\(?[IVXivx]+[).:])\s+")


def official_qa_pair(pair: QAPair) -> dict[str, object]:
    """One of our pairs as an official `qa_pairs` entry: MCQ options unlabelled with the answer equal to one of
    them (the official loader shuffles and labels options itself), true/false answers "True"/"False"."""
    fmt = OFFICIAL_FORMAT[QAFormat(pair.format)]
    entry: dict[str, object] = {
        "question": pair.question,
        "answer": pair.answer,
        "format": fmt,
        "qa_type": pair.subtask or pair.task.value,
    }
    if pair.format == QAFormat.MULTIPLE_CHOICE:
        options = [_OPTION_LABEL.sub("", opt).strip() for opt in pair.options]
        entry["question"] = _strip_listed_options(pair.question, pair.options)
        entry["options"] = options
        entry["answer"] = options[pair.correct_index] if pair.correct_index is not None else pair.answer
    elif pair.format == QAFormat.TRUE_FALSE:
        entry["answer"] = "True" if pair.answer.strip().lower() in ("true", "yes") else "False"
    return entry


def official_object(pair: QAPair) -> dict[str, object] | None:
    """The boxes a pair draws, as the official `object` dict: referring texts that name the colour (the official
    loader draws a box only when its referring text says "(highlighted by the <colour> box)") and raw pixel boxes."""
    if not pair.draw_boxes:
        return None
    obj: dict[str, object] = {}
    for (ref_key, raw_key), box in zip(_REFERRING_KEYS, pair.draw_boxes, strict=False):
        named = [r for r in pair.references if f"highlighted by the {box.color} box" in r]
        obj[ref_key] = named[0] if named else f"the object (highlighted by the {box.color} box)"
        b = box.box2d
        obj[raw_key] = {"raw_bbox": [b.x0, b.y0, b.x1, b.y1]}
    return obj


def official_qa(pairs: Sequence[QAPair]) -> dict[str, list[dict]]:
    """A scene's pairs as the official QA dict: one item per (task, objects, drawn boxes) group, under
    `<level>_<task>_list`; L0 pairs are left out (the official loader asks L0 online)."""
    groups: dict[tuple, list[QAPair]] = {}
    for pair in pairs:
        if pair.task not in OFFICIAL_QA_TYPE:
            continue
        boxes = tuple((b.color, b.box2d.x0, b.box2d.y0, b.box2d.x1, b.box2d.y1) for b in pair.draw_boxes)
        groups.setdefault((pair.level.value, pair.task, tuple(pair.object_ids), boxes), []).append(pair)
    qa: dict[str, list[dict]] = {}
    for (level, task, _, _), members in groups.items():
        item = {
            "qa_type": OFFICIAL_QA_TYPE[task],
            "object": official_object(members[0]),
            "qa_pairs": [official_qa_pair(p) for p in members],
        }
        qa.setdefault(f"level{level.removeprefix('L')}_{task.value}_list", []).append(item)
    return qa


def normalised_intrinsics(intrinsics: Intrinsics) -> torch.Tensor:
    w, h = intrinsics.width, intrinsics.height
    return torch.tensor(
        [
            [intrinsics.fx / w, 0.0, intrinsics.cx / w],
            [0.0, intrinsics.fy / h, intrinsics.cy / h],
            [0.0, 0.0, 1.0],
        ],
        dtype=torch.float32,
    )


def _pt_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _official_depth_png(path: Path) -> bytes:
    """The depth PNG in the official codec: copied when it already is, re-encoded from a legacy file."""
    data = path.read_bytes()
    if read_depth_codes(data)[3] == "moge":
        return data
    return encode_depth_png(decode_depth_png(data))


@dataclass
class ExportReport:
    path: Path
    samples: int
    items: int
    pairs: int
    skipped: dict[str, int]


def export_official_shard(
    root: Path, shard: str, out: Path, scene_stage: str = "object_references"
) -> ExportReport:
    """Write `qa_shards/<shard>` with its scenes as one official tar (`out`, written atomically, members in a
    fixed order with zeroed times, so the same shard gives the same bytes). Scenes without a depth map or without
    an exportable pair are skipped and counted."""
    import pyarrow.parquet as pq

    from assets.qa.shards import shard_parquet, table_to_pairs  # the QA shard format's own reader

    root, out = Path(root), Path(out)
    qa_path = shard_parquet(root, shard)
    scenes_path = shard_dir(root, scene_stage, shard) / "scenes.jsonl"
    for path in (qa_path, scenes_path):
        if not path.exists():
            raise DataError(f"{path} does not exist: materialize {path.parent.parent.name} for {shard} first")
    scenes = {s.scene_id: s for s in read_scenes(scenes_path)}
    by_scene: dict[str, list[QAPair]] = {}
    for pair in table_to_pairs(pq.read_table(qa_path)):
        by_scene.setdefault(pair.scene_id, []).append(pair)
    skipped = {"no_scene": 0, "no_depth": 0, "no_exportable_pair": 0}
    samples = items = pairs = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        with tarfile.open(tmp_name, "w", format=tarfile.USTAR_FORMAT) as tar:
            for scene_id in sorted(by_scene):
                scene = scenes.get(scene_id)
                if scene is None:
                    skipped["no_scene"] += 1
                    continue
                if scene.depth_file is None:
                    skipped["no_depth"] += 1
                    continue
                qa = official_qa(by_scene[scene_id])
                if not qa:
                    skipped["no_exportable_pair"] += 1
                    continue
                image_path = root / scene.image_file
                image = image_path.read_bytes()
                if image[:3] != b"\xff\xd8\xff":
                    with Image.open(io.BytesIO(image)) as img:
                        image = encode_jpeg(np.asarray(img.convert("RGB")), quality=95)
                key = re.sub(
                    r"[^A-Za-z0-9_-]+", "_", scene_id
                )  # no dots: webdataset splits the key at the first
                members = [
                    ("jpg", image),
                    ("png", _official_depth_png(root / scene.depth_file)),
                    ("intrinsics.pt", _pt_bytes(normalised_intrinsics(scene.intrinsics))),
                    ("pt", _pt_bytes(qa)),
                ]
                for ext, data in members:
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    tar.addfile(info, io.BytesIO(data))
                samples += 1
                items += sum(len(v) for v in qa.values())
                pairs += sum(len(i["qa_pairs"]) for v in qa.values() for i in v)
        os.chmod(tmp_name, 0o644)  # mkstemp makes it 0600
        os.replace(tmp_name, out)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return ExportReport(out, samples, items, pairs, skipped)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assets.official", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write one QA shard as an official tar")
    export.add_argument("--root", type=Path, required=True, help="data root (qa_shards/, object_references/)")
    export.add_argument("--shard", required=True)
    export.add_argument("--out", type=Path, required=True, help="the .tar to write")
    args = parser.parse_args(argv)
    report = export_official_shard(args.root, args.shard, args.out)
    print(
        json.dumps(
            {
                "path": str(report.path),
                "samples": report.samples,
                "items": report.items,
                "pairs": report.pairs,
                "skipped": report.skipped,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
