"""The web page: upload an image, click points or two box corners, ask, see the answer drawn on the image.

    hispatial ask --web --checkpoint latest --moge tiny --port 7860      then open http://127.0.0.1:7860

Gradio runs with analytics off and no share link, on the host given (127.0.0.1 by default), and the page uses
system fonts only, so neither the server nor the browser reaches the internet. Everything the page does goes
through `SpatialAsker` (the same path as the CLI and the served model); a bad input shows its error message on
the page and the server carries on.
"""

from __future__ import annotations

import os

os.environ.setdefault(
    "GRADIO_ANALYTICS_ENABLED", "False"
)  # before gradio is imported: it reads this at import

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from inference.asker import AskRequest, SpatialAsker  # noqa: E402
from inference.inputs import AskInputError, box_colors, parse_box, parse_point  # noqa: E402
from inference.overlay import draw_answer  # noqa: E402

INTRO = (
    "**Ask about an image.** Upload a picture, click on it to mark points (or choose *box* and click two opposite "
    "corners), then ask. Write `{p1}`, `{p2}` for the points and `{b1}`, `{b2}` for the boxes in the question, "
    "e.g. *How far is {b1} from {b2}?* or *What are the 3D coordinates of the point at {p1}?*"
)


def _split(text: str) -> list[str]:
    return [part.strip() for part in (text or "").split(";") if part.strip()]


def marks(points_text: str, boxes_text: str) -> tuple[list[dict], list[dict]]:
    """The textboxes' points and boxes as Answer-style dicts (colours as the question will name them)."""
    points = [dict(zip(("u", "v"), parse_point(p), strict=True)) for p in _split(points_text)]
    parsed = [parse_box(b) for b in _split(boxes_text)]
    colors = box_colors([c for _, _, c in parsed])
    boxes = [
        {"box": [b.x0, b.y0, b.x1, b.y1], "label": label, "color": color}
        for (b, label, _), color in zip(parsed, colors, strict=True)
    ]
    return points, boxes


def on_click(
    image: np.ndarray | None,
    mode: str,
    points_text: str,
    boxes_text: str,
    corner: list | None,
    evt: gr.SelectData,
) -> tuple:
    """A click adds a point, or (box mode) the first corner of a box, then the box itself on the second click."""
    if image is None:
        raise gr.Error("upload an image first")
    u, v = (int(c) for c in evt.index[:2])
    if mode == "box":
        if corner is None:
            corner = [u, v]
        else:
            (x0, x1), (y0, y1) = sorted([corner[0], u]), sorted([corner[1], v])
            boxes_text = "; ".join([*_split(boxes_text), f"{x0},{y0},{x1 + 1},{y1 + 1}"])
            corner = None
    else:
        points_text = "; ".join([*_split(points_text), f"{u},{v}"])
    try:
        points, boxes = marks(points_text, boxes_text)
    except AskInputError as err:
        raise gr.Error(str(err)) from err
    canvas = draw_answer(image, points, boxes, corner=corner)
    return canvas, points_text, boxes_text, corner


def build_app(asker: SpatialAsker) -> gr.Blocks:
    def on_upload(image: np.ndarray | None) -> tuple:
        return image, "", "", None, "", None

    def on_clear(image: np.ndarray | None) -> tuple:
        return image, "", "", None

    def on_ask(image: np.ndarray | None, question: str, points_text: str, boxes_text: str) -> tuple:
        if image is None:
            raise gr.Error("upload an image first")
        try:
            answer = asker.ask(
                AskRequest(
                    image=image, question=question, points=_split(points_text), boxes=_split(boxes_text)
                )
            )
        except AskInputError as err:
            raise gr.Error(str(err)) from err
        canvas = draw_answer(image, answer.points, answer.boxes, answer.kind, answer.value)
        parsed = {
            "kind": answer.kind,
            "value": answer.value,
            "unit": answer.unit,
            "reason": answer.reason,
            "prompt": answer.prompt,
            "points": answer.points,
            "point_map": answer.point_map,
            "seconds": answer.seconds,
        }
        return canvas, answer.answer, parsed

    with gr.Blocks(title="HiSpatial: ask about an image", analytics_enabled=False) as app:
        gr.Markdown(INTRO)
        corner = gr.State(None)
        with gr.Row():
            with gr.Column():
                upload = gr.Image(type="numpy", label="Image", sources=["upload"], elem_id="upload")
                mode = gr.Radio(
                    ["point", "box"], value="point", label="A click on the picture adds a", elem_id="mode"
                )
                points_text = gr.Textbox(label="Points u,v (pixels; separate with ;)", elem_id="points")
                boxes_text = gr.Textbox(
                    label="Boxes x0,y0,x1,y1[:label] (pixels; separate with ;)", elem_id="boxes"
                )
                question = gr.Textbox(
                    label="Question", elem_id="question", placeholder="How far is {b1} from {b2}?"
                )
                with gr.Row():
                    ask = gr.Button("Ask", variant="primary", elem_id="ask")
                    clear = gr.Button("Clear marks", elem_id="clear")
            with gr.Column():
                canvas = gr.Image(
                    type="numpy",
                    label="Click here to mark; the answer is drawn here",
                    interactive=False,
                    elem_id="canvas",
                )
                answer = gr.Textbox(label="Answer", interactive=False, elem_id="answer")
                parsed = gr.JSON(label="Parsed value", elem_id="parsed")
        upload.change(on_upload, [upload], [canvas, points_text, boxes_text, corner, answer, parsed])
        canvas.select(
            on_click,
            [upload, mode, points_text, boxes_text, corner],
            [canvas, points_text, boxes_text, corner],
        )
        clear.click(on_clear, [upload], [canvas, points_text, boxes_text, corner])
        ask.click(on_ask, [upload, question, points_text, boxes_text], [canvas, answer, parsed])
        question.submit(on_ask, [upload, question, points_text, boxes_text], [canvas, answer, parsed])
    return app


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> None:
    """Serve on `host:port` with system fonts (no Google Fonts request from the browser) and no share link."""
    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )
    app.launch(
        server_name=host,
        server_port=port,
        share=False,
        theme=theme,
        ssr_mode=False,
        prevent_thread_lock=not block,
        quiet=True,
        footer_links=[],
    )
