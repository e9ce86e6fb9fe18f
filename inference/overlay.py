"""The answer drawn on the image: boxes in their colours, points with their xyz, a distance as a line.

Used by the web page; plain PIL on numpy arrays, so it is tested without a browser. What is drawn:
- each box outlined in its colour (the colour the question names), labelled "b1", "b2", ...;
- each point as a ring, labelled with the answer's xyz when the answer is a vector about one point, else the
  point map's own xyz at that pixel;
- for a length answer about two boxes (or two points), a line between their centres labelled with the parsed
  distance ("1.27 m", or "? m" when the answer gave none).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from assets.visualize import to_rgb

LINE_COLOR = (255, 0, 255)  # the measured-distance line: a colour no highlighted box uses
POINT_COLOR = (255, 255, 0)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):
        return ImageFont.load_default()


def _tag(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    fill: tuple[int, int, int],
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    bounds: tuple[int, int],
) -> None:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 6, bottom - top + 6
    x = min(max(0.0, xy[0]), max(0.0, bounds[0] - w))
    y = min(max(0.0, xy[1]), max(0.0, bounds[1] - h))
    draw.rectangle((x, y, x + w, y + h), fill=fill)
    text_color = (0, 0, 0) if sum(fill) > 382 else (255, 255, 255)
    draw.text((x + 3 - left, y + 3 - top), text, fill=text_color, font=font)


def _fmt_xyz(xyz: Sequence[float]) -> str:
    return " ".join(f"{c:.2f}m" for c in xyz)


def draw_answer(
    rgb: np.ndarray,
    points: Sequence[dict] = (),
    boxes: Sequence[dict] = (),
    kind: str = "",
    value: object = None,
    corner: Sequence[float] | None = None,
) -> np.ndarray:
    """`points` / `boxes` as in `Answer.to_dict()` ({u, v, xyz} / {box, color}); `kind` and `value` the parsed
    answer (or empty before asking: then only the marks are drawn); `corner` the first corner of a box being
    placed on the page (a cross)."""
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(image)
    scale = max(1, round(min(image.size) / 160))
    font = _font(max(10, min(image.size) // 22))
    for i, box in enumerate(boxes, 1):
        x0, y0, x1, y1 = box["box"]
        color = to_rgb(box.get("color") or "red")
        draw.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), outline=color, width=2 * scale)
        _tag(draw, (x0, y0), f"b{i}", color, font, image.size)
    centres = [((b["box"][0] + b["box"][2]) / 2, (b["box"][1] + b["box"][3]) / 2) for b in boxes]
    for i, point in enumerate(points, 1):
        u, v = point["u"], point["v"]
        r = 4 * scale
        draw.ellipse((u - r, v - r, u + r, v + r), outline=POINT_COLOR, width=2 * scale)
        xyz = value if kind == "vector" and len(points) == 1 and isinstance(value, list) else point.get("xyz")
        label = f"p{i}" + (f": {_fmt_xyz(xyz)}" if xyz else "")
        _tag(draw, (u + r + 2, v - r), label, POINT_COLOR, font, image.size)
    if corner is not None:
        cu, cv, r = corner[0], corner[1], 5 * scale
        draw.line((cu - r, cv, cu + r, cv), fill=POINT_COLOR, width=scale)
        draw.line((cu, cv - r, cu, cv + r), fill=POINT_COLOR, width=scale)
    if kind == "length":
        ends = centres if len(centres) >= 2 else [(p["u"], p["v"]) for p in points]
        if len(ends) >= 2:
            (ax, ay), (bx, by) = ends[0], ends[1]
            draw.line((ax, ay, bx, by), fill=LINE_COLOR, width=3 * scale)
            label = f"{value:.2f} m" if isinstance(value, int | float) else "? m"
            _tag(draw, ((ax + bx) / 2, (ay + by) / 2), label, LINE_COLOR, font, image.size)
    return np.asarray(image)
