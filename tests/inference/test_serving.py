"""The MLflow model end to end: a tiny checkpoint logged as a pyfunc model (signature + input example) and
registered with an alias, then `mlflow models serve -m models:/<name>@<alias> --env-manager local` on 127.0.0.1
answers an image + question over REST exactly as the Python API does, and answers a bad row with its error.

Slow: about 75-90 s on the shared 2-core machine (logging validates the input example by loading the model;
the server imports MLflow, downloads the model version and loads it before /ping answers)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from inference import AskRequest, SpatialAsker
from inference.pyfunc import SIGNATURE, log_pyfunc_model

PORT = 3154


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as resp:
        return json.load(resp)


def test_pyfunc_predict_answers_rows_and_refuses_bad_ones(tiny_checkpoint, room_image):
    """The pyfunc class itself, in process, with MLflow's own context object: a good row is answered like the
    Python API, a bad one gets its error, and a file path is refused (a REST caller must not read server files)."""
    import pandas as pd
    from mlflow.pyfunc import PythonModelContext

    from inference.pyfunc import OUTPUT_SCHEMA, HiSpatialPyfunc, input_example

    model = HiSpatialPyfunc()
    model.load_context(
        PythonModelContext(
            artifacts={"checkpoint": str(tiny_checkpoint)},
            model_config={"point_map_model": "none", "max_new_tokens": 5},
        )
    )
    image = base64.b64encode(room_image.read_bytes()).decode()
    rows = pd.concat(
        [
            input_example(),
            pd.DataFrame(
                [
                    {
                        "image": image,
                        "question": "Is {p1} nearer than {p2}?",
                        "points": "[[1, 1], [100, 100]]",
                    },
                    {"image": str(room_image), "question": "How far is it?"},
                    {"image": image, "question": "", "boxes": "not json"},
                ]
            ),
        ],
        ignore_index=True,
    )
    out = model.predict(None, rows)
    assert list(out.columns) == OUTPUT_SCHEMA.input_names() and len(out) == 4
    assert out.loc[0, "kind"] == "length" and out.loc[0, "error"] == ""
    expected = SpatialAsker.from_checkpoint(tiny_checkpoint, max_new_tokens=5).ask(
        AskRequest(image=room_image, question="Is {p1} nearer than {p2}?", points=[[1, 1], [100, 100]])
    )
    assert out.loc[1, "answer"] == expected.answer and out.loc[1, "kind"] == "yes_no"
    assert "not base64 image data" in out.loc[2, "error"]
    assert "expected a JSON list" in out.loc[3, "error"]


@pytest.mark.slow
def test_served_model_answers_over_rest(tiny_checkpoint, room_image, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # for get_model_info below; nothing global is set
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("ask", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    info = log_pyfunc_model(tiny_checkpoint, run.info.run_id, uri, "hispatial-xyz", point_map_model="none")
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    client.set_registered_model_alias("hispatial-xyz", "champion", info.registered_model_version)
    version = client.get_model_version("hispatial-xyz", str(info.registered_model_version))
    assert version.run_id == run.info.run_id
    logged = mlflow.models.get_model_info("models:/hispatial-xyz@champion")
    assert logged.signature == SIGNATURE and logged.saved_input_example_info is not None
    # `hispatial ask --checkpoint models:/<name>/<alias>` loads the checkpoint inside the registered model
    asker = SpatialAsker.from_checkpoint("models:/hispatial-xyz/champion", tracking_uri=uri)
    boxes = [[20, 30, 60, 80], [100, 50, 140, 100]]
    expected = asker.ask(AskRequest(image=room_image, question="How far is {b1} from {b2}?", boxes=boxes))

    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            "models:/hispatial-xyz@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(PORT),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/ping", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"server did not come up: {(tmp_path / 'serve.log').read_text()[-2000:]}")
                time.sleep(1)
        image = base64.b64encode(room_image.read_bytes()).decode()
        reply = _post(
            f"http://127.0.0.1:{PORT}/invocations",
            {
                "dataframe_records": [
                    {"image": image, "question": "How far is {b1} from {b2}?", "boxes": json.dumps(boxes)},
                    {"image": image, "question": "Where is {p1}?", "points": "[[999, 1]]"},
                ]
            },
        )["predictions"]
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        log.close()
    assert reply[0]["answer"] == expected.answer and reply[0]["kind"] == "length" and reply[0]["error"] == ""
    assert json.loads(reply[0]["value"]) == expected.value
    assert reply[1]["answer"] == "" and "point 1 (999, 1) lies outside the 160x120 image" in reply[1]["error"]
