"""The Kubernetes path, checked against the outside's own code and schemas (no cluster needed).

- the code location loads with dagster-k8s's `k8s_job_executor` (HISPATIAL_EXECUTOR=k8s);
- each GPU asset's `dagster-k8s/config` op tag goes through dagster-k8s's own parsing (its config schema, then a
  strict conversion into the kubernetes client's models, so a misspelt field fails), and the step Job that
  dagster-k8s builds from it validates against the Kubernetes v1.30 JSON schema;
- deploy/k8s/values.yaml validates against the Dagster Helm chart's values.schema.json;
- every manifest in deploy/k8s/ validates against the Kubernetes v1.30 strict JSON schema of its kind.

The schemas are fixtures under tests/fixtures/k8s/ (provenance in PROVENANCE.md there); their `$ref`s to the
Kubernetes definitions resolve from the local fixture, never over the network.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT202012

from hispatial_dagster import assets as hs_assets

try:
    import dagster_k8s
    import kubernetes
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        UserDefinedDagsterK8sConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )
    from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict

    K8S_EXTRA_ERROR = ""
except ImportError as error:  # one clear failure below instead of a collection error
    K8S_EXTRA_ERROR = f"the `k8s` extra is not installed ({error}); scripts/setup.sh installs it"

needs_k8s_extra = pytest.mark.skipif(bool(K8S_EXTRA_ERROR), reason=K8S_EXTRA_ERROR or "installed")

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
FIXTURES = REPO / "tests" / "fixtures" / "k8s"
HELM_SCHEMA = json.loads((FIXTURES / "dagster-helm-values.schema.json").read_text())
K8S_DEFS = json.loads((FIXTURES / "kubernetes-v1.30.0-strict-definitions.json").read_text())
# The chart's schema $refs this URI (Kubernetes v1.19 definitions); the fixture is v1.30's strict definitions, a
# superset of those fields that also rejects unknown keys.
CHART_K8S_DEFS_URI = (
    "https://raw.githubusercontent.com/yannh/kubernetes-json-schema/master/v1.19.0/_definitions.json"
)
K8S_DEFS_URI = "urn:hispatial:kubernetes-v1.30.0-strict-definitions"
GPU_ASSETS = sorted(a.key.to_user_string() for a in hs_assets.all_assets if a.op.pool == "gpu")


def _offline(uri: str) -> Resource:
    raise NoSuchResource(ref=uri)  # anything not in the fixtures is an error, not a download


REGISTRY = Registry(retrieve=_offline).with_resources(
    [(uri, DRAFT202012.create_resource(K8S_DEFS)) for uri in (CHART_K8S_DEFS_URI, K8S_DEFS_URI)]
)


def kubernetes_errors(manifest: dict[str, Any]) -> list[str]:
    """Errors of one manifest against the strict Kubernetes v1.30 schema of its apiVersion/kind."""
    kinds = K8S_DEFS["x-hispatial-kinds"]
    match = [k for k in kinds.values() if manifest.get("kind") in k["kind"]]
    if not match:
        return [f"kind {manifest.get('kind')!r} has no schema in {FIXTURES.name}: add it (PROVENANCE.md)"]
    [kind] = match
    schema = {
        "$ref": f"{K8S_DEFS_URI}#/definitions/{kind['definition']}",
        "properties": {"apiVersion": {"enum": kind["apiVersion"]}, "kind": {"enum": kind["kind"]}},
        "required": ["apiVersion", "kind"],
    }
    validator = jsonschema.Draft202012Validator(schema, registry=REGISTRY)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)]


def helm_values_errors(values: dict[str, Any]) -> list[str]:
    """Errors of a values file against the chart's schema, the way `helm install` judges it.

    Helm validates the chart's defaults merged with the user's file: maps merge key by key, lists and scalars
    replace. So a key the schema requires of a *map* we set is supplied by the chart's defaults, while every item
    of a list we set must be complete. The `required` keyword is therefore skipped exactly for the maps reachable
    from the top through maps only. Unlike Helm, unknown top-level keys are errors too: the chart's schema allows
    them, and the chart ignores them silently (a misplaced section would do nothing)."""
    merged_maps: set[int] = set()
    stack: list[Any] = [values]
    while stack:
        node = stack.pop()
        merged_maps.add(id(node))
        stack.extend(v for v in node.values() if isinstance(v, dict))

    base_required = jsonschema.Draft202012Validator.VALIDATORS["required"]

    def required(validator, required_keys, instance, schema) -> Iterator[jsonschema.ValidationError]:
        if id(instance) not in merged_maps:
            yield from base_required(validator, required_keys, instance, schema)

    Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"required": required})
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}"
        for e in Validator(HELM_SCHEMA, registry=REGISTRY).iter_errors(values)
    ]
    errors += [
        f"{key}: not a value of the Dagster chart" for key in set(values) - set(HELM_SCHEMA["properties"])
    ]
    return errors


# --- the code location with the k8s executor ---------------------------------------------------------------


def test_the_k8s_extra_is_installed() -> None:
    assert not K8S_EXTRA_ERROR, K8S_EXTRA_ERROR


@needs_k8s_extra
def test_code_location_loads_with_the_k8s_job_executor(monkeypatch) -> None:
    monkeypatch.setenv("HISPATIAL_EXECUTOR", "k8s")
    from hispatial_dagster.definitions import build_defs

    defs = build_defs()
    dg.Definitions.validate_loadable(defs)
    jobs = defs.resolve_all_job_defs()
    assert jobs
    for job in jobs:
        assert job.executor_def.name == dagster_k8s.k8s_job_executor.name == "k8s", job.name
    # The executor's own config schema accepts a per-step override of one of our GPU steps.
    override = {
        "per_step_k8s_config": {"checkpoint": {"container_config": {"resources": {"limits": {"cpu": "8"}}}}}
    }
    assert dg.validate_run_config(jobs[0], {"execution": {"config": override}}) is not None


# --- per-step Kubernetes config of the GPU assets ------------------------------------------------------------


def _step_tags(asset_name: str) -> dict[str, str]:
    [asset] = [a for a in hs_assets.all_assets if a.key.to_user_string() == asset_name]
    return dict(asset.op.tags)


@needs_k8s_extra
@pytest.mark.parametrize("asset_name", GPU_ASSETS)
def test_gpu_step_config_is_valid_for_dagster_k8s_and_kubernetes(asset_name: str) -> None:
    config = get_user_defined_k8s_config(_step_tags(asset_name))  # dagster-k8s's schema + key checks
    # Each part converts strictly into the kubernetes client's models (unknown keys raise).
    container = k8s_model_from_dict(
        kubernetes.client.V1Container,
        k8s_snake_case_dict(kubernetes.client.V1Container, {"name": "step", **config.container_config}),
    )
    assert (
        container.resources.limits["nvidia.com/gpu"]
        == hs_assets.K8S_STEP_CONFIG[asset_name]["container_config"]["resources"]["limits"]["nvidia.com/gpu"]
    )
    k8s_model_from_dict(
        kubernetes.client.V1PodSpec,
        k8s_snake_case_dict(kubernetes.client.V1PodSpec, {"containers": [], **config.pod_spec_config}),
    )
    # The step Job dagster-k8s would submit validates against the Kubernetes schema.
    job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(
            job_image="ghcr.io/hispatial/hispatial:latest",
            dagster_home="/opt/dagster/dagster_home",
            instance_config_map="dagster-instance",
        ),
        args=["dagster", "api", "execute_step"],
        job_name=f"dagster-step-{asset_name.replace('_', '-')}",
        user_defined_k8s_config=config,
        pod_name=f"dagster-step-{asset_name.replace('_', '-')}",
        component="step_worker",
    )
    manifest = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    assert kubernetes_errors(manifest) == []
    pod = manifest["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == hs_assets.K8S_STEP_CONFIG[asset_name]["pod_spec_config"]["node_selector"]


@needs_k8s_extra
def test_a_misspelt_step_config_field_is_refused() -> None:
    good = json.loads(_step_tags("checkpoint")["dagster-k8s/config"])
    bad = copy.deepcopy(good)
    bad["container_config"]["resource"] = bad["container_config"].pop("resources")
    with pytest.raises(Exception, match="Unexpected keys"):
        get_user_defined_k8s_config({"dagster-k8s/config": json.dumps(bad)})
    bad = copy.deepcopy(good)
    bad["pod_spec_config"]["node_selectr"] = bad["pod_spec_config"].pop("node_selector")
    with pytest.raises(Exception, match="Unexpected keys"):
        UserDefinedDagsterK8sConfig.from_dict(bad)


# --- Helm values against the Dagster chart -------------------------------------------------------------------


def _values() -> dict[str, Any]:
    return yaml.safe_load((K8S / "values.yaml").read_text())


def test_helm_values_validate_against_the_dagster_chart_schema() -> None:
    assert helm_values_errors(_values()) == []


def test_helm_values_check_can_fail() -> None:
    values = _values()
    values["runLauncher"]["config"]["k8sRunLauncher"]["envSecret"] = [{"name": "x"}]  # misspelt key
    assert any("envSecret" in e for e in helm_values_errors(values))
    values = _values()
    del values["dagster-user-deployments"]["deployments"][0][
        "port"
    ]  # list items are not merged with defaults
    assert any("'port' is a required property" in e for e in helm_values_errors(values))
    values = _values()
    values["dagsterInstance"] = {"concurrency": {"pools": {"default_limit": 4}}}  # not a chart section
    assert any(e.startswith("dagsterInstance:") for e in helm_values_errors(values))
    values = _values()
    values["concurrency"]["pools"]["default_limit"] = 4  # the chart spells it defaultLimit
    assert any("default_limit" in e for e in helm_values_errors(values))


def test_helm_values_set_the_gpu_pool_limit_through_the_chart() -> None:
    pools = _values()["concurrency"]
    assert pools["enabled"] is True
    assert pools["pools"]["granularity"] == "op" and pools["pools"]["defaultLimit"] >= 1


# --- Kubernetes manifests ------------------------------------------------------------------------------------


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "values.yaml":
            continue  # Helm values, checked above
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def test_manifests_validate_against_the_kubernetes_schema() -> None:
    manifests = _manifests()
    assert {kind for _, m in manifests for kind in [m["kind"]]} >= {"Job", "PersistentVolumeClaim"}
    for name, manifest in manifests:
        assert kubernetes_errors(manifest) == [], name


def test_manifest_check_can_fail() -> None:
    [job] = [m for name, m in _manifests() if name == "training-job.yaml" and m["kind"] == "Job"]
    job = copy.deepcopy(job)
    job["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # misspelt
    assert any("resource" in e for e in kubernetes_errors(job))
    job["apiVersion"] = "batch/v2"
    assert any("batch/v2" in e for e in kubernetes_errors(job))
