"""The Gradio page in a real browser: headless Chromium uploads an image, clicks two boxes' corners on the
picture, types a distance question and presses Ask; the page must show the model's answer (the same text the
Python API gives for those boxes) and the screenshot of the picture must hold the drawn overlay: both boxes in
their colours and the magenta distance line between them. Skipped without a Chromium binary
(`apt-get install chromium`)."""

from __future__ import annotations

import io
import json
import os
import time

import numpy as np
import pytest
from PIL import Image

from tests.inference.browser import CHROMIUM, chromium

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary on PATH")
APP_PORT, DEVTOOLS_PORT = 3152, 3153


def _near(pixels: np.ndarray, color: tuple[int, int, int], tol: int = 40) -> int:
    return int((np.abs(pixels.astype(int) - np.array(color)).max(axis=-1) <= tol).sum())


def test_page_draws_the_answer_on_the_image(tiny_asker, tmp_path):
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from inference.asker import AskRequest
    from inference.overlay import LINE_COLOR
    from inference.web import build_app, launch

    rgb = np.full((240, 320, 3), 128, np.uint8)
    rgb[:, :, 2] = np.linspace(90, 160, 320, dtype=np.uint8)[None, :]
    image_path = tmp_path / "room.png"
    Image.fromarray(rgb).save(image_path)
    app = build_app(tiny_asker)
    launch(app, "127.0.0.1", APP_PORT, block=False)
    try:
        with chromium(DEVTOOLS_PORT) as page:
            page.send("Page.navigate", url=f"http://127.0.0.1:{APP_PORT}/")
            page.wait_for("!!document.querySelector('#upload input[type=file]')")
            page.upload("#upload input[type=file]", str(image_path))
            page.wait_for(
                "!!document.querySelector('#canvas img') && document.querySelector('#canvas img').complete"
            )
            page.js(
                "[...document.querySelectorAll('#mode label')].find(l => l.textContent.trim() == 'box').click()"
            )

            def click_pixel(u: float, v: float) -> None:
                rect = page.js(
                    "(() => { const r = document.querySelector('#canvas img').getBoundingClientRect();"
                    " return [r.left, r.top, r.width, r.height]; })()"
                )
                left, top, width, height = rect
                page.click(left + (u + 0.5) * width / 320, top + (v + 0.5) * height / 240)

            src = "document.querySelector('#canvas img').src"
            for u, v in [(30, 40), (100, 120), (200, 100), (290, 200)]:
                before = page.js(src)
                click_pixel(u, v)  # each click redraws the picture (a corner cross, then the box)
                page.wait_for(
                    f"{src} != {json.dumps(before)} && document.querySelector('#canvas img').complete"
                )
            boxes_text = page.js("document.querySelector('#boxes textarea').value")
            page.type_into("#question textarea", "How far is {b1} from {b2}?")
            before_ask = page.js(src)
            page.js("document.querySelector('#ask').click()")
            shown = page.wait_for("document.querySelector('#answer textarea').value", timeout=90)
            # the new picture is in and Gradio's pending veil (a translucent overlay while the event runs) is gone
            page.wait_for(
                f"{src} != {json.dumps(before_ask)} && document.querySelector('#canvas img').complete"
                " && [...document.querySelectorAll('[data-testid=status-tracker]')]"
                ".every(t => t.classList.contains('hide'))"
            )
            time.sleep(1.0)  # CSS opacity transitions
            rect = page.js(
                "(() => { const r = document.querySelector('#canvas img').getBoundingClientRect();"
                " return {x: r.left, y: r.top, width: r.width, height: r.height}; })()"
            )
            shot = np.asarray(Image.open(io.BytesIO(page.screenshot(rect))).convert("RGB"))
            Image.fromarray(shot).save(tmp_path / "canvas.png")
    finally:
        app.close()

    # the clicks became two boxes at the clicked pixels (the second corner's pixel is inside the box)
    boxes = [b.strip() for b in boxes_text.split(";")]
    assert boxes == ["30,40,101,121", "200,100,291,201"]
    # the page shows what the Python API answers for the same request (greedy decoding is deterministic)
    expected = tiny_asker.ask(
        AskRequest(image=image_path, question="How far is {b1} from {b2}?", boxes=boxes)
    )
    assert shown == expected.answer and expected.kind == "length"
    # the overlay: red and green box outlines and the magenta distance line, none of which the upload contains
    assert _near(rgb, LINE_COLOR) == 0
    assert _near(shot, (230, 25, 75)) > 100 and _near(shot, (60, 180, 75)) > 100
    assert _near(shot, LINE_COLOR) > 200
