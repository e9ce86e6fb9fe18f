"""The HiSpatial asset graph. Each asset names its upstream, calls exactly one plain-Python entry point (the stage
contract in docs/ARCHITECTURE.md) and turns the returned report into metadata; no computation lives here.

    source_images -> filtered_images -> point_maps -> object_clouds -> object_references -> qa_shards  (per shard)
    qa_dataset (all shards) -> checkpoint -> benchmark_scores (per benchmark)

Data flows through files under the data root, not through Dagster IO managers, so every asset declares its
upstream with `deps` and returns a `MaterializeResult`. Stages that run a neural network (point_maps,
object_clouds, checkpoint, benchmark_scores) share the `gpu` concurrency pool (see deploy/README.md).
"""

import math
import os
from pathlib import Path
from typing import Any

import dagster as dg
import fsspec
import yaml

from assets.stage import RunReport, StageReport
from assets.storage import read_scenes
from hispatial_dagster.automation import downstream_condition
from hispatial_dagster.metadata import _scalar_metadata, content_digest, markdown_table, stage_result
from hispatial_dagster.partitions import SOURCE_SHARDS, benchmarks, source_shards
from hispatial_dagster.resources import (
    DataRoot,
    EvalSettings,
    FilterSettings,
    LLMEndpoint,
    MLflowTracking,
    QASettings,
    SourceInbox,
    SyntheticSource,
    TrainingSettings,
    WildModels,
)
from hispatial_dagster.shards import SOURCE_KINDS, SPEC_FINGERPRINT_KEY, ShardSpec, fingerprint

GPU_POOL = "gpu"


K8S_STEP_CONFIG = yaml.safe_load((Path(__file__).with_name("k8s_step_config.yaml")).read_text())


def _gpu_tags(asset_name: str) -> dict[str, Any]:
    """Per-step Kubernetes resources (GPU limit, node selector) for the k8s_job_executor; ignored elsewhere."""
    return {"dagster-k8s/config": K8S_STEP_CONFIG[asset_name]}


def _ground_truth_metadata(report: StageReport, passed_through: int, inbox: SourceInbox, root: Path) -> dict:
    """Say how many scenes kept their ground truth instead of being estimated (all of a synthetic shard's)."""
    return {
        "source_kind": inbox.inbox(root).read(report.shard).kind,
        "ground_truth_scenes": passed_through,
        "ground_truth_passthrough": report.num_out > 0 and passed_through == report.num_out,
    }


# ------------------------------------------------------------------------------------------ per-shard stages


@dg.asset(
    partitions_def=source_shards,
    group_name="sources",
    kinds={"python"},
    code_version="2",
    description="Images and ground truth of one source shard, as declared by its spec file in the inbox.",
)
def source_images(
    context: dg.AssetExecutionContext,
    data_root: DataRoot,
    source_inbox: SourceInbox,
    synthetic: SyntheticSource,
) -> dg.MaterializeResult:
    shard = context.partition_key
    spec = source_inbox.inbox(data_root.root).read(shard)
    spec_fingerprint = fingerprint(spec)  # before reading: a file added during the run re-triggers the shard
    report = _write_source(data_root.root, shard, spec, synthetic)
    if report.num_out == 0 and report.rejections:
        first = "; ".join(f"{r.item}: {r.reason}" for r in report.rejections[:5])
        raise dg.Failure(
            description=f"shard {shard}: all {report.num_in} items were rejected, no scene to go on with "
            f"(every reason is in {report.output_dir / 'rejected.jsonl'}); first reasons: {first}",
            metadata={
                "num_rejected": len(report.rejections),
                "rejected_file": str(report.output_dir / "rejected.jsonl"),
            },
        )
    extra = {"source_kind": spec.kind, "spec": spec.model_dump(), SPEC_FINGERPRINT_KEY: spec_fingerprint}
    return stage_result(report, data_root.root, extra=extra)


