"""The renderer: analytic ray casting of the room and the objects' primitives, vectorised with numpy, with a
z-buffer, Lambertian shading and mild procedural texture (the ray parameter t is the camera-frame depth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from assets.records import Intrinsics
from assets.synthetic.catalog import BOX, CYLINDER
from assets.synthetic.config import SyntheticConfig
from assets.synthetic.layout import Layout, PlacedObject, Room

# ------------------------------------------------------------------------------------------- rendering


@dataclass
class _Prim:
    kind: int
    obj: int  # index into layout.objects
    center: np.ndarray  # world (3,)
    rot: np.ndarray  # world_from_local (boxes)
    half: np.ndarray
    colors: np.ndarray  # (6, 3)

    def corners(self) -> np.ndarray:
        signs = np.array(
            [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64
        )
        return self.center + (signs * self.half) @ self.rot.T

    def hit_t(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """Nearest hit parameter t (inf where none) for (3, N) float32 ray directions from `origin`.

        Planar (3, N) layout: every step is an elementwise op on contiguous rows, much faster in numpy than
        reductions over a length-3 last axis."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            offset = origin - self.center
            if self.kind == BOX:  # slab test in the box's own frame, one axis at a time
                t_near = t_far = None
                for axis in range(3):
                    r = self.rot[:, axis]
                    if abs(r[2]) > 1.0 - 1e-12:  # the vertical axis: its direction component is the ray's z
                        d = dirs[2] if r[2] > 0 else -dirs[2]
                    elif abs(r[2]) < 1e-12:  # horizontal
                        d = dirs[0] * np.float32(r[0]) + dirs[1] * np.float32(r[1])
                    else:
                        d = (
                            dirs[0] * np.float32(r[0])
                            + dirs[1] * np.float32(r[1])
                            + dirs[2] * np.float32(r[2])
                        )
                    o, h = np.float32(offset @ r), np.float32(self.half[axis])
                    inv = np.float32(1.0) / d
                    ta = (-h - o) * inv
                    tb = (h - o) * inv
                    lo, hi = np.minimum(ta, tb), np.maximum(ta, tb)
                    t_near = lo if t_near is None else np.maximum(t_near, lo)
                    t_far = hi if t_far is None else np.minimum(t_far, hi)
                return np.where((t_near <= t_far) & (t_near > 1e-4), t_near, np.float32(np.inf))
            ox, oy, oz = (np.float32(v) for v in offset)
            dx, dy, dz = dirs[0], dirs[1], dirs[2]
            if self.kind == CYLINDER:  # vertical: quadratic in x, y for the side, a plane for the visible cap
                radius, half_h = np.float32(self.half[0]), np.float32(self.half[2])
                a = dx * dx + dy * dy
                b = ox * dx + oy * dy
                disc = b * b - a * (ox * ox + oy * oy - radius * radius)
                t_side = (-b - np.sqrt(disc)) / a
                side = (disc >= 0) & (t_side > 1e-4) & (np.abs(oz + t_side * dz) <= half_h)
                t = np.where(side, t_side, np.float32(np.inf))
                if abs(oz) > half_h:  # the camera sees one cap at most: the one on its side
                    t_cap = ((half_h if oz > 0 else -half_h) - oz) / dz
                    px, py = ox + t_cap * dx, oy + t_cap * dy
                    cap = (t_cap > 1e-4) & (px * px + py * py <= radius * radius) & (t_cap < t)
                    t = np.where(cap, t_cap, t)
                return t
            radius = np.float32(self.half[0])
            a = dx * dx + dy * dy + dz * dz
            b = ox * dx + oy * dy + oz * dz
            disc = b * b - a * (ox * ox + oy * oy + oz * oz - radius * radius)
            t_hit = (-b - np.sqrt(disc)) / a
            return np.where((disc >= 0) & (t_hit > 1e-4), t_hit, np.float32(np.inf))

    def face_of(self, points: np.ndarray) -> np.ndarray:
        """Face slot of (N, 3) world points on the primitive's surface (0 = curved surface, 4/5 = bottom/top)."""
        local = (points - self.center.astype(np.float32)) @ self.rot.astype(np.float32)
        if self.kind == BOX:
            axis = np.abs(local / self.half.astype(np.float32)).argmax(axis=1)
            positive = np.take_along_axis(local, axis[:, None], 1)[:, 0] > 0
            return (axis * 2 + positive).astype(np.int8)
        if self.kind == CYLINDER:
            off_cap = np.abs(np.abs(local[:, 2]) - self.half[2])
            off_side = np.abs(np.hypot(local[:, 0], local[:, 1]) - self.half[0])
            return np.where(off_cap < off_side, np.where(local[:, 2] > 0, 5, 4), 0).astype(np.int8)
        return np.zeros(len(points), dtype=np.int8)

    def face_normals(self) -> np.ndarray:
        """(6, 3) world normals per face slot (curved surfaces are computed per pixel instead)."""
        normals = np.zeros((6, 3))
        for axis in range(3):
            normals[2 * axis] = -self.rot[:, axis]
            normals[2 * axis + 1] = self.rot[:, axis]
        return normals


