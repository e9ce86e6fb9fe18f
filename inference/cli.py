"""`hispatial ask`: the command-line face of `SpatialAsker` (registered by hispatial_dagster/cli.py).

hispatial ask IMAGE "question" [--point U,V ...] [--box X0,Y0,X1,Y1[:label[:colour]] ...] [--json]
hispatial ask FOLDER_OR_JSONL ["question"] --out predictions.jsonl      batch mode
hispatial ask --web [--port 7860]                                        the Gradio page
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DEFAULT_MOGE = "Ruicheng/moge-2-vitl-normal"


def add_ask_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    ask = sub.add_parser(
        "ask",
        help="ask a checkpoint a question about an image (or a batch, or a web page)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ask.add_argument("image", nargs="?", help="image file, or a folder / JSONL file for batch mode")
    ask.add_argument("question", nargs="?", help="the question; {p1} {p2} place points, {b1} {b2} boxes")
    ask.add_argument(
        "--checkpoint",
        default="latest",
        help="checkpoint directory, `latest` (newest under <data root>/checkpoints), "
        "models:/<name>/<version|alias>, or an official HiSpatial-3B directory",
    )
    ask.add_argument(
        "--point", action="append", default=[], metavar="U,V", help="a pixel (column,row); repeat"
    )
    ask.add_argument(
        "--box",
        action="append",
        default=[],
        metavar="X0,Y0,X1,Y1[:LABEL[:COLOUR]]",
        help="an object as a pixel box, drawn highlighted; repeat",
    )
    ask.add_argument("--option", action="append", default=[], help="a multiple-choice option; repeat")
    ask.add_argument(
        "--kind",
        choices=["choice", "yes_no", "length", "number", "vector", "clock", "judged"],
        help="answer kind to parse (default: read from the question)",
    )
    ask.add_argument("--depth", help="depth map (.npy meters, our 16-bit log PNG, or a 16-bit PNG in mm)")
    ask.add_argument("--intrinsics", help="fx,fy,cx,cy in pixels, or a JSON file (with --depth)")
    ask.add_argument(
        "--moge",
        default=None,
        help=f"MoGe-2 model for the point map: hub id, local model.pt, `tiny` (random weights) or "
        f"`none` (default: $HISPATIAL_POINT_MAP_MODEL or {DEFAULT_MOGE})",
    )
    ask.add_argument(
        "--processor", help="PaliGemma processor for an official checkpoint without tokenizer files"
    )
    ask.add_argument(
        "--tracking-uri", help="MLflow tracking/registry URI for models:/ (default: $MLFLOW_TRACKING_URI)"
    )
    ask.add_argument("--device", default="cpu")
    ask.add_argument("--max-new-tokens", type=int, default=64)
    ask.add_argument("--json", action="store_true", help="print the whole answer as one JSON object")
    ask.add_argument("--out", type=Path, help="batch mode: predictions JSONL to write")
    ask.add_argument("--batch-size", type=int, default=8)
    ask.add_argument("--web", action="store_true", help="serve the Gradio page instead of answering")
    ask.add_argument("--host", default="127.0.0.1")
    ask.add_argument("--port", type=int, default=7860)
    ask.set_defaults(func=cmd_ask)
    return ask


def _data_root(args: argparse.Namespace) -> Path | None:
    root = getattr(args, "data_root", None)
    return Path(root).expanduser() if root else None


def cmd_ask(args: argparse.Namespace) -> int:
    import warnings

    from inference import AskInputError, AskRequest, SpatialAsker

    # MoGe-2 asks for float32 autocast on CPU, which torch declines with a warning on every image
    warnings.filterwarnings("ignore", message="In CPU autocast", category=UserWarning)
    moge = args.moge or os.environ.get("HISPATIAL_POINT_MAP_MODEL") or DEFAULT_MOGE
    try:
        from inference.batch import is_batch_source, read_requests, run_batch

        if not args.web and not args.image:
            raise AskInputError("give an IMAGE and a question (or --web)")
        if not args.web and not is_batch_source(args.image) and not (args.question or "").strip():
            raise AskInputError("the question is empty")  # said before minutes of model loading, not after
        asker = SpatialAsker.from_checkpoint(
            args.checkpoint,
            point_map_model=moge,
            device=args.device,
            data_root=_data_root(args),
            tracking_uri=args.tracking_uri,
            processor=args.processor,
            max_new_tokens=args.max_new_tokens,
        )
        if args.web:
            from inference.web import build_app, launch

            launch(build_app(asker), args.host, args.port)
            return 0
        if is_batch_source(args.image):
            if args.out is None:
                raise AskInputError("batch mode (a folder or .jsonl) needs --out predictions.jsonl")
            requests = read_requests(args.image, args.question)
            counts = run_batch(asker, requests, args.out, args.batch_size, progress=sys.stderr.isatty())
            print(json.dumps({"predictions": str(args.out), **counts}))
            return 0
        answer = asker.ask(
            AskRequest(
                image=args.image,
                question=args.question or "",
                points=args.point,
                boxes=args.box,
                options=args.option,
                kind=args.kind,
                depth=args.depth,
                intrinsics=args.intrinsics,
            )
        )
    except AskInputError as err:
        print(f"hispatial ask: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(answer.to_dict(), default=str))
    else:
        value = (
            ""
            if answer.value is None
            else f"  [{answer.kind}: {answer.value}{' ' + answer.unit if answer.unit else ''}]"
        )
        print(f"{answer.answer}{value}")
    return 0