def _write_source(root: Path, shard: str, spec: ShardSpec, synthetic: SyntheticSource) -> StageReport:
    """The source writer for the spec's kind (assets.synthetic or assets.sources), with the spec's options."""
    if spec.kind == "synthetic":
        from assets.synthetic import write_synthetic_shard

        return write_synthetic_shard(root, shard, synthetic.config(spec.seed, spec.num_scenes, spec.options))
    from assets import official, sources

    if spec.kind not in SOURCE_KINDS:
        raise dg.Failure(
            f"shard {shard}: unknown source kind {spec.kind!r}; known: {', '.join(SOURCE_KINDS)}"
        )
    if spec.path is None:
        raise dg.Failure(f"shard {shard}: a {spec.kind!r} source needs `path` in its spec")
    location = local_copy(spec.path, root / "_downloads" / shard)
    options = dict(spec.options)
    if spec.kind == "images":
        return sources.images_shard(root, shard, location, **options)
    if spec.kind in ("coco", "objects365", "omni3d"):
        from assets.omni3d import omni3d_shard

        writer = omni3d_shard if spec.kind == "omni3d" else sources.coco_shard
        annotation_file = location / options.pop("annotation_file")
        return writer(root, shard, annotation_file=annotation_file, image_dir=location, **options)
    if spec.kind == "ca1m":
        from assets.ca1m import ca1m_shard

        return ca1m_shard(root, shard, sorted(location.glob("*.tar")), **options)
    return official.hispatial_shard(root, shard, sorted(location.glob("*.tar")), **options)


