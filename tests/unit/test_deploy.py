"""Structural checks of deploy/ (Kubernetes, KEDA, Prometheus, Grafana) against the code.

Pure: files are parsed with PyYAML and json, nothing is applied or scraped. Settings are
checked against ``infq.settings.Settings``, metric names and labels against the families
``infq.metrics.families()`` builds, commands against ``infq.cli.app``; so renaming a
setting, a metric, a label or an option breaks this test, not a deploy or a dashboard.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from prometheus_client.metrics import MetricWrapperBase

from infq.cli import app
from infq.metrics import Families, families
from infq.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "infq-dashboard.json"

# Files in deploy/k8s that kustomization.yaml must not list.
NOT_APPLIED = {"kustomization.yaml", "secret.example.yaml", "keda-worker-postgres.yaml"}
WORKLOAD_KINDS = {"Deployment", "Job", "StatefulSet", "DaemonSet"}
WORKLOAD_FILES = (
    "init-job.yaml", "dispatcher.yaml", "worker.yaml", "notifier.yaml", "api.yaml", "flower.yaml",
)  # fmt: skip
EXPECTED_ALERTS = {
    "InfqNoWorkersWhileWorkRemains",
    "InfqDLQRate",
    "InfqWebhookDeadLetters",
    "InfqKafkaLagGrowing",
    "InfqLeaseExpiries",
}
# Sample suffixes each family type exposes (prometheus_client, text format).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}
# Labels Prometheus or Kubernetes discovery add to every series.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container"}
# Fallbacks for settings that may be absent from both the ConfigMap and Settings.
WORKER_GRACE_S_DEFAULT = 60

METRIC_RE = re.compile(r"\b(infq_[a-z0-9_]+)")
SELECTOR_RE = re.compile(r"\b(infq_[a-z0-9_]+)\s*\{([^}]*)\}")
MATCHER_RE = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING_RE = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


# --- loading -------------------------------------------------------------------------


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"})


def _load_all(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert all(isinstance(d, dict) for d in docs), f"{path}: a document is not a mapping"
    return docs


def _manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Kubernetes document under deploy/k8s, with its file name."""
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for doc in _load_all(path):
                yield path.name, doc


def _one(file: str, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for f, doc in _manifests()
        if f == file and doc["kind"] == kind and name in (None, doc["metadata"]["name"])
    ]
    assert len(found) == 1, f"{file}: expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _configmap() -> dict[str, str]:
    data: dict[str, str] = _one("configmap.yaml", "ConfigMap")["data"]
    return data


def _setting(key: str, fallback: object = None) -> str:
    """A setting as deployed: the ConfigMap's value, else the Settings default."""
    if key in _configmap():
        return _configmap()[key]
    field = Settings.model_fields.get(key.removeprefix("INFQ_").lower())
    if field is not None and field.default is not None:
        return str(field.default)
    assert fallback is not None, f"{key} is neither in the ConfigMap nor a Settings default"
    return str(fallback)


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def _workloads() -> Iterator[tuple[str, dict[str, Any]]]:
    for file, doc in _manifests():
        if doc["kind"] in WORKLOAD_KINDS:
            yield f"{file}:{doc['metadata']['name']}", doc


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = _pod_spec(doc)
    containers: list[dict[str, Any]] = spec["containers"] + spec.get("initContainers", [])
    return containers


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in container.get("env", [])}


def _scaled_object(file: str) -> dict[str, Any]:
    return _one(file, "ScaledObject")


def _trigger(scaled: dict[str, Any], kind: str) -> dict[str, Any]:
    triggers = [t for t in scaled["spec"]["triggers"] if t["type"] == kind]
    assert len(triggers) == 1, f"expected one {kind} trigger"
    trigger: dict[str, Any] = triggers[0]
    return trigger


def _worker() -> dict[str, Any]:
    return _one("worker.yaml", "Deployment", "infq-worker")


def _worker_model() -> str:
    words: list[str] = _worker_container()["command"]
    return words[words.index("--model") + 1]


