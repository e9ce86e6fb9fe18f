"""What a user hands `hispatial ask`, checked at the border: images, pixel points, boxes, depth maps, questions.

Every check here raises `AskInputError` with a sentence a user can act on ("point 2 (700, 10) lies outside the
640x480 image"), never a traceback from deep inside PIL or torch. Nothing here knows about the model: the
rendering of points and boxes into the question follows the training data's conventions (PaliGemma location
tokens for points, "the chair (highlighted by the red box)" with the box drawn for objects).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from assets.qa.l0 import loc_text, loc_tokens
from assets.records import Box2D, DrawBox, Intrinsics
from assets.references import BOX_COLORS
from assets.stage import DataError
from assets.storage import decode_depth_png

# Below 8 px a side there is no scene to ask about (a 1x1 "image" is a colour); above 8192 px decoding alone
# needs gigabytes (a 20,000 px square is 1.2 GB of RGB) for a model that sees 224-896 px. Both are refused from
# the header, before the pixels are decoded.
MIN_IMAGE_SIDE = 8
MAX_IMAGE_SIDE = 8192
MAX_QUESTION_CHARS = 4000


class AskInputError(DataError):
    """Bad input to `hispatial ask` (image, question, points, boxes, depth, checkpoint): the message says what."""


# ------------------------------------------------------------------------------------------ images


def load_image(source: str | Path | bytes | np.ndarray | Image.Image, name: str = "image") -> np.ndarray:
    """An (H, W, 3) uint8 RGB array from a path, raw bytes, base64 text, a PIL image or an array.

    The size is checked from the header before decoding, so a 20,000 px image is refused without allocating it.
    """
    if isinstance(source, np.ndarray):
        rgb = source
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=-1)
        if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
            raise AskInputError(f"{name}: expected an (H, W, 3) array, got shape {rgb.shape}")
        _check_size(rgb.shape[1], rgb.shape[0], name)
        return np.ascontiguousarray(rgb[..., :3].astype(np.uint8, copy=False))
    if isinstance(source, Image.Image):
        _check_size(source.width, source.height, name)
        return np.asarray(source.convert("RGB"))
    if isinstance(source, bytes):
        data, label = source, name
    else:
        text = str(source)
        path = Path(text).expanduser()
        if len(text) < 4096 and path.is_file():
            data, label = path.read_bytes(), str(path)
        elif len(text) < 4096 and (path.suffix or "/" in text):
            raise AskInputError(f"{name}: no such file: {text}")
        else:
            data, label = b64decode_image(text, name), f"{name} (base64)"
    try:
        with Image.open(io.BytesIO(data)) as img:
            _check_size(img.width, img.height, label)
            img.load()
            return np.asarray(img.convert("RGB"))
    except AskInputError:
        raise
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise AskInputError(f"{label}: unreadable image ({type(err).__name__}: {err})") from err


def b64decode_image(text: str, name: str) -> bytes:
    text = re.sub(r"^data:[^;,]*;base64,", "", text.strip())
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise AskInputError(f"{name}: not base64 image data (nor an existing file)") from err
    if not data:
        raise AskInputError(f"{name}: empty image data")
    return data


def _check_size(width: int, height: int, label: str) -> None:
    if min(width, height) < MIN_IMAGE_SIDE:
        raise AskInputError(
            f"{label}: image is {width}x{height} px; each side must be at least {MIN_IMAGE_SIDE} px"
        )
    if max(width, height) > MAX_IMAGE_SIDE:
        raise AskInputError(
            f"{label}: image is {width}x{height} px; the longest side may be at most {MAX_IMAGE_SIDE} px "
            "(downscale it first: the model sees it at its own input size anyway)"
        )


def encode_image_b64(rgb: np.ndarray, format: str = "PNG") -> str:
    """Base64 text of an image (the MLflow model's and the batch file's image transport)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buf, format=format)
    return base64.b64encode(buf.getvalue()).decode("ascii")


# ------------------------------------------------------------------------------------------ points and boxes


def parse_point(value: str | Sequence[float]) -> tuple[float, float]:
    """'120,80' or (120, 80) -> (u, v) pixel coordinates (column, row)."""
    numbers = _numbers(value, "point")
    if len(numbers) != 2:
        raise AskInputError(f"point {value!r}: expected two numbers u,v (column, row in pixels)")
    return numbers[0], numbers[1]