def local_copy(url: str, cache_dir: Path) -> Path:
    """A local directory for a source location: the path itself when local, else a copy fetched with fsspec."""
    fs, path = fsspec.core.url_to_fs(url)
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return Path(path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fs.get(path.rstrip("/") + "/", str(cache_dir) + "/", recursive=True)
    return cache_dir


@dg.asset(
    partitions_def=source_shards,
    deps=[source_images],
    group_name="sources",
    kinds={"python"},
    code_version="1",
    description="Scenes that pass the paper's image filters; each rejection with its reason.",
)
def filtered_images(
    context: dg.AssetExecutionContext,
    data_root: DataRoot,
    filters: FilterSettings,
    llm: LLMEndpoint,
    wild_models: WildModels,
) -> dg.MaterializeResult:
    from assets.filtering import filter_shard

    vlm_filter = filters.vlm_image_filter(llm, cache_dir=data_root.root / ".llm_cache")
    report = filter_shard(
        data_root.root,
        context.partition_key,
        filters.config(),
        clip_filter=wild_models.clip_filter(),
        vlm_filter=vlm_filter,
    )
    unchecked = report.metadata.get("vlm_filter_unchecked")  # the filter's counters are in the report
    if unchecked:
        context.log.warning(
            f"{unchecked} images were kept without a VLM verdict (endpoint failure or budget); "
            "re-materialize this partition to check them (verdicts already given are cached)"
        )
    return stage_result(report, data_root.root)


@dg.asset(
    partitions_def=source_shards,
    deps=[filtered_images],
    group_name="geometry",
    kinds={"pytorch"},
    code_version="2",
    pool=GPU_POOL,
    op_tags=_gpu_tags("point_maps"),
    description="Metric point maps per scene (ground truth passed through for synthetic shards, else MoGe-2).",
)
def point_maps(
    context: dg.AssetExecutionContext, data_root: DataRoot, source_inbox: SourceInbox, wild_models: WildModels
) -> dg.MaterializeResult:
    from assets.point_maps import point_maps_shard

    report = point_maps_shard(
        data_root.root, context.partition_key, estimator=wild_models.point_map_estimator()
    )
    passed = int(report.metadata.get("point_maps_ground_truth", 0))
    extra = _ground_truth_metadata(report, passed, source_inbox, data_root.root)
    return stage_result(report, data_root.root, extra=extra)


@dg.asset(
    partitions_def=source_shards,
    deps=[point_maps],
    group_name="geometry",
    kinds={"pytorch"},
    code_version="1",
    pool=GPU_POOL,
    op_tags=_gpu_tags("object_clouds"),
    description="Per-object masks, point clouds and gravity-aligned 3D boxes.",
)
def object_clouds(
    context: dg.AssetExecutionContext, data_root: DataRoot, source_inbox: SourceInbox, wild_models: WildModels
) -> dg.MaterializeResult:
    from assets.objects import object_clouds_shard

    report = object_clouds_shard(
        data_root.root, context.partition_key, extractor=wild_models.object_extractor()
    )
    passed = sum(scene.has_ground_truth_3d for scene in read_scenes(report.output_dir / "scenes.jsonl"))
    extra = _ground_truth_metadata(report, passed, source_inbox, data_root.root)
    return stage_result(report, data_root.root, extra=extra)


@dg.asset(
    partitions_def=source_shards,
    deps=[object_clouds],
    group_name="geometry",
    kinds={"python"},
    code_version="1",
    description="A unique textual reference per object, or the highlighted-box fallback.",
)
def object_references(context: dg.AssetExecutionContext, data_root: DataRoot) -> dg.MaterializeResult:
    from assets.references import references_shard

    report = references_shard(data_root.root, context.partition_key)
    return stage_result(report, data_root.root)


@dg.asset(
    partitions_def=source_shards,
    deps=[object_references],
    group_name="qa",
    kinds={"python", "parquet"},
    code_version="1",
    description="QA pairs over levels L0-L3 and the eleven task types for one shard.",
)
def qa_shards(
    context: dg.AssetExecutionContext, data_root: DataRoot, qa: QASettings, llm: LLMEndpoint
) -> dg.MaterializeResult:
    from assets.qa.shards import qa_shard

    client = llm.client(cache_dir=data_root.root / ".llm_cache")
    report = qa_shard(data_root.root, context.partition_key, qa.config(), llm=client)
    extra = {f"llm_{k}" if not k.startswith("llm_") else k: v for k, v in _llm_stats(client).items()}
    return stage_result(report, data_root.root, extra=extra, thumbnail=False)


def _llm_stats(client: Any | None) -> dict[str, int]:
    return client.stats.as_dict() if client is not None else {}


# ---------------------------------------------------------------------------------------- whole-dataset stages


def _dataset_shards(context: dg.AssetExecutionContext, root: Path) -> list[str]:
    """Shards whose qa.parquet is on disk, restricted to registered partitions when any are registered.

    The disk is the truth (DVC may have restored shards that this instance never materialized); registration
    keeps a shard whose partition was deleted out of the release."""
    from assets.qa.shards import written_shards

    on_disk = set(written_shards(root))
    registered = set(context.instance.get_dynamic_partitions(SOURCE_SHARDS))
    return sorted(on_disk & registered if registered else on_disk)


@dg.asset(
    deps=[qa_shards],
    group_name="qa",
    kinds={"python", "parquet"},
    code_version="2",
    automation_condition=downstream_condition("qa_dataset"),
    description="The QA dataset release over all materialized shards: manifest, counts and answer plots, quality "
    "report (also an MLflow run), LLaVA JSON and Hugging Face exports.",
)
def qa_dataset(
    context: dg.AssetExecutionContext, data_root: DataRoot, mlflow_tracking: MLflowTracking, llm: LLMEndpoint
) -> dg.MaterializeResult:
    from assets.qa.curation import CurationSettings, curate_release
    from assets.qa.dataset import build_qa_dataset, read_quality
    from training.mlflow_runs import log_release_to_mlflow

    shards = _dataset_shards(context, data_root.root)
    if not shards:
        raise dg.Failure(f"no qa_shards/<shard>/qa.parquet under {data_root.root} to build the dataset from")
    curation = CurationSettings(  # optional model stages, off unless asked for
        rephrase_images=int(os.environ.get("HISPATIAL_QA_REPHRASE_IMAGES", "0")),
        judge_items=int(os.environ.get("HISPATIAL_QA_JUDGE_ITEMS", "0")),
        subset_size=int(os.environ.get("HISPATIAL_QA_DIVERSE_SUBSET", "0")),
        clip_model=os.environ.get("HISPATIAL_QA_CLIP_MODEL", ""),
    )
    client = llm.client(cache_dir=data_root.root / ".llm_cache") if curation.enabled else None
    if (curation.rephrase_images or curation.judge_items) and client is None:
        raise dg.Failure(
            "QA rephrasing/judging is switched on but no LLM endpoint is set (HISPATIAL_LLM_BASE_URL)"
        )
    try:
        scorer = curation.scorer()  # before the release is built: a misconfiguration fails fast
    except ValueError as err:
        raise dg.Failure(str(err)) from err
    report = build_qa_dataset(data_root.root, shards)
    quality = read_quality(data_root.root)
    if curation.enabled:
        curated = curate_release(
            data_root.root,
            client,
            rephrase_images=curation.rephrase_images,
            judge_items=curation.judge_items,
            scorer=scorer,
            subset_size=curation.subset_size,
        )
        report.metadata.update({**curated.as_metadata(), **_llm_stats(client)})
    run_id = log_release_to_mlflow(data_root.root, mlflow_tracking.tracking_uri)
    extra = {
        "shards": dg.MetadataValue.json(shards),
        "quality": dg.MetadataValue.json(
            {k: quality[k] for k in ("leaks", "unbalanced", "failures", "passed")}
        ),
        "answer_distribution": dg.MetadataValue.md(
            markdown_table(
                [
                    {"family": family, "answer": cls, "n": n, "share": round(n / sum(counts.values()), 3)}
                    for family, counts in quality["answer_distribution"].items()
                    for cls, n in counts.items()
                ],
                max_rows=500,
            )
        ),
        "mlflow_run_id": run_id,
        "mlflow_run_url": dg.MetadataValue.url(mlflow_tracking.run_url(run_id)),
    }
    return stage_result(report, data_root.root, extra=extra)


@dg.asset(
    deps=[qa_dataset],
    group_name="model",
    kinds={"pytorch", "mlflow"},
    code_version="1",
    pool=GPU_POOL,
    op_tags=_gpu_tags("checkpoint"),
    automation_condition=downstream_condition("checkpoint"),
    description="The fine-tuned RGB-D VLM trained on qa_dataset, linked to its MLflow run.",
)
def checkpoint(
    context: dg.AssetExecutionContext,
    data_root: DataRoot,
    training: TrainingSettings,
    mlflow_tracking: MLflowTracking,
) -> dg.MaterializeResult:
    from training.distributed import resolve_devices, run_torchrun, world_size_of
    from training.train import TrainReport, train_checkpoint

    # A crashed or killed earlier materialization resumes: train_checkpoint continues the run with this config and
    # data from its last resume checkpoint, in the same MLflow run (training/distributed.py).
    mlflow_tracking.activate()
    config = training.config(mlflow_tracking.tracking_uri)
    processes = world_size_of(config)
    if processes > 1:
        # Lightning's own launcher re-runs sys.argv, i.e. this Dagster step: torchrun starts the training CLI, the
        # one entry point of every launch (deploy/README.md); more than one node runs as a Kubernetes Job.
        if resolve_devices(config)[1] > 1:
            raise dg.Failure(
                f"num_nodes={config.num_nodes}: multi-node training runs as deploy/k8s/"
                "training-job-multinode.yaml (torchrun on every node), not inside one step"
            )
        out = run_torchrun(data_root.root, config, processes, log=context.log)
        report = TrainReport(**{**out, "checkpoint_dir": Path(out["checkpoint_dir"])})
    else:
        report = train_checkpoint(data_root.root, config)
    if report.resumed_from_step is not None:
        context.log.info(f"resumed MLflow run {report.run_id} from step {report.resumed_from_step}")
    extra = {
        "processes": processes,
        "resumed_from_step": report.resumed_from_step if report.resumed_from_step is not None else "no",
    }
    if config.mlflow.log_model_artifacts:  # also a servable pyfunc model, registered as hispatial-<variant>
        from inference.pyfunc import log_checkpoint_model

        logged = log_checkpoint_model(report.checkpoint_dir, report.run_id, report.tracking_uri, config)
        extra.update({f"mlflow_{key}": value for key, value in logged.items()})
    return _run_result(report, mlflow_tracking, extra=extra)


@dg.asset(
    partitions_def=benchmarks,
    deps=[checkpoint],
    group_name="model",
    kinds={"pytorch", "mlflow"},
    code_version="1",
    pool=GPU_POOL,
    op_tags=_gpu_tags("benchmark_scores"),
    automation_condition=downstream_condition("benchmark_scores"),
    description="Scores of the latest checkpoint on one benchmark, with per-item predictions.",
)
def benchmark_scores(
    context: dg.AssetExecutionContext,
    data_root: DataRoot,
    evaluation_settings: EvalSettings,
    mlflow_tracking: MLflowTracking,
) -> dg.MaterializeResult:
    from evaluation.run import score_benchmark
    from training.checkpoints import read_checkpoint_config

    checkpoint_dir = latest_checkpoint_dir(context.instance)
    mlflow_tracking.activate()
    report = score_benchmark(
        data_root.root,
        context.partition_key,
        checkpoint_dir,
        # the custom benchmark scores exactly the scenes this checkpoint's training held out
        evaluation_settings.config(
            mlflow_tracking.tracking_uri,
            read_checkpoint_config(checkpoint_dir)["train"]["data"]["val_fraction"],
        ),
    )
    if report.status != "ok":
        # "not configured" (no benchmark data placed yet) and "failed" (unreadable data) are not scores: the
        # partition fails with the reason instead of recording an empty materialization.
        raise dg.Failure(
            description=f"{context.partition_key}: {report.status}: {report.message}",
            metadata={"status": report.status},
            allow_retries=False,
        )
    extra: dict[str, Any] = {"checkpoint_dir": dg.MetadataValue.path(str(checkpoint_dir))}
    comparison = Path(report.output_dir) / "comparison.md"
    if comparison.exists():  # this checkpoint beside the paper's numbers (evaluation/report.py)
        extra["comparison_with_paper"] = dg.MetadataValue.md(comparison.read_text())
    return _run_result(report, mlflow_tracking, extra=extra)


def latest_checkpoint_dir(instance: dg.DagsterInstance) -> Path:
    """The checkpoint directory recorded by the latest `checkpoint` materialization."""
    event = instance.get_latest_materialization_event(checkpoint.key)
    if event is None or event.asset_materialization is None:
        raise dg.Failure("checkpoint has never been materialized")
    entry = event.asset_materialization.metadata.get("checkpoint_dir")
    if entry is None:
        raise dg.Failure("the latest checkpoint materialization records no checkpoint_dir")
    return Path(str(entry.value))


def _run_result(
    report: RunReport, tracking: MLflowTracking, extra: dict[str, Any] | None = None
) -> dg.MaterializeResult:
    """Metadata for reports that come with an MLflow run (`assets.stage.RunReport`: TrainReport,
    BenchmarkReport): the report's own metadata, the run id and a link to it, metrics as numbers and a table, and
    a data version from the output."""
    metadata: dict[str, Any] = _scalar_metadata(report.metadata())
    if report.run_id:
        metadata["mlflow_run_id"] = report.run_id
        metadata["mlflow_run_url"] = dg.MetadataValue.url(
            tracking.run_url(report.run_id, report.experiment_id)
        )
    metadata["mlflow_tracking_uri"] = report.tracking_uri or tracking.tracking_uri
    for name, path in report.paths().items():
        metadata[name] = dg.MetadataValue.path(str(path))
    metrics = {k: float(v) for k, v in report.metrics.items() if isinstance(v, int | float)}
    for name, value in metrics.items():
        metadata[f"metric/{name}"] = value if math.isfinite(value) else str(value)
    if metrics:
        rows = [{"metric": k, "value": round(v, 4)} for k, v in metrics.items()]
        metadata["metrics"] = dg.MetadataValue.md(markdown_table(rows, max_rows=200))
    if report.per_category:
        rows = [
            {"category": k, **{m: round(v, 4) for m, v in vals.items()}}
            for k, vals in report.per_category.items()
        ]
        metadata["per_category"] = dg.MetadataValue.md(markdown_table(rows, max_rows=200))
    if report.preview:
        metadata["preview"] = dg.MetadataValue.md(markdown_table(report.preview))
    if extra:
        metadata.update(extra)
    output = report.output_dir
    digest = content_digest(Path(output)) if output and Path(output).is_dir() else None
    if digest:
        metadata["content_digest"] = digest
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(digest) if digest else None)


shard_assets = [source_images, filtered_images, point_maps, object_clouds, object_references, qa_shards]
dataset_assets = [qa_dataset, checkpoint, benchmark_scores]
all_assets = [*shard_assets, *dataset_assets]
