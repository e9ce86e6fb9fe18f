import numpy as np
import pytest
from PIL import Image

from assets.filtering import filter_shard
from assets.objects import object_clouds_shard
from assets.point_maps import point_maps_shard
from assets.records import Box2D
from assets.references import BOX_COLORS, references_shard
from assets.visualize import LabeledBox, draw_boxes, shard_thumbnail, to_rgb
from tests.assets.scene_fixtures import living_room, write_source_shard


def test_draw_boxes_outlines_exactly_the_box_in_its_colour():
    rgb = np.full((40, 60, 3), 100, np.uint8)
    out = draw_boxes(rgb, [LabeledBox(Box2D(x0=10, y0=20, x1=30, y1=35), "", "red")], line_width=1)
    red = np.all(out == BOX_COLORS["red"], axis=-1)
    # [x0, x1) x [y0, y1): the outline runs over columns 10..29 and rows 20..34
    assert red[20, 10:30].all() and red[34, 10:30].all() and red[20:35, 10].all() and red[20:35, 29].all()
    assert red.sum() == 2 * 20 + 2 * 13
    assert not red[21:34, 11:29].any()
    assert (rgb == 100).all()  # the input is not modified


def test_labels_are_drawn_inside_the_image():
    rgb = np.full((60, 80, 3), 100, np.uint8)
    out = draw_boxes(rgb, [(Box2D(x0=0, y0=0, x1=80, y1=10), "the leftmost chair", (0, 0, 255))])
    blue = np.all(out == (0, 0, 255), axis=-1)
    assert blue[:, :40].sum() > blue[0].sum()  # a filled tag, not just the outline
    assert to_rgb("teal") == BOX_COLORS["teal"] and to_rgb("navy") == (0, 0, 128)
    with pytest.raises(ValueError):
        to_rgb("no-such-colour")


def test_shard_thumbnail_tiles_scenes(tmp_path):
    write_source_shard(tmp_path, "s0", [living_room(f"room-{k}", "s0") for k in range(3)])
    for stage in (filter_shard, point_maps_shard, object_clouds_shard, references_shard):
        stage(tmp_path, "s0")
    lines = (tmp_path / "object_references/s0/scenes.jsonl").read_text().splitlines()
    (tmp_path / "object_references/s0/scenes.jsonl").write_text("\n".join(["{broken", *lines]) + "\n")
    out = shard_thumbnail(tmp_path, "object_references", "s0", tmp_path / "thumbs/refs.png", max_scenes=4)
    with Image.open(out) as img:
        assert img.size == (640, 480)  # 3 scenes -> 2 columns x 2 rows of 320x240 tiles
        sheet = np.asarray(img.convert("RGB"))
    assert (sheet[240:, 320:] == 16).all()  # the fourth cell stays empty
    assert sheet[:240, :320].std() > 20  # a drawn scene, not a blank tile
    with pytest.raises(FileNotFoundError):
        shard_thumbnail(tmp_path, "object_references", "missing", tmp_path / "x.png")
