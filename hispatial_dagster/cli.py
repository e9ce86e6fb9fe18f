"""`hispatial`: the command line of the platform.

    hispatial demo                     two synthetic shards -> QA dataset -> checkpoint -> custom benchmark
    hispatial register SHARD ...       write a shard spec into the inbox (what the sensor watches)
    hispatial stage NAME --shard S     materialize one asset (one partition) -- what `dvc repro` runs
    hispatial status                   materialized / stale / failed per asset and partition
    hispatial ui                       start `dagster dev` on 127.0.0.1 for this instance
    hispatial export OUT [--tasks ...]  LLaVA JSON + Hugging Face layout of a chosen subset of the QA release
    hispatial ask IMAGE "question"     ask a checkpoint about an image (batch: a folder or JSONL; --web: a page)

Every command runs the Dagster assets themselves, in-process, on the persistent instance at DAGSTER_HOME (default
`<data root>/.dagster`), so whatever the CLI or DVC materializes shows up in `dagster dev` afterwards and the same
code path computes it. Dagster is imported lazily so `--help` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from hispatial_dagster.shards import (
    SHARD_STAGES,
    SOURCE_KINDS,
    ShardSpec,
    ShardSpecError,
    check_location,
    describe_validation_error,
    synthetic_shard_key,
    validate_shard_key,
)
from hispatial_dagster.status import STAGES, asset_status

# A pipe or CI log gets a readable width instead of rich's 80-column fallback.
console = Console(stderr=False, highlight=False, width=None if sys.stdout.isatty() else 140)


def _data_root(args: argparse.Namespace) -> Path:
    if getattr(args, "data_root", None):
        os.environ["HISPATIAL_DATA_ROOT"] = str(Path(args.data_root).expanduser().resolve())
    from hispatial_dagster.resources import default_data_root

    return Path(default_data_root()).expanduser().resolve()


def _defs():
    """The code location with resources read from the environment now (after --data-root was applied)."""
    from hispatial_dagster.definitions import build_defs

    return build_defs()


def register_shards(root: Path, specs: dict[str, ShardSpec], instance: Any) -> list[str]:
    """Write spec files into the inbox and add the partitions; returns the keys that were new partitions.

    The same mechanism as the inbox sensor, done eagerly, so the demo needs no daemon."""
    from hispatial_dagster.partitions import SOURCE_SHARDS
    from hispatial_dagster.resources import SourceInbox

    inbox = SourceInbox().inbox(root)
    for shard, spec in specs.items():
        try:
            current = inbox.read(shard)
        except ValueError:
            current = None
        if current != spec:
            inbox.write(shard, spec)
    known = set(instance.get_dynamic_partitions(SOURCE_SHARDS))
    new = [s for s in specs if s not in known]
    if new:
        instance.add_dynamic_partitions(SOURCE_SHARDS, new)
    return new


def run_job(
    defs: Any,
    job_name: str,
    instance: Any,
    partition_key: str | None = None,
    asset_names: Sequence[str] | None = None,
) -> Any:
    """Execute a job of the code location in this process on `instance` (the run is recorded there)."""
    import dagster as dg

    from hispatial_dagster.instance import (
        GPU_POOL,
        fail_orphaned_runs,
        process_tags,
        wait_for_slot,
        watch_slot_wait,
    )

    for run_id in fail_orphaned_runs(instance):
        console.print(f"[yellow]marked run {run_id} failed: its process is gone[/]")
    job = defs.resolve_job_def(job_name)
    selection = [dg.AssetKey(name) for name in asset_names] if asset_names else None
    level = os.environ.get(
        "HISPATIAL_LOG_LEVEL", "WARNING"
    )  # Dagster's per-event DEBUG lines drown the progress
    asset_graph = defs.resolve_asset_graph()
    keys = selection or job.asset_layer.selected_asset_keys
    say = lambda text: console.print(f"[yellow]{text}[/]")  # noqa: E731
    needs_gpu = any(GPU_POOL in asset_graph.get(key).pools for key in keys)
    if needs_gpu:
        wait_for_slot(instance, say)
    run_id = str(uuid.uuid4())  # known before the run starts, so the slot watcher can find it
    with watch_slot_wait(instance, run_id, say) if needs_gpu else contextlib.nullcontext():
        return job.execute_in_process(
            run_config={"loggers": {"console": {"config": {"log_level": level}}}},
            instance=instance,
            tags=process_tags(),
            partition_key=partition_key,
            asset_selection=selection,
            raise_on_error=False,
            run_id=run_id,
        )


def _summarize(result: Any) -> list[dict[str, Any]]:
    rows = []
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta = mat.metadata
        value = lambda key, meta=meta: meta[key].value if key in meta else ""  # noqa: E731

        rows.append(
            {
                "asset": mat.asset_key.to_user_string(),
                "partition": mat.partition or "",
                "in": value("num_in"),
                "out": value("num_out"),
                "rejected": value("num_rejected"),
                "score": value("score") if "score" in meta else value("metric/val/accuracy/all"),
                "mlflow run": value("mlflow_run_id"),
            }
        )
    for event in result.get_asset_check_evaluations():
        rows.append(
            {
                "asset": f"check {event.asset_check_key.name}",
                "partition": event.partition or "",
                "in": "",
                "out": "passed" if event.passed else "FAILED",
                "rejected": "",
                "score": "",
                "mlflow run": "",
            }
        )
    return rows


# Dagster's wrappers around the error an asset raised: the line names what is inside them instead.
_FRAMEWORK_ERRORS = {"DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"}


def _one_line(error: Any) -> str:
    text = " ".join(error.message.split())
    return text.removeprefix("dagster._core.definitions.events.")  # "Failure: <our message>"


def _failure_text(result: Any) -> str:
    """The cause of a failed run in one line: the failed step, the error its code raised and, when that error
    was raised from another one, that one too (Dagster's own message only says which step failed)."""
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            if error is None:
                return f"{event.step_key}: failed"
            while error.cls_name in _FRAMEWORK_ERRORS and error.cause is not None:
                error = error.cause
            line = f"{event.step_key}: {_one_line(error)}"
            cause = error.cause or error.context
            return f"{line} (from {_one_line(cause)})" if cause is not None else line
    for event in result.all_events:
        if event.event_type_value == "RUN_FAILURE":
            return " ".join((event.message or "run failed").split())
    return "run failed"


def quiet_libraries() -> None:
    """Keep library chatter out of the demo's console, so what it prints is our progress: Lightning's info lines
    and tips ("GPU available", "💡 Tip ...") and deprecation/future warnings of the libraries we call (this process
    and the step subprocesses it starts, through PYTHONWARNINGS). Warnings of other kinds still show."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning,ignore::FutureWarning")


def cmd_demo(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from hispatial_dagster.instance import open_instance

    quiet_libraries()
    root = _data_root(args)
    instance = open_instance(root)
    defs = _defs()
    specs = {
        synthetic_shard_key(i): ShardSpec(kind="synthetic", seed=args.seed + i, num_scenes=args.scenes)
        for i in range(args.shards)
    }
    register_shards(root, specs, instance)
    console.print(
        f"[bold]HiSpatial demo[/] data root [cyan]{root}[/], DAGSTER_HOME [cyan]{instance.root_directory}[/]"
    )

    plan: list[tuple[str, str, str | None, list[str] | None]] = [
        (f"shard {shard}", "shard_job", shard, None) for shard in specs
    ]
    have_training = importlib.util.find_spec("training.train") is not None and not args.no_train
    have_eval = importlib.util.find_spec("evaluation.run") is not None and not args.no_train
    plan.append(
        (
            "QA dataset" + (" + checkpoint" if have_training else ""),
            "dataset_job",
            None,
            None if have_training else ["qa_dataset"],
        )
    )
    if have_training and have_eval:
        plan.append((f"benchmark {args.benchmark}", "benchmark_job", args.benchmark, None))

    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        overall = progress.add_task("runs", total=len(plan))
        for label, job_name, partition, assets in plan:
            progress.update(overall, description=f"running {label}")
            result = run_job(defs, job_name, instance, partition_key=partition, asset_names=assets)
            rows.extend(_summarize(result))
            if not result.success:
                progress.stop()
                console.print(
                    f"[red]{label} failed[/] (run {result.run_id}): {_failure_text(result)}", soft_wrap=True
                )
                return 1
            progress.advance(overall)
    _print_rows(rows, title=f"Demo materializations ({time.perf_counter() - started:.0f} s)")
    if not have_training:
        console.print("[yellow]training.train is not available: stopped after qa_dataset[/]")
    console.print("Inspect: [bold]hispatial status[/], [bold]hispatial ui[/]")
    return 0


def _print_rows(rows: list[dict[str, Any]], title: str) -> None:
    if not rows:
        return
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


def cmd_register(args: argparse.Namespace) -> int:
    from hispatial_dagster.instance import open_instance
    from hispatial_dagster.resources import SourceInbox

    root = _data_root(args)
    try:
        shard = validate_shard_key(args.shard)
        spec = ShardSpec.model_validate(
            {"kind": args.kind, "seed": args.seed, "num_scenes": args.num_scenes, "path": args.path}
        )
        check_location(spec, origin=f"shard {shard}")
    except ValidationError as err:
        console.print(
            f"[red]invalid shard spec for {args.shard}:[/] {describe_validation_error(err)}", soft_wrap=True
        )
        return 2
    except ShardSpecError as err:
        console.print(f"[red]invalid shard spec:[/] {err}", soft_wrap=True)
        return 2
    inbox = SourceInbox().inbox(root)
    if shard in inbox.shard_keys() and not args.replace:
        try:
            current: str = inbox.read(shard).model_dump_json()
        except ShardSpecError as err:
            current = f"an unusable spec ({err})"
        if current != spec.model_dump_json():
            console.print(
                f"[red]shard {shard} is already registered as {current}[/]; pass --replace to redefine it "
                "(its partition is then built from the new spec on its next run)",
                soft_wrap=True,
            )
            return 2
    new = register_shards(root, {shard: spec}, open_instance(root))
    console.print(f"registered {shard} ({'new partition' if new else 'existing partition'})")
    return 0


def cmd_stage(args: argparse.Namespace) -> int:
    """Materialize one asset for one partition: shard stages need --shard, benchmark_scores --benchmark."""
    from hispatial_dagster.instance import open_instance

    root = _data_root(args)
    instance = open_instance(root)
    defs = _defs()
    partition: str | None = None
    if args.name in SHARD_STAGES:
        if not args.shard:
            console.print(f"[red]{args.name} is partitioned by shard: pass --shard[/]")
            return 2
        from hispatial_dagster.partitions import SOURCE_SHARDS
        from hispatial_dagster.resources import SourceInbox

        partition = validate_shard_key(args.shard)
        if partition not in instance.get_dynamic_partitions(SOURCE_SHARDS):
            # A new partition only for a usable spec, as the sensor and `register` do.
            try:
                check_location(SourceInbox().inbox(root).read(partition), origin=f"shard {partition}")
            except ShardSpecError as err:
                console.print(f"[red]cannot add partition {partition}:[/] {err}", soft_wrap=True)
                return 2
            instance.add_dynamic_partitions(SOURCE_SHARDS, [partition])
        job_name = "shard_job"
    elif args.name == "benchmark_scores":
        partition = args.benchmark
        job_name = "benchmark_job"
    else:
        job_name = "dataset_job"
    result = run_job(defs, job_name, instance, partition_key=partition, asset_names=[args.name])
    _print_rows(_summarize(result), title=f"{args.name}" + (f" [{partition}]" if partition else ""))
    if not result.success:
        console.print(
            f"[red]{args.name} failed[/] (run {result.run_id}): {_failure_text(result)}", soft_wrap=True
        )
        return 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from hispatial_dagster.instance import fail_orphaned_runs, open_instance

    root = _data_root(args)
    instance = open_instance(root)
    fail_orphaned_runs(instance)  # a killed CLI run would otherwise show as "in progress" forever
    rows = asset_status(instance, _defs())
    table = Table(title=f"Assets in {instance.root_directory}")
    for column in ("asset", "partition", "status"):
        table.add_column(column)
    colors = {"materialized": "green", "failed": "red", "missing": "dim"}
    for row in rows:
        color = colors.get(row["status"].split(" ")[0], "yellow")
        table.add_row(row["asset"], row["partition"], f"[{color}]{row['status']}[/]")
    console.print(table)
    return 0


def ui_command(port: int) -> list[str]:
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    return [dagster, "dev", "-h", "127.0.0.1", "-p", str(port), "-m", "hispatial_dagster.definitions"]


def cmd_ui(args: argparse.Namespace) -> int:
    from hispatial_dagster.instance import ensure_dagster_home, prepare_instance
    from hispatial_dagster.supervise import run_supervised

    root = _data_root(args)
    home = ensure_dagster_home(root)
    command = ui_command(args.port)
    print(f"DAGSTER_HOME={home} {' '.join(command)}")  # plain print: a copy-pasteable line, never re-wrapped
    if args.print_only:
        return 0
    prepare_instance(root)  # the webserver, daemon and code server would otherwise race to create its schemas
    env = {**os.environ, "DAGSTER_HOME": str(home), "HISPATIAL_DATA_ROOT": str(root)}
    # Ctrl-C or SIGTERM ends the whole tree (webserver, daemon, code servers) within seconds.
    return run_supervised(command, env)


def cmd_mlflow(args: argparse.Namespace) -> int:
    from hispatial_dagster import tracking
    from hispatial_dagster.resources import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri()
    if args.mlflow_command == "register":
        registrations = tracking.register_best_checkpoints(uri, args.experiment, args.metric)
        if not registrations:
            console.print(f"no finished full-mixture run with {args.metric} in {args.experiment!r} at {uri}")
            return 1
        _print_rows([r.__dict__ for r in registrations], title=f"Registered best checkpoints ({args.metric})")
        return 0
    runs = tracking.runs_frame(uri, args.experiment)
    items = tracking.load_run_items(uri, list(runs["run_id"])) if not runs.empty else {}
    table = tracking.level_ablation_table(runs, group_tag=args.group_by, items=items)
    if table.empty:
        console.print(f"no runs with per-level metrics in {args.experiment!r} at {uri}")
        return 1
    _print_rows(
        tracking.display_rows(table), title="Held-out accuracy per level, mean [95% CI over scenes and runs]"
    )
    if args.plot:
        console.print(f"plot: {tracking.plot_ablation(table, Path(args.plot))}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """LLaVA JSON and the HF layout of the released rows matching --levels/--tasks/--formats/--shards."""
    from assets.qa.dataset import export_subset
    from assets.stage import DataError

    try:
        summary = export_subset(
            _data_root(args),
            Path(args.out),
            levels=args.levels,
            tasks=args.tasks,
            formats=args.formats,
            shards=args.shards,
            license=args.license,
        )
    except DataError as err:
        console.print(f"[red]{err}[/]")
        return 2
    console.print(
        f"exported {sum(summary.rows.values())} pairs to {args.out}: llava.json "
        f"({summary.llava_records} records), hf/ ({', '.join(sorted(summary.hf_files))})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hispatial", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", help="data root (default: $HISPATIAL_DATA_ROOT or <repo>/data)")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="register synthetic shards and materialize the whole graph")
    demo.add_argument("--shards", type=int, default=2, help="number of synthetic shards (default 2)")
    demo.add_argument("--scenes", type=int, default=50, help="scenes per shard (default 50)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the first shard; shard i uses seed+i")
    demo.add_argument("--benchmark", default="custom", help="benchmark partition to score (default custom)")
    demo.add_argument("--no-train", action="store_true", help="stop after qa_dataset")
    demo.set_defaults(func=cmd_demo)

    register = sub.add_parser("register", help="write a shard spec into the inbox and add its partition")
    register.add_argument("shard", help="partition key, e.g. synthetic-002")
    register.add_argument("--kind", default="synthetic", choices=SOURCE_KINDS)
    register.add_argument("--seed", type=int, default=0)
    register.add_argument("--num-scenes", type=int, default=50)
    register.add_argument("--path", default=None, help="source location for file-based kinds (fsspec URL)")
    register.add_argument("--replace", action="store_true", help="redefine a shard already in the inbox")
    register.set_defaults(func=cmd_register)

    stage = sub.add_parser("stage", help="materialize one asset for one partition (what DVC stages run)")
    stage.add_argument("name", choices=STAGES)
    stage.add_argument("--shard", help="source shard (for the six per-shard stages)")
    stage.add_argument("--benchmark", default="custom", help="benchmark (for benchmark_scores)")
    stage.set_defaults(func=cmd_stage)

    status = sub.add_parser("status", help="materialized / stale / failed per asset and partition")
    status.set_defaults(func=cmd_status)

    ml = sub.add_parser("mlflow", help="register best checkpoints; compare level-ablation runs")
    ml.add_argument("mlflow_command", choices=["register", "compare"])
    ml.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI or sqlite under <repo>/mlflow")
    ml.add_argument("--experiment", default="hispatial-training")
    ml.add_argument("--metric", default="val/accuracy/all", help="metric that picks the best run (register)")
    ml.add_argument("--plot", help="write the ablation bar plot to this PNG (compare)")
    ml.add_argument(
        "--group-by",
        default="levels",
        choices=["levels", "variant"],
        help="compare runs by the levels they trained on, or by model variant (compare)",
    )
    ml.set_defaults(func=cmd_mlflow)

    ui = sub.add_parser("ui", help="start `dagster dev` on 127.0.0.1 for this instance")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--print-only", action="store_true", help="print the command instead of running it")
    ui.set_defaults(func=cmd_ui)

    export = sub.add_parser("export", help="LLaVA JSON + HF layout of a chosen subset of the QA release")
    export.add_argument("out", help="output directory (replaced atomically)")
    export.add_argument("--levels", nargs="+", help="e.g. L1 L2")
    export.add_argument("--tasks", nargs="+", help="e.g. size relative_direction")
    export.add_argument("--formats", nargs="+", help="free_form multiple_choice true_false")
    export.add_argument("--shards", nargs="+", help="e.g. synthetic-000")
    export.add_argument("--license", default="apache-2.0", help="licence id for the dataset card")
    export.set_defaults(func=cmd_export)

    from inference.cli import add_ask_parser  # `hispatial ask` lives with the inference package

    add_ask_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