def _prims(objects: list[PlacedObject]) -> list[_Prim]:
    prims = []
    for index, obj in enumerate(objects):
        rot = obj.rot
        for part in obj.parts:
            prims.append(
                _Prim(part.kind, index, obj.pos + rot @ part.center, rot @ part.rot, part.half, part.colors)
            )
    return prims


def _pixel_rect(prim_corners_cam: np.ndarray, k: Intrinsics) -> tuple[int, int, int, int] | None:
    """Pixel rows/cols whose centers may see the primitive: (v0, v1, u0, u1), or None when off-screen."""
    z = prim_corners_cam[:, 2]
    if z.max() <= 1e-3:
        return None
    if z.min() <= 1e-3:
        return 0, k.height, 0, k.width
    u = k.fx * prim_corners_cam[:, 0] / z + k.cx
    v = k.fy * prim_corners_cam[:, 1] / z + k.cy
    u0, u1 = max(0, math.floor(u.min() - 1)), min(k.width, math.ceil(u.max() + 1))
    v0, v1 = max(0, math.floor(v.min() - 1)), min(k.height, math.ceil(v.max() + 1))
    if u0 >= u1 or v0 >= v1:
        return None
    return v0, v1, u0, u1


def _hash01(*ints: np.ndarray) -> np.ndarray:
    """Cheap deterministic hash of integer lattice coordinates to [0, 1)."""
    h = np.zeros(np.broadcast_shapes(*(np.shape(i) for i in ints)), dtype=np.int64)
    for value, prime in zip(ints, (73856093, 19349663, 83492791), strict=False):
        h ^= np.asarray(value).astype(np.int64) * prime
    h = (h ^ (h >> 13)) * 1274126177
    return ((h >> 8) & 0xFFFF).astype(np.float32) / 65536.0


