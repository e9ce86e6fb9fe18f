"""The docs check: shell blocks in the docs are run, so a claim that stops holding fails the test command.

Marker convention (an HTML comment on the line right before a fenced ```bash / ```sh / ```shell / ```console
block; Markdown renders nothing for it):

    <!-- runnable -->                     run in the test command (CI): cheap commands only (seconds)
    <!-- runnable: slow -->               run only with `bash scripts/test.sh -m slow` (minutes, e.g. the demo)
    <!-- runnable: slow; skip: CMD -->    as above, without the line CMD (several: CMD | CMD); e.g. the test
                                          command itself, which CI runs anyway
    <!-- needs: WHAT -->                  never run here, because it needs WHAT (weights, gpu, cluster, data,
                                          a long-running server, a DVC remote, ...); listed in README.md

Every shell block in the checked files must carry one of these markers (an unmarked block fails
`test_every_shell_block_is_marked`), and every `needs:` block must appear in README.md's list "Docs blocks that
are not run". Runnable blocks run with `bash -euo pipefail`, in order, in a sandbox that mirrors the repository root
through symlinks (so `.venv/bin/...`, `scripts/...` and `mlflow/...` work as written) with its own empty `data/`
(HISPATIAL_DATA_ROOT), DAGSTER_HOME and MLFLOW_TRACKING_URI, so nothing lands in the checkout. `.venv/bin` is first
on PATH (bare `python` and `hispatial` are the project's) and the checkout is first on PYTHONPATH. The CI blocks of
all files share one sandbox, run in the order of DOCS; so do the slow ones.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [
    "README.md",
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")),
    "deploy/README.md",
    "mlflow/README.md",
    "evaluation/README.md",
]
SHELL = {"bash", "sh", "shell", "console"}
MARKER = re.compile(r"<!--\s*(runnable(?::\s*slow)?|needs:[^>]*?)(?:;\s*skip:\s*(?P<skip>[^>]*?))?\s*-->\s*$")
FENCE = re.compile(r"^(```|~~~)\s*(?P<lang>[\w-]*)[^\n]*$")
NOT_RUN_HEADING = "Docs blocks that are not run"


@dataclass(frozen=True)
class Block:
    path: str
    line: int  # of the opening fence
    lang: str
    marker: str | None  # "runnable", "runnable: slow", "needs: ..." or None
    skip: tuple[str, ...]
    code: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def shell_blocks(path: str) -> list[Block]:
    lines = (REPO / path).read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].startswith(fence.group(1)):
            body.append(lines[i])
            i += 1
        i += 1
        if fence.group("lang") not in SHELL:
            continue
        previous = lines[start - 1].strip() if start else ""
        marker = MARKER.match(previous)
        skip = (
            tuple(s.strip() for s in (marker.group("skip") or "").split("|") if s.strip()) if marker else ()
        )
        blocks.append(
            Block(
                path,
                start + 1,
                fence.group("lang"),
                marker and marker.group(1).strip(),
                skip,
                "\n".join(body),
            )
        )
    return blocks


ALL = [b for path in DOCS if (REPO / path).exists() for b in shell_blocks(path)]


def _command_lines(block: Block) -> str:
    kept = []
    for line in block.code.splitlines():
        command = line.split("  #")[0].strip()
        if command in block.skip:
            continue
        kept.append(line)
    missing = set(block.skip) - {line.split("  #")[0].strip() for line in block.code.splitlines()}
    assert not missing, f"{block.where}: skip names lines the block does not have: {missing}"
    return "\n".join(kept)


def test_every_shell_block_is_marked() -> None:
    unmarked = [b.where for b in ALL if b.marker is None]
    assert not unmarked, (
        "shell blocks without a docs-check marker (see the top of tests/test_docs.py: <!-- runnable -->, "
        f"<!-- runnable: slow -->, or <!-- needs: WHAT -->): {unmarked}"
    )


def test_blocks_that_are_not_run_are_listed_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    assert NOT_RUN_HEADING in readme
    listed = readme.split(NOT_RUN_HEADING, 1)[1].split("\n## ", 1)[0]
    for block in ALL:
        if block.marker and block.marker.startswith("needs:"):
            assert f"`{block.path}`" in listed and block.marker[len("needs:") :].strip() in listed, (
                block.where
            )


def test_the_checker_sees_the_marked_blocks() -> None:
    # the parser itself: a marker is read from the line before the fence, and a skip list from the marker
    assert any(b.marker == "runnable" for b in ALL)
    [demo] = [b for b in ALL if "bash scripts/demo.sh" in b.code]
    assert demo.marker == "runnable: slow" and demo.skip == ("bash scripts/test.sh",)
    assert "scripts/test.sh" not in _command_lines(demo)


def _sandbox(tmp: Path) -> tuple[Path, dict[str, str]]:
    """A directory that looks like the repository root (symlinks) with its own data/, DAGSTER_HOME and MLflow."""
    box = tmp / "repo"
    box.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in {"data", ".git"}:
            (box / entry.name).symlink_to(entry)
    (box / "data").mkdir()
    venv_bin = REPO / ".venv" / "bin"
    if (
        not venv_bin.exists()
    ):  # a checkout without its own venv (a worktree sharing one): the running interpreter's
        (box / ".venv").unlink(missing_ok=True)
        (box / ".venv").symlink_to(Path(sys.executable).parent.parent)
        venv_bin = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "HISPATIAL_DATA_ROOT": str(box / "data"),
        "DAGSTER_HOME": str(box / "data" / ".dagster"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "DO_NOT_TRACK": "1",
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    return box, env


def _run_blocks(blocks: list[Block], tmp: Path, timeout: int) -> None:
    assert blocks
    box, env = _sandbox(tmp)
    for block in blocks:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", _command_lines(block)],
            cwd=box,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, (
            f"{block.where} failed (exit {done.returncode}):\n{block.code}\n--- stdout\n{done.stdout[-3000:]}"
            f"\n--- stderr\n{done.stderr[-3000:]}"
        )


def test_runnable_blocks_hold(tmp_path) -> None:
    _run_blocks([b for b in ALL if b.marker == "runnable"], tmp_path, timeout=300)


@pytest.mark.slow
def test_slow_runnable_blocks_hold(tmp_path) -> None:
    if not (REPO / ".venv").is_dir():
        pytest.skip(
            "the slow blocks run scripts/setup.sh, which would reinstall a venv this checkout does not own"
        )
    _run_blocks([b for b in ALL if b.marker == "runnable: slow"], tmp_path, timeout=1800)
