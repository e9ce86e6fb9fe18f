"""Pictures of what a stage produced: images with their 2D boxes and references, for Dagster metadata.

`draw_boxes` is also what the QA engine can use to draw the highlighted boxes that fallback references point at
(same colour names and values as `assets.references.BOX_COLORS`). `shard_thumbnail` tiles the first scenes of a
stage's shard into one PNG, so a reviewer sees at a glance whether boxes sit on objects and references make sense.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont

from assets.records import Box2D, Scene
from assets.references import BOX_COLORS
from assets.scene_stage import parse_scene, read_scene_lines
from assets.stage import DATA_ERRORS, DataError
from assets.storage import atomic_write_bytes, load_rgb, shard_dir

Color = str | tuple[int, int, int]
TILE = (320, 240)  # thumbnail tile size (width, height)
CAPTION_HEIGHT = 18
# colours for objects that carry no box colour of their own (not fallback references)
LABEL_PALETTE = ("orange", "cyan", "yellow", "magenta", "green", "pink", "blue", "red", "teal", "purple")


class LabeledBox(NamedTuple):
    box: Box2D
    label: str
    color: Color


def to_rgb(color: Color) -> tuple[int, int, int]:
    """Our fallback colour names first (they must match what the question says), then any CSS/PIL name."""
    if isinstance(color, str):
        if color in BOX_COLORS:
            return BOX_COLORS[color]
        return ImageColor.getrgb(color)[:3]  # raises ValueError on an unknown name
    return tuple(int(c) for c in color)  # type: ignore[return-value]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def draw_boxes(
    rgb: np.ndarray, boxes: Sequence[LabeledBox | tuple[Box2D, str, Color]], line_width: int | None = None
) -> np.ndarray:
    """A copy of `rgb` (H, W, 3 uint8) with each box outlined in its colour and its label on a filled tag."""
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(image)
    width = line_width or max(1, round(min(image.size) / 120))
    font = _font(max(9, min(image.size) // 22))
    placed: list[tuple[float, float, float, float]] = []
    for box, label, color in boxes:
        fill = to_rgb(color)
        # Box2D is [x0, x1) x [y0, y1); PIL's rectangle includes its end pixel
        draw.rectangle(
            (box.x0, box.y0, max(box.x0, box.x1 - 1), max(box.y0, box.y1 - 1)), outline=fill, width=width
        )
        if not label:
            continue
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        text_w, text_h = right - left + 4, bottom - top + 4
        x = min(max(0.0, box.x0), max(0.0, image.width - text_w))
        y = _free_row(placed, x, text_w, text_h, box, image.height)
        placed.append((x, y, x + text_w, y + text_h))
        draw.rectangle((x, y, x + text_w, y + text_h), fill=fill)
        text_color = (0, 0, 0) if sum(fill) > 382 else (255, 255, 255)
        draw.text((x + 2 - left, y + 2 - top), label, fill=text_color, font=font)
    return np.asarray(image)


def _free_row(
    placed: list[tuple[float, float, float, float]], x: float, w: float, h: float, box: Box2D, image_h: int
) -> float:
    """Top of a label tag: above the box if there is room, else at its top edge, moved down past tags already
    drawn so that labels never hide each other (as long as the image is tall enough)."""
    y = box.y0 - h if box.y0 - h >= 0 else box.y0
    for _ in range(len(placed) + 1):
        clash = [p for p in placed if p[0] < x + w and x < p[2] and p[1] < y + h and y < p[3]]
        if not clash:
            break
        y = max(p[3] for p in clash)
    return min(y, max(0.0, image_h - h))


def scene_boxes(scene: Scene, scale: float = 1.0) -> list[LabeledBox]:
    """Each object's 2D box (scaled), labelled by its reference when it has one, else its category."""
    boxes = []
    for k, obj in enumerate(scene.objects):
        color = obj.attributes.get("box_color") or LABEL_PALETTE[k % len(LABEL_PALETTE)]
        box = Box2D(
            x0=obj.box2d.x0 * scale, y0=obj.box2d.y0 * scale, x1=obj.box2d.x1 * scale, y1=obj.box2d.y1 * scale
        )
        boxes.append(LabeledBox(box, obj.reference or obj.category, color))
    return boxes


def scene_tile(root: Path, scene: Scene, tile: tuple[int, int] = TILE) -> Image.Image:
    """The scene's image fitted into a tile, boxes drawn at tile resolution (readable labels), scene id below."""
    rgb = load_rgb(Path(root) / scene.image_file)
    scale = min(tile[0] / rgb.shape[1], (tile[1] - CAPTION_HEIGHT) / rgb.shape[0])
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    resized = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
    drawn = Image.fromarray(draw_boxes(resized, scene_boxes(scene, scale)))
    canvas = Image.new("RGB", tile, (32, 32, 32))
    canvas.paste(drawn, ((tile[0] - size[0]) // 2, 0))
    draw = ImageDraw.Draw(canvas)
    caption = f"{scene.scene_id} ({len(scene.objects)} objects)"
    draw.text((4, tile[1] - CAPTION_HEIGHT + 3), caption, fill=(230, 230, 230), font=_font(12))
    return canvas


def shard_thumbnail(root: Path, stage: str, shard: str, out_path: Path, max_scenes: int = 4) -> Path:
    """Tile the first `max_scenes` drawable scenes of `<root>/<stage>/<shard>/scenes.jsonl` into a PNG at
    `out_path` (written atomically). Malformed records and unreadable images are skipped; none at all raises."""
    tiles = []
    for line in read_scene_lines(shard_dir(root, stage, shard) / "scenes.jsonl"):
        if len(tiles) >= max_scenes:
            break
        try:
            tiles.append(scene_tile(root, parse_scene(line)))
        except DATA_ERRORS:
            continue
    if not tiles:
        raise DataError(f"nothing to draw: no readable scene in {stage}/{shard}")
    cols = min(2, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    sheet = Image.new("RGB", (cols * TILE[0], rows * TILE[1]), (16, 16, 16))
    for k, tile in enumerate(tiles):
        sheet.paste(tile, ((k % cols) * TILE[0], (k // cols) * TILE[1]))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    atomic_write_bytes(Path(out_path), buf.getvalue())
    return Path(out_path)