def _worker_container() -> dict[str, Any]:
    containers = _pod_spec(_worker())["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


# --- metrics -------------------------------------------------------------------------


@cache
def _exported_names() -> frozenset[str]:
    """Every series name the families export, with the suffixes of their types."""
    names: set[str] = set()
    for family in families().registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return frozenset(names)


@cache
def _labels_by_name() -> dict[str, frozenset[str]]:
    """Label names of every exported series name."""
    labels: dict[str, frozenset[str]] = {}
    fam = families()
    for field in dataclasses.fields(Families):
        metric = getattr(fam, field.name)
        if not isinstance(metric, MetricWrapperBase):
            continue
        own = frozenset(metric._labelnames)
        for family in metric.describe():
            for suffix in SUFFIXES[family.type]:
                extra = {"le"} if suffix == "_bucket" else set()
                labels[family.name + suffix] = own | extra
    return labels


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _alert_rules() -> list[dict[str, Any]]:
    groups = _load_all(ALERTS)[0]["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alert_exprs() -> list[str]:
    return [str(rule["expr"]) for rule in _alert_rules()]


def _dashboard_exprs() -> list[str]:
    exprs = [
        str(target["expr"])
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets", [])
    ]
    for var in _dashboard()["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if var.get("type") == "query" and query:
            exprs.append(str(query))
    return exprs


def _keda_exprs() -> list[str]:
    return [
        str(trigger["metadata"]["query"])
        for file, doc in _manifests()
        if file.startswith("keda") and doc["kind"] == "ScaledObject"
        for trigger in doc["spec"]["triggers"]
        if trigger["type"] == "prometheus"
    ]


EXPR_SOURCES = {"alerts": _alert_exprs, "dashboard": _dashboard_exprs, "keda": _keda_exprs}


# --- files ---------------------------------------------------------------------------


def test_deploy_has_the_artifacts() -> None:
    expected = {
        "configmap.yaml", "secret.example.yaml", "init-job.yaml", "dispatcher.yaml",
        "worker.yaml", "notifier.yaml", "api.yaml", "flower.yaml", "keda-worker.yaml",
        "keda-dispatcher.yaml", "kustomization.yaml",
    }  # fmt: skip
    assert expected <= {p.name for p in K8S.glob("*.yaml")}
    for path in (ALERTS, PROMETHEUS, DASHBOARD, DEPLOY / "README.md"):
        assert path.is_file(), path


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    assert _load_all(path), f"{path}: no documents"


def test_dashboard_parses() -> None:
    assert _dashboard()["panels"]


def test_kustomization_lists_every_manifest_but_examples() -> None:
    kustomization = _load_all(K8S / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - NOT_APPLIED
    assert listed == present
    assert not listed & NOT_APPLIED


def test_manifests_have_kind_and_name() -> None:
    for file, doc in _manifests():
        assert doc.get("apiVersion"), file
        assert doc.get("kind"), file
        assert doc["metadata"].get("name"), file


def test_example_secrets_are_placeholders() -> None:
    for file in ("secret.example.yaml", "keda-worker-postgres.yaml"):
        for doc in (d for f, d in _manifests() if f == file and d["kind"] == "Secret"):
            for key, value in doc["stringData"].items():
                if key != "INFQ_FLOWER_USER":
                    assert "CHANGE-ME" in str(value), f"{file}: {key} is not a placeholder"


# --- settings ------------------------------------------------------------------------


def _named_infq_vars() -> Iterator[tuple[str, str]]:
    for file, doc in _manifests():
        if doc["kind"] in {"ConfigMap", "Secret"}:
            for section in ("data", "stringData"):
                for key in doc.get(section) or {}:
                    yield file, key
        if doc["kind"] in WORKLOAD_KINDS:
            for container in _containers(doc):
                for key in _env(container):
                    yield file, key


def test_infq_env_vars_are_settings() -> None:
    names = list(_named_infq_vars())
    assert names
    for file, key in names:
        if key.startswith("INFQ_"):
            field = key.removeprefix("INFQ_").lower()
            assert field in Settings.model_fields, f"{file}: {key} is not a Settings field"


def test_configmap_values_are_strings() -> None:
    for key, value in _configmap().items():
        assert isinstance(value, str), f"{key}: ConfigMap values must be strings"


def test_configmap_is_production() -> None:
    config = _configmap()
    assert config["INFQ_ENVIRONMENT"] == "production"
    assert config["INFQ_METRICS_PORT"] == "9400"
    assert "INFQ_KAFKA_BOOTSTRAP" in config


def test_workloads_take_config_and_secret() -> None:
    for name, doc in _workloads():
        for container in _pod_spec(doc)["containers"]:
            refs = {
                next(iter(ref)): next(iter(ref.values()))["name"]
                for ref in container.get("envFrom", [])
            }
            assert refs.get("configMapRef") == "infq-config", name
            assert refs.get("secretRef") == "infq-secrets", name
            assert container["image"] == "ghcr.io/example/infq:0.1.0", name


def test_pods_disable_service_links() -> None:
    # Service infq-api would inject INFQ_API_PORT=tcp://..., which Settings would read.
    for name, doc in _workloads():
        assert _pod_spec(doc).get("enableServiceLinks") is False, name


# --- commands ------------------------------------------------------------------------


def _subcommands(cmd: Any) -> dict[str, Any]:
    commands: dict[str, Any] = getattr(cmd, "commands", None) or {}
    return commands


@pytest.mark.parametrize("file", WORKLOAD_FILES)
def test_commands_match_cli(file: str) -> None:
    docs = [d for f, d in _manifests() if f == file and d["kind"] in WORKLOAD_KINDS]
    assert docs, f"{file}: no workload"
    for container in (c for doc in docs for c in _pod_spec(doc)["containers"]):
        name = f"{file}:{container['name']}"
        words = [str(w) for w in container["command"] + container.get("args", [])]
        assert words[0] == "infq", f"{name}: {shlex.join(words)}"
        cmd: Any = typer.main.get_command(app)
        rest = words[1:]
        while rest and rest[0] in _subcommands(cmd):
            cmd = _subcommands(cmd)[rest.pop(0)]
        assert not _subcommands(cmd), f"{name}: {words} names a group, not a command"
        known = {opt for param in cmd.params for opt in param.opts + param.secondary_opts}
        for word in rest:
            if word.startswith("-"):
                assert word.split("=", 1)[0] in known, f"{name}: unknown option {word}"


# --- worker --------------------------------------------------------------------------


def test_worker_runs_one_process_on_one_gpu() -> None:
    container = _worker_container()
    words = container["command"]
    assert words[words.index("--concurrency") + 1] == "1"
    assert _env(container)["INFQ_DEVICE"] == "cuda"
    resources = container["resources"]
    assert int(resources["limits"]["nvidia.com/gpu"]) == 1
    assert int(resources["requests"].get("nvidia.com/gpu", 1)) == 1


def test_worker_grace_exceeds_drain() -> None:
    grace = int(_pod_spec(_worker())["terminationGracePeriodSeconds"])
    drain = float(_setting("INFQ_WORKER_GRACE_S", WORKER_GRACE_S_DEFAULT))
    assert grace > drain


def test_scaled_deployments_leave_replicas_to_keda() -> None:
    for file in ("keda-worker.yaml", "keda-dispatcher.yaml"):
        target = _scaled_object(file)["spec"]["scaleTargetRef"]["name"]
        deployment = next(
            d
            for _, d in _manifests()
            if d["kind"] == "Deployment" and d["metadata"]["name"] == target
        )
        assert "replicas" not in deployment["spec"], f"{target}: apply would reset KEDA's count"


@pytest.mark.parametrize(
    "file",
    ["dispatcher.yaml", "worker.yaml", "notifier.yaml", "api.yaml"],
)
def test_metrics_port_is_scraped(file: str) -> None:
    doc = next(d for f, d in _manifests() if f == file and d["kind"] == "Deployment")
    port = int(_setting("INFQ_METRICS_PORT"))
    container = _pod_spec(doc)["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == port
    annotations = doc["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)


# --- KEDA ----------------------------------------------------------------------------


@pytest.mark.parametrize("file", ["keda-worker.yaml", "keda-worker-postgres.yaml"])
def test_worker_scaling_matches_autoscale_settings(file: str) -> None:
    spec = _scaled_object(file)["spec"]
    assert spec["scaleTargetRef"]["name"] == _worker()["metadata"]["name"]
    assert spec["cooldownPeriod"] == int(_setting("INFQ_AUTOSCALE_IDLE_S"))
    assert spec["minReplicaCount"] == int(_setting("INFQ_AUTOSCALE_MIN_WORKERS"))
    if "INFQ_AUTOSCALE_MAX_WORKERS" in _configmap():
        assert spec["maxReplicaCount"] == int(_configmap()["INFQ_AUTOSCALE_MAX_WORKERS"])
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    down = behavior["scaleDown"]
    assert down["stabilizationWindowSeconds"] == int(_setting("INFQ_AUTOSCALE_STABILIZATION_S"))
    step = int(_setting("INFQ_AUTOSCALE_MAX_STEP_DOWN"))
    assert down["policies"]
    for policy in down["policies"]:
        assert (policy["type"], policy["value"]) == ("Pods", step)
    for trigger in spec["triggers"]:
        assert trigger["metricType"] == "AverageValue"


def test_worker_trigger_is_seconds_of_work() -> None:
    trigger = _trigger(_scaled_object("keda-worker.yaml"), "prometheus")
    metadata = trigger["metadata"]
    assert float(metadata["threshold"]) == float(_setting("INFQ_AUTOSCALE_TARGET_WORK_S"))
    assert float(metadata["activationThreshold"]) >= 0
    assert "infq_work_remaining_seconds" in metadata["query"]
    assert f'model="{_worker_model()}"' in metadata["query"]


def test_postgres_alternative_counts_the_workers_model() -> None:
    trigger = _trigger(_scaled_object("keda-worker-postgres.yaml"), "postgresql")
    query = trigger["metadata"]["query"]
    assert f"model = '{_worker_model()}'" in query
    assert "status IN ('queued','running')" in query
    assert int(trigger["metadata"]["targetQueryValue"]) > 0


def test_dispatcher_scales_on_its_consumer_group() -> None:
    spec = _scaled_object("keda-dispatcher.yaml")["spec"]
    assert spec["scaleTargetRef"]["name"] == "infq-dispatcher"
    # Each dispatcher runs the scheduler: never zero.
    assert spec["minReplicaCount"] >= 1
    assert spec["maxReplicaCount"] <= int(_setting("INFQ_TOPIC_PARTITIONS"))
    metadata = _trigger(_scaled_object("keda-dispatcher.yaml"), "kafka")["metadata"]
    assert metadata["consumerGroup"] == _setting("INFQ_CONSUMER_GROUP")
    assert metadata["topic"] == _setting("INFQ_JOBS_TOPIC")
    assert metadata["bootstrapServers"] == _setting("INFQ_KAFKA_BOOTSTRAP")
    assert int(metadata["lagThreshold"]) > 0


# --- metric names in alerts, dashboard and KEDA --------------------------------------


def test_families_are_collected() -> None:
    names = _exported_names()
    assert "infq_jobs_total" in names
    assert "infq_batch_size_jobs_bucket" in names
    assert "infq_work_remaining_seconds" in names
    assert set(_labels_by_name()) == names


@pytest.mark.parametrize("source", sorted(EXPR_SOURCES))
def test_metric_names_exist(source: str) -> None:
    exprs = EXPR_SOURCES[source]()
    used = {name for expr in exprs for name in METRIC_RE.findall(expr)}
    assert used, f"{source}: no infq metric found"
    unknown = used - _exported_names()
    assert not unknown, f"{source}: not exported by infq.metrics: {sorted(unknown)}"


@pytest.mark.parametrize("source", sorted(EXPR_SOURCES))
def test_metric_labels_exist(source: str) -> None:
    labels = _labels_by_name()
    every = frozenset[str]().union(*labels.values()) | TARGET_LABELS
    for expr in EXPR_SOURCES[source]():
        for name, matchers in SELECTOR_RE.findall(expr):
            for label in MATCHER_RE.findall(matchers):
                allowed = labels.get(name, frozenset()) | TARGET_LABELS
                assert label in allowed, f"{source}: {name} has no label {label}: {expr}"
        for group in GROUPING_RE.findall(expr):
            for label in filter(None, (w.strip() for w in group.split(","))):
                assert label in every, f"{source}: no infq metric has label {label}: {expr}"


# --- alerts and the local Prometheus -------------------------------------------------


def test_alerts_are_complete() -> None:
    rules = _alert_rules()
    assert {rule["alert"] for rule in rules} >= EXPECTED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    no_workers = next(r for r in rules if r["alert"] == "InfqNoWorkersWhileWorkRemains")
    assert "absent(infq_workers_actual)" in no_workers["expr"]
    lease = next(r for r in rules if r["alert"] == "InfqLeaseExpiries")
    assert 'outcome="worker_lost"' in lease["expr"]


def test_local_prometheus_scrapes_every_process() -> None:
    config = _load_all(PROMETHEUS)[0]
    assert [(PROMETHEUS.parent / f).resolve() for f in config["rule_files"]] == [ALERTS.resolve()]
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    ports = {9401, 9402, 9403, 9404, 5555, 9410, 9411, 9412, 9413}
    assert {f"127.0.0.1:{port}" for port in ports} <= targets
    flower = next(j for j in config["scrape_configs"] if "127.0.0.1:5555" in str(j))
    assert flower["basic_auth"]["username"]


# --- dashboard -----------------------------------------------------------------------


def test_dashboard_uses_the_datasource_input_and_model_variable() -> None:
    dashboard = _dashboard()
    assert 30 <= dashboard["schemaVersion"] < 50
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert "model" in variables
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_dashboard_covers_every_family() -> None:
    exprs = " ".join(_dashboard_exprs())
    for family in families().registry.collect():
        assert family.name in exprs, f"no panel shows {family.name}"