def parse_box(value: str | Sequence | dict) -> tuple[Box2D, str | None, str | None]:
    """'x0,y0,x1,y1[:label[:colour]]', a list of four numbers, or {"box": [...], "label", "color"}
    -> (Box2D, label or None, colour or None)."""
    label = color = None
    if isinstance(value, dict):
        label, color = value.get("label"), value.get("color")
        value = value.get("box", value.get("bbox"))
        if value is None:
            raise AskInputError("box object needs a 'box' field [x0, y0, x1, y1]")
    elif isinstance(value, str) and ":" in value:
        value, *rest = value.split(":")
        label = rest[0] or None
        color = rest[1] if len(rest) > 1 and rest[1] else None
    numbers = _numbers(value, "box")
    if len(numbers) != 4:
        raise AskInputError(f"box {value!r}: expected four numbers x0,y0,x1,y1 in pixels")
    x0, y0, x1, y1 = numbers
    if not (x1 > x0 and y1 > y0):
        raise AskInputError(f"box {value!r}: needs x1 > x0 and y1 > y0")
    return Box2D(x0=x0, y0=y0, x1=x1, y1=y1), label, color


def _numbers(value: object, what: str) -> list[float]:
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,\s]+", value.strip().strip("()[]")) if p]
    elif isinstance(value, Sequence):
        parts = list(value)
    else:
        raise AskInputError(f"{what} {value!r}: expected numbers")
    try:
        numbers = [float(p) for p in parts]
    except (TypeError, ValueError) as err:
        raise AskInputError(f"{what} {value!r}: expected numbers") from err
    if not all(np.isfinite(numbers)):
        raise AskInputError(f"{what} {value!r}: numbers must be finite")
    return numbers


def check_points(points: Sequence[tuple[float, float]], width: int, height: int) -> None:
    for i, (u, v) in enumerate(points, 1):
        if not (0 <= u < width and 0 <= v < height):
            raise AskInputError(
                f"point {i} ({u:g}, {v:g}) lies outside the {width}x{height} image "
                f"(u must be in [0, {width}), v in [0, {height}))"
            )


def check_boxes(boxes: Sequence[Box2D], width: int, height: int) -> None:
    for i, box in enumerate(boxes, 1):
        if box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height:
            raise AskInputError(
                f"box {i} ({box.x0:g}, {box.y0:g}, {box.x1:g}, {box.y1:g}) reaches outside the {width}x{height} image"
            )


def box_colors(requested: Sequence[str | None]) -> list[str]:
    """A distinct colour per box: the requested one, else the first of the reference stage's palette not yet
    used (the colours the training questions name)."""
    used = {c for c in requested if c}
    for color in used:
        if color not in BOX_COLORS:
            raise AskInputError(f"box colour {color!r} is not one of {', '.join(BOX_COLORS)}")
    free = iter(c for c in BOX_COLORS if c not in used)
    colors = []
    for color in requested:
        chosen = color or next(free, None)
        if chosen is None:
            raise AskInputError(f"at most {len(BOX_COLORS)} boxes can be told apart by colour")
        colors.append(chosen)
    if len(set(colors)) != len(colors):
        raise AskInputError(f"two boxes share a colour ({colors}): the question could not tell them apart")
    return colors


# ------------------------------------------------------------------------------------------ the question


_PLACEHOLDER = re.compile(r"\{(p|b)(\d*)\}")
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")


def point_text(u: float, v: float, width: int, height: int) -> str:
    """A pixel as the model reads it: `<locYYYY><locXXXX>` (docs/CONVENTIONS.md)."""
    y_bin, x_bin = loc_tokens(u, v, width, height)
    return loc_text(int(y_bin), int(x_bin))


def box_text(label: str | None, color: str) -> str:
    """The paper's fallback reference for an object shown as a drawn box."""
    name = (label or "object").strip()
    if not name.lower().startswith(("the ", "a ", "an ")):
        name = f"the {name}"
    return f"{name} (highlighted by the {color} box)"