def _floor_albedo(room: Room, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if room.floor_style == "wood":  # planks with per-board tone, staggered joints and dark seams
        along_rows = y / room.plank
        rows = np.maximum(along_rows, 0).astype(np.int32)
        row_ids = np.arange(int(rows.max(initial=0)) + 1)
        shifted = (x + (_hash01(row_ids) * 1.5)[rows]) / 1.3  # each row's joints start elsewhere
        segments = np.maximum(shifted, 0).astype(np.int32)
        seg_ids = np.arange(int(segments.max(initial=0)) + 1)
        tones = 0.86 + 0.22 * _hash01(row_ids[:, None], seg_ids[None, :])  # one tone per board
        tone = tones[rows, segments]
        seam = (along_rows % 1.0 < 0.05) | (shifted % 1.0 < 0.008)
        albedo = room.floor_colors[0][None] * np.where(seam, np.float32(0.62), tone)[:, None]
    elif room.floor_style == "tile":
        checker = ((np.floor(x / room.plank) + np.floor(y / room.plank)) % 2 == 0)[:, None]
        albedo = np.where(checker, room.floor_colors[0], room.floor_colors[1])
        grout = ((x / room.plank) % 1.0 < 0.02) | ((y / room.plank) % 1.0 < 0.02)
        albedo[grout] = 0.55 * room.floor_colors[0]
    else:
        albedo = room.floor_colors[0][None] * (0.93 + 0.07 * np.sin(x * 9.0) * np.sin(y * 7.0))[:, None]
    if room.rug is not None:
        x0, x1, y0, y1, colour = room.rug
        rug = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        border = rug & ((x - x0 < 0.08) | (x1 - x < 0.08) | (y - y0 < 0.08) | (y1 - y < 0.08))
        albedo[rug] = colour
        albedo[border] = colour * 0.6
    return albedo.astype(np.float32)


def _wall_albedo(room: Room, x: np.ndarray, y: np.ndarray, z: np.ndarray, face: np.ndarray) -> np.ndarray:
    albedo = np.tile(room.wall_color.astype(np.float32), (len(z), 1))
    along = np.where(face <= 1, y, x)  # coordinate along the wall
    for slot, s0, s1, z0, z1, colour in room.decals:  # door, window, picture
        albedo[(face == slot) & (along >= s0) & (along <= s1) & (z >= z0) & (z <= z1)] = colour
    albedo[z < 0.09] = room.trim_color
    return albedo


def _room_albedo(room: Room, points: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Albedo (N, 3) of room pixels from their (3, N) world points (face slots: 0-3 walls, 4 ceiling, 5 floor)."""
    albedo = np.empty((len(face), 3), dtype=np.float32)
    albedo[face == 4] = (0.93, 0.93, 0.91)
    floor = np.flatnonzero(face == 5)
    albedo[floor] = _floor_albedo(room, points[0, floor], points[1, floor])
    walls = np.flatnonzero(face <= 3)
    albedo[walls] = _wall_albedo(room, points[0, walls], points[1, walls], points[2, walls], face[walls])
    return albedo


LIGHT_DIR = np.array([0.35, -0.45, 0.82]) / np.linalg.norm([0.35, -0.45, 0.82])


def render_layout(
    layout: Layout, rng: np.random.Generator, config: SyntheticConfig, rays: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, tuple[int, float]]]:
    """Ray-cast the layout. Returns rgb (H, W, 3) uint8, depth (H, W) float32, object index + 1 per pixel
    (H, W) int16 (0 = room), and per object {index: (visible pixels, visible fraction)}."""
    cam, room = layout.camera, layout.room
    k = cam.intrinsics
    height, width = k.height, k.width
    origin = cam.position

    # Room: the camera is inside the box [0, size]; per axis, the distance to the wall the ray leaves through.
    o = origin.astype(np.float32)
    size = room.size.astype(np.float32)
    with np.errstate(divide="ignore"):
        exits = [np.where(rays[..., a] > 0, size[a] - o[a], o[a]) / np.abs(rays[..., a]) for a in range(3)]
    depth = exits[2]
    face = np.where(rays[..., 2] < 0, 5, 4).astype(np.int8)  # floor (normal +z) or ceiling
    for a in (0, 1):
        nearer = exits[a] < depth
        depth = np.where(nearer, exits[a], depth)
        face[nearer] = np.where(rays[..., a][nearer] < 0, 2 * a + 1, 2 * a)
    prim_of = np.zeros((height, width), dtype=np.int16)  # 0 = room, p + 1 = primitive p

    prims = _prims(layout.objects)
    planar = np.ascontiguousarray(rays.transpose(2, 0, 1))  # (3, H, W) for the per-primitive tests
    silhouettes: dict[int, np.ndarray] = {}
    for p, prim in enumerate(prims):
        rect = _pixel_rect(cam.to_cam(prim.corners()), k)
        if rect is None:
            continue
        v0, v1, u0, u1 = rect
        sub = planar[:, v0:v1, u0:u1].reshape(3, -1)
        t = prim.hit_t(origin, sub)
        hit = np.isfinite(t)
        if not hit.any():
            continue
        sil = silhouettes.setdefault(prim.obj, np.zeros((height, width), dtype=bool))
        sil[v0:v1, u0:u1] |= hit.reshape(v1 - v0, u1 - u0)
        depth_view = depth[v0:v1, u0:u1].reshape(-1)  # a copy; written back below
        closer = np.flatnonzero(t < depth_view)
        if closer.size == 0:
            continue
        rows, cols = np.divmod(closer, u1 - u0)
        rows += v0
        cols += u0
        depth[rows, cols] = t[closer]
        prim_of[rows, cols] = p + 1
        face[rows, cols] = prim.face_of(o + sub[:, closer].T * t[closer, None])

    # Shading: albedo x texture x (ambient + Lambert + a little camera-facing light), plus sensor noise.
    points = o[:, None] + planar.reshape(3, -1) * depth.reshape(1, -1)  # (3, N) world points
    flat_prim = prim_of.reshape(-1)
    flat_face = face.reshape(-1)
    n_prims = len(prims) + 1
    colors = np.zeros((n_prims * 6, 3), dtype=np.float32)
    normals = np.zeros((n_prims, 6, 3), dtype=np.float32)
    centers = np.zeros((n_prims, 3), dtype=np.float32)
    kinds = np.full(n_prims, BOX, dtype=np.int8)
    phases = rng.uniform(0, 2 * math.pi, size=(n_prims, 3)).astype(np.float32).T.copy()
    for axis_index in range(3):  # room faces: inward normals
        normals[0, 2 * axis_index, axis_index] = -1.0
        normals[0, 2 * axis_index + 1, axis_index] = 1.0
    for p, prim in enumerate(prims, start=1):
        colors[6 * p : 6 * p + 6], normals[p], centers[p], kinds[p] = (
            prim.colors,
            prim.face_normals(),
            prim.center,
            prim.kind,
        )
    slot = flat_prim.astype(np.int32) * 6 + flat_face
    albedo = colors.take(slot, axis=0)
    normal = normals.reshape(-1, 3).take(slot, axis=0)
    is_room = flat_prim == 0
    room_px = np.flatnonzero(is_room)
    albedo[room_px] = _room_albedo(room, points[:, room_px], flat_face[room_px])
    object_px = np.flatnonzero(~is_room)
    if object_px.size:
        owner = flat_prim[object_px]
        curved = np.flatnonzero((kinds[owner] != BOX) & (flat_face[object_px] == 0))
        if curved.size:
            px = object_px[curved]
            radial = points[:, px].T - centers[owner[curved]]
            radial[kinds[owner[curved]] == CYLINDER, 2] = 0.0
            normal[px] = radial / np.linalg.norm(radial, axis=1, keepdims=True)
        q = points[:, object_px] * np.float32(23.0)
        ph = phases[:, owner]
        grain = np.sin(q[0] + ph[0]) * np.sin(q[1] * np.float32(0.7) + ph[1]) + np.float32(0.5) * np.sin(
            q[2] * np.float32(1.3) + ph[2]
        )
        albedo[object_px] *= (1.0 + 0.045 * grain)[:, None]
    lambert = np.maximum(normal @ LIGHT_DIR.astype(np.float32), 0.0)
    facing = np.abs(normal @ cam.rotation[:, 2].astype(np.float32))
    light = 0.38 + 0.5 * lambert + 0.17 * facing
    if config.sensor_noise > 0:  # luminance noise, the same on the three channels
        light += rng.standard_normal(light.shape, dtype=np.float32) * (config.sensor_noise / 255.0)
    rgb = albedo * (light * 255.0)[:, None]
    rgb = np.clip(rgb + 0.5, 0, 255).astype(np.uint8).reshape(height, width, 3)

    owner_of_prim = np.array([0] + [pr.obj + 1 for pr in prims], dtype=np.int16)
    object_of = owner_of_prim[prim_of]
    visible_counts = np.bincount(object_of.reshape(-1), minlength=len(layout.objects) + 1)
    visibility: dict[int, tuple[int, float]] = {}
    for index, sil in silhouettes.items():
        visible = int(visible_counts[index + 1])
        if visible == 0:
            continue
        unoccluded = visible / max(1, int(np.count_nonzero(sil)))
        visibility[index] = (visible, unoccluded * _in_frame_fraction(layout, prims, index))
    return rgb, depth.astype(np.float32), object_of, visibility


def _in_frame_fraction(layout: Layout, prims: list[_Prim], index: int, samples: int = 48) -> float:
    """Share of the object's (unoccluded) silhouette that falls inside the image, from a coarse ray grid over its
    whole projected box; 1.0 when the box projects inside the image."""
    cam = layout.camera
    k = cam.intrinsics
    corners = cam.to_cam(layout.objects[index].corners_world())
    u = k.fx * corners[:, 0] / corners[:, 2] + k.cx
    v = k.fy * corners[:, 1] / corners[:, 2] + k.cy
    if u.min() >= 0 and v.min() >= 0 and u.max() <= k.width and v.max() <= k.height:
        return 1.0
    uu, vv = np.meshgrid(np.linspace(u.min(), u.max(), samples), np.linspace(v.min(), v.max(), samples))
    dirs_cam = np.stack([(uu - k.cx) / k.fx, (vv - k.cy) / k.fy, np.ones_like(uu)], -1).reshape(-1, 3)
    dirs = np.ascontiguousarray((dirs_cam @ cam.rotation.T).T, dtype=np.float32)
    hit = np.zeros(dirs.shape[1], dtype=bool)
    for prim in prims:
        if prim.obj == index:
            hit |= np.isfinite(prim.hit_t(cam.position, dirs))
    inside = hit & (uu.ravel() >= 0) & (uu.ravel() < k.width) & (vv.ravel() >= 0) & (vv.ravel() < k.height)
    total = int(hit.sum())
    return float(inside.sum()) / total if total else 1.0
