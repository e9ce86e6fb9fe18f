"""Deployment files parse, and agree with the code they configure."""

import json
import shlex
from pathlib import Path

import yaml

from hispatial_dagster import assets as hs_assets
from hispatial_dagster.cli import STAGES, build_parser

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"


def test_manifests_parse_and_have_kinds() -> None:
    docs = {path.name: list(yaml.safe_load_all(path.read_text())) for path in sorted(K8S.glob("*.yaml"))}
    assert {"values.yaml", "training-job.yaml", "pvc.yaml"} <= set(docs)
    for name, items in docs.items():
        for doc in items:
            assert isinstance(doc, dict), name
            if name != "values.yaml":
                assert {"apiVersion", "kind", "metadata", "spec"} <= set(doc), name


def test_helm_values_point_at_our_code_location() -> None:
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "hispatial_dagster.definitions"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["HISPATIAL_EXECUTOR"] == "k8s"
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["concurrency"]["pools"]["granularity"] == "op"
    # No secret values in the chart: keys come from a Kubernetes secret.
    assert "API_KEY" not in json.dumps(values)


def test_training_job_runs_a_real_cli_command_on_gpus() -> None:
    job = yaml.safe_load((K8S / "training-job.yaml").read_text())
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) == 8
    command = container["command"]
    assert command[0] == "hispatial"
    args = build_parser().parse_args(command[1:])  # the pod's command is one our CLI accepts
    assert args.name == "checkpoint"
    env = {e["name"]: e["value"] for e in container["env"]}
    options = json.loads(env["HISPATIAL_TRAIN_OPTIONS"])
    assert options["devices"] == 8 and options["strategy"] == "ddp"


def test_step_config_covers_exactly_the_gpu_stages() -> None:
    gpu = {a.key.to_user_string() for a in hs_assets.all_assets if a.op.pool == "gpu"}
    assert set(hs_assets.K8S_STEP_CONFIG) == gpu


def test_dvc_stages_call_the_cli() -> None:
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stages = pipeline["stages"]
    assert set(STAGES) <= set(stages)
    for name in STAGES:
        do = stages[name].get("do", stages[name])
        words = shlex.split(do["cmd"].replace("${", "").replace("}", ""))
        assert words[0] == "hispatial" and "stage" in words and name in words
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert len(params["shards"]) == 2 and all(s["num_scenes"] >= 50 for s in params["shards"].values())


def test_kubectl_commands_in_the_docs_apply_only_kubernetes_objects() -> None:
    """A `kubectl ... -f DIR/` in any doc must point at a folder of Kubernetes objects (not Helm values)."""
    import re

    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(REPO.glob("*/README.md"))]
    for doc in docs:
        for command in re.findall(r"kubectl [^`\n]*", doc.read_text()):
            for target in re.findall(r"-f\s+(\S+)", command):
                path = REPO / target
                files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
                for file in files:
                    assert file.exists(), (doc.name, command)
                    for item in yaml.safe_load_all(file.read_text()):
                        assert item and {"apiVersion", "kind"} <= set(item), (doc.name, command, file.name)
