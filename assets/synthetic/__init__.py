"""Procedural indoor rooms and tabletop scenes with exact 3D ground truth (the `source_images` synthetic source).

Why it exists: every later stage (point maps, object clouds, references, QA) needs scenes whose depth, instance
masks, gravity and 3D boxes are known *exactly*, so that the stages can be tested against the truth and a model can
be trained end to end without downloading any dataset.

How it works, in three steps per scene, all driven by one random generator derived from (seed, shard, index):

1. **Layout** (world frame: x, y on the floor, z up, floor at z = 0). A rectangular room; furniture on the floor
   (some backed against walls, some repeated in rows so that "the leftmost chair" is needed); small objects on
   support surfaces (table tops, desk tops, shelves, sofa seats, beds). Objects are built from a few primitives
   (oriented boxes, vertical cylinders, spheres) in an object-local frame whose +x axis is the facing direction.
2. **Camera**: a pinhole camera at a realistic height, yawed, pitched down and rolled by a few degrees, so gravity
   is never exactly the image's down axis; `gravity_cam` is the world's -z expressed in the camera frame.
3. **Rendering**: analytic ray casting, vectorised with numpy. Each ray is `C + t * R @ (x, y, 1)`, so the ray
   parameter `t` *is* the camera-frame z-depth. The room is one inside-out slab test; each primitive is tested only
   on the pixels inside its projected bounding rectangle, and a z-buffer keeps the nearest hit. Lambertian shading
   with a fixed light, per-instance colours and mild procedural texture make objects distinguishable.

Ground truth follows docs/CONVENTIONS.md: `Box3D` is the tight gravity-aligned box of each object's primitives,
its center in the camera frame and its yaw that of the *length* axis in the gravity frame (the facing direction for
objects with a front, otherwise the horizontal axis less parallel to the image plane). What "front" means per
category: chair, sofa - where a seated person faces; bed - towards the foot end; desk - the side one sits at;
cabinet, nightstand, microwave - the doors; bookshelf - the open side; tv, monitor, laptop - the screen; keyboard -
the typist's side. `visible_fraction` is the share of the object's own silhouette (as if nothing occluded it, and
including what falls outside the frame) that is visible; `num_pixels` its visible pixel count. Objects with fewer
than `min_visible_pixels` are left out of the record and their pixels set to 0 in the mask, so every non-zero mask
value has a record and vice versa.

Entry points: `render_scene(config, shard, index)` (in memory) and `write_synthetic_shard(root, shard, config)`
(the `source_images` asset).

The package, one module per concern, each importing only from those above it:

    config    SyntheticConfig, per-scene generator and ids, RenderedScene
    catalog   colours, primitives, object categories
    layout    room, furniture and small objects, camera
    render    ray casting, shading, texture
    scenes    ground-truth records (boxes, visibility, captions) and render_scene
    shards    write_synthetic_shard (the stage)
"""

from assets.synthetic.catalog import CATEGORIES, COLORS, SUPPORT_CATEGORIES, TABLETOP_ITEMS, Category
from assets.synthetic.config import (
    GENERATOR_VERSION,
    SOURCE,
    STAGE,
    RenderedScene,
    SyntheticConfig,
    scene_id_for,
    scene_rng,
)
from assets.synthetic.scenes import render_scene
from assets.synthetic.shards import write_synthetic_shard

__all__ = [
    "CATEGORIES",
    "COLORS",
    "GENERATOR_VERSION",
    "SOURCE",
    "STAGE",
    "SUPPORT_CATEGORIES",
    "TABLETOP_ITEMS",
    "Category",
    "RenderedScene",
    "SyntheticConfig",
    "render_scene",
    "scene_id_for",
    "scene_rng",
    "write_synthetic_shard",
]