def fill_question(question: str, point_texts: Sequence[str], box_texts: Sequence[str]) -> str:
    """Put points and boxes into the question.

    `{p1}`, `{p2}`, ... (`{p}` = `{p1}`) become the points' location tokens and `{b1}`, ... (`{b}` = `{b1}`) the
    boxes' references. Points the question does not place are appended in the L0 templates' words ("the first
    point at <loc..><loc..>"); boxes it does not name are still drawn (a question may say "the red box" itself).
    """
    if not question or not question.strip():
        raise AskInputError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise AskInputError(f"the question has {len(question)} characters; at most {MAX_QUESTION_CHARS}")
    used_points: set[int] = set()

    def repl(m: re.Match[str]) -> str:
        kind, index = m.group(1), int(m.group(2) or 1)
        texts = point_texts if kind == "p" else box_texts
        if not 1 <= index <= len(texts):
            what = "point" if kind == "p" else "box"
            raise AskInputError(
                f"the question names {{{kind}{index}}} but only {len(texts)} {what}(s) were given"
            )
        if kind == "p":
            used_points.add(index)
        return texts[index - 1]

    text = _PLACEHOLDER.sub(repl, question.strip())
    rest = [i for i in range(1, len(point_texts) + 1) if i not in used_points]
    if rest:
        if len(point_texts) == 1:
            text += f" The point is at {point_texts[0]}."
        else:
            listed = ", ".join(
                f"the {_ORDINALS[min(i, len(_ORDINALS)) - 1]} point at {point_texts[i - 1]}" for i in rest
            )
            text += f" Points: {listed}."
    return text


def draw_requests(boxes: Sequence[Box2D], colors: Sequence[str]) -> list[DrawBox]:
    """The boxes as the training data's `DrawBox` records (drawn by `training.data.draw_boxes`)."""
    return [
        DrawBox(instance_id=i, color=c, box2d=b)
        for i, (b, c) in enumerate(zip(boxes, colors, strict=True), 1)
    ]


# ------------------------------------------------------------------------------------------ depth


def parse_intrinsics(value: str | dict | Intrinsics, width: int, height: int) -> Intrinsics:
    """'fx,fy,cx,cy', a JSON file or object {fx, fy, cx, cy[, width, height]} -> Intrinsics of this image."""
    if isinstance(value, Intrinsics):
        return value
    if isinstance(value, str):
        path = Path(value).expanduser()
        if path.is_file():
            try:
                value = json.loads(path.read_text())
            except ValueError as err:
                raise AskInputError(f"intrinsics file {path}: not JSON ({err})") from err
        else:
            numbers = _numbers(value, "intrinsics")
            if len(numbers) != 4:
                raise AskInputError(f"intrinsics {value!r}: expected fx,fy,cx,cy in pixels or a JSON file")
            value = dict(zip(("fx", "fy", "cx", "cy"), numbers, strict=True))
    if not isinstance(value, dict):
        raise AskInputError(f"intrinsics: expected fx,fy,cx,cy, got {value!r}")
    try:
        intrinsics = Intrinsics(**{"width": width, "height": height, **value})
    except ValueError as err:
        raise AskInputError(f"intrinsics: {err}") from err
    if (intrinsics.width, intrinsics.height) != (width, height):
        raise AskInputError(
            f"intrinsics are for {intrinsics.width}x{intrinsics.height} but the image is {width}x{height}"
        )
    return intrinsics


def load_depth(
    source: str | Path | np.ndarray, width: int, height: int, png_scale: float = 0.001
) -> np.ndarray:
    """A z-depth map in meters, (H, W) float32, from `.npy` (meters), the project's log-encoded 16-bit PNG (the
    official HiSpatial format, recognised by its near/far text chunk) or any other 16-bit PNG / TIFF
    (`png_scale` meters per unit: 0.001 = millimetres, the NYU/ScanNet convention)."""
    if isinstance(source, np.ndarray):
        depth = source
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise AskInputError(f"depth map {path}: no such file")
        try:
            if path.suffix.lower() in (".npy", ".npz"):
                loaded = np.load(path, allow_pickle=False)
                depth = loaded[loaded.files[0]] if hasattr(loaded, "files") else loaded
            else:
                with Image.open(path) as img:
                    logencoded = "near" in getattr(img, "text", {})
                    raw = np.asarray(img)
                depth = decode_depth_png(path) if logencoded else raw.astype(np.float32) * png_scale
        except (OSError, ValueError) as err:
            raise AskInputError(f"depth map {path}: unreadable ({err})") from err
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if depth.shape != (height, width):
        raise AskInputError(f"depth map is {depth.shape[::-1]} (W, H) but the image is ({width}, {height})")
    return depth
