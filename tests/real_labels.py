"""Native labels of the real frames in tests/fixtures/omni3d, read and resolved with numpy only.

The point: answers and references produced by the pipeline are checked against the datasets' own labels with
the datasets' own box convention (camera boxes with dimensions l, h, w: x = +-l/2 and z = +-w/2 turned by ry about
the camera's y axis; KITTI's location is the bottom center, the nuScenes boxes' (x, y, z) their center),
recomputed here without the project's geometry code. Both frames' cameras hold every box upright about their y axis, so the gravity frame of these
scenes is the camera's own: right = x, forward = z, up = -y.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "omni3d"
KITTI = FIXTURES / "kitti_000008"
NUSCENES = FIXTURES / "nuscenes_cam_front"
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
AXIS = {"right": (0, 1.0), "forward": (2, 1.0), "up": (1, -1.0)}  # (camera coordinate, sign)


@dataclass
class Label:
    category: str
    bbox: list[float]  # the dataset's 2D box
    center: np.ndarray  # camera frame, meters
    corners: np.ndarray  # (8, 3)
    l: float  # noqa: E741 - the dataset's own name
    h: float
    w: float

    def extent(self, axis: str) -> tuple[float, float]:
        index, sign = AXIS[axis]
        values = sign * self.corners[:, index]
        return float(values.min()), float(values.max())

    def along(self, axis: str) -> float:
        index, sign = AXIS[axis]
        return float(sign * self.center[index])


def camera_box(
    category: str,
    bbox: list[float],
    x: float,
    y: float,
    z: float,
    length: float,
    h: float,
    w: float,
    ry: float,
    origin: str = "bottom",
) -> Label:
    bottom = np.array([x, y, z]) + (np.array([0.0, h / 2, 0.0]) if origin == "center" else 0.0)
    c, s = np.cos(ry), np.sin(ry)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    local = np.array(
        [[sx * length / 2, sy, sz * w / 2] for sx in (-1, 1) for sy in (0.0, -h) for sz in (-1, 1)]
    )
    return Label(category, bbox, bottom - np.array([0.0, h / 2, 0.0]), local @ rot.T + bottom, length, h, w)


def kitti_labels() -> list[Label]:
    """label_2.txt (h w l, location in the rectified cam-0 frame) moved into camera 2's frame by K^-1 P2[:, 3]."""
    P2 = np.array([float(v) for v in (KITTI / "calib_P2.txt").read_text().split()[1:]]).reshape(3, 4)
    shift = np.linalg.solve(P2[:, :3], P2[:, 3])
    out = []
    for line in (KITTI / "label_2.txt").read_text().splitlines():
        f = line.split()
        if f[0] == "DontCare":
            continue
        h, w, length = (float(v) for v in f[8:11])
        x, y, z = np.array([float(v) for v in f[11:14]]) + shift
        out.append(camera_box(f[0].lower(), [float(v) for v in f[4:8]], x, y, z, length, h, w, float(f[14])))
    return out


def nuscenes_labels() -> list[Label]:
    labels = json.loads((NUSCENES / "native_labels.json").read_text())["labels"]
    return [camera_box(lb["category"], lb["bbox"], *lb["bbox_3d"], origin="center") for lb in labels]


def _size(label: Label, quantity: str) -> float:
    return {"volume": label.l * label.h * label.w, "height": label.h, "width": label.w}[quantity]


SUPERLATIVES = {
    "leftmost": ("right", False),
    "rightmost": ("right", True),
    "frontmost": ("forward", False),
    "rearmost": ("forward", True),
    "bottommost": ("up", False),
    "topmost": ("up", True),
    "largest": ("volume", True),
    "smallest": ("volume", False),
    "tallest": ("height", True),
    "shortest": ("height", False),
    "widest": ("width", True),
    "narrowest": ("width", False),
}
ENDS = {
    "left": ("right", False),
    "right": ("right", True),
    "front": ("forward", False),
    "back": ("forward", True),
    "bottom": ("up", False),
    "top": ("up", True),
}


def resolve(phrase: str, boxes: list[tuple], labels: list[Label]) -> Label:
    """The label one of our reference phrases names. `boxes` are the drawn boxes (x0, y0, x1, y1, colour or mark
    label) a box-fallback phrase points at; they are matched to the dataset's 2D box."""

    def by_box(key: str) -> Label:
        (box,) = [b for b in boxes if b[4] == key]
        # the dataset's 2D box and ours (the projected labelled box) agree to a pixel or two, more where the box
        # leaves the image (mmdet3d cuts the projected hull at the border, we clip its bounding box); the match
        # must be clearly nearer than any other label's box (neighbouring barriers overlap at IoU 0.8)
        ranked = sorted(
            (max(abs(a - b) for a, b in zip(lb.bbox, box[:4], strict=True)), i) for i, lb in enumerate(labels)
        )
        (best, index), (second, _) = ranked[0], ranked[1]
        assert best < 20.0 and second > 2 * best + 2.0, (phrase, box, labels[index].bbox, second)
        return labels[index]

    if m := re.fullmatch(r"the (.+) \(highlighted by the (\w+) box\)", phrase):
        label = by_box(m.group(2))
        assert label.category == m.group(1)
        return label
    if m := re.fullmatch(r"the (.+) \(marked (\d+)\)", phrase):
        label = by_box(m.group(2))
        assert label.category == m.group(1)
        return label
    ordinals = "|".join(ORDINALS)
    if m := re.fullmatch(rf"the ({ordinals}) (.+) from the (left|right|front|back|top|bottom)", phrase):
        axis, high = ENDS[m.group(3)]
        group = [lb for lb in labels if lb.category == m.group(2)]
        return sorted(group, key=lambda lb: lb.along(axis), reverse=high)[ORDINALS.index(m.group(1))]
    if m := re.fullmatch(rf"the (?:({ordinals}) )?(closest|farthest) (.+) (?:to|from) the camera", phrase):
        group = [lb for lb in labels if lb.category == m.group(3)]
        order = sorted(
            group, key=lambda lb: float(np.linalg.norm(lb.center)), reverse=m.group(2) == "farthest"
        )
        return order[ORDINALS.index(m.group(1)) if m.group(1) else 0]
    if m := re.fullmatch(rf"the ({'|'.join(SUPERLATIVES)}) (.+)", phrase):
        quantity, high = SUPERLATIVES[m.group(1)]
        group = [lb for lb in labels if lb.category == m.group(2)]
        key = (lambda lb: lb.along(quantity)) if quantity in AXIS else (lambda lb: _size(lb, quantity))
        return sorted(group, key=key, reverse=high)[0]
    if m := re.fullmatch(r"the (.+)", phrase):
        (label,) = [lb for lb in labels if lb.category == m.group(1)]  # a category reference: the only one
        return label
    raise AssertionError(f"unexpected reference phrase {phrase!r}")
