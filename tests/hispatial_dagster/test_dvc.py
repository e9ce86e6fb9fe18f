"""`dvc repro` / `push` / `pull` of the real pipeline (dvc.yaml) in a temporary git repository with a local remote.

Slow (each stage is a `hispatial stage` process: about a minute on 2 busy cores), so marked slow."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def run(args: list[str], cwd: Path, env: dict) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_repro_push_pull(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    env.pop("DAGSTER_HOME", None)
    env.pop("HISPATIAL_DATA_ROOT", None)
    shutil.copy(REPO / "dvc.yaml", work / "dvc.yaml")
    (work / "params.yaml").write_text(
        "data_root: data\nshards:\n  synthetic-000: {kind: synthetic, seed: 2, num_scenes: 3}\nbenchmarks: [custom]\n"
    )
    run(["git", "init", "-q"], work, env)
    run([str(BIN / "dvc"), "init", "-q"], work, env)
    run([str(BIN / "dvc"), "remote", "add", "-d", "local", str(tmp_path / "remote")], work, env)

    out = run([str(BIN / "dvc"), "repro", "qa_dataset"], work, env)
    assert "Running stage 'qa_shards@synthetic-000'" in out
    qa = work / "data" / "qa_shards" / "synthetic-000" / "qa.parquet"
    manifest = work / "data" / "qa_dataset" / "_manifest.json"
    assert qa.exists() and manifest.exists()
    lock = (work / "dvc.lock").read_text()
    assert "source_images@synthetic-000" in lock and "qa_dataset" in lock
    # The stages ran the Dagster assets: the instance under the data root recorded them.
    assert (work / "data" / ".dagster" / "storage").is_dir()

    # Unchanged inputs: nothing runs again.
    assert "Running stage" not in run([str(BIN / "dvc"), "repro", "qa_dataset"], work, env)

    run([str(BIN / "dvc"), "push", "--with-deps", "qa_dataset"], work, env)
    before = {p: sha(p) for p in (qa, manifest)}
    # (The .gitignore files DVC writes next to outputs belong in git; only the data goes.)
    shutil.rmtree(work / "data" / "qa_shards" / "synthetic-000")
    shutil.rmtree(work / "data" / "qa_dataset")
    shutil.rmtree(work / ".dvc" / "cache")
    run([str(BIN / "dvc"), "pull", "--with-deps", "qa_dataset"], work, env)
    assert {p: sha(p) for p in (qa, manifest)} == before

    # Restored as pushed; then a changed parameter puts that shard's spec stage out of date.
    assert "up to date" in run([str(BIN / "dvc"), "status", "--with-deps", "qa_dataset"], work, env).lower()
    (work / "params.yaml").write_text(
        "data_root: data\nshards:\n  synthetic-000: {kind: synthetic, seed: 2, num_scenes: 4}\nbenchmarks: [custom]\n"
    )
    status = run([str(BIN / "dvc"), "status", "--with-deps", "qa_dataset"], work, env)
    assert "shard_spec@synthetic-000" in status and "modified:           shards.synthetic-000" in status
