"""The Helm chart renders and lints offline (helm-python-sdk, no helm binary) and every manifest validates against
the Kubernetes schemas (kubernetes-validate), for several values files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from django.conf import settings

from tests.conftest import REPO_ROOT

CHART = REPO_ROOT / "helm" / "screener"
VALUES_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
KUBE_VERSION = "1.30.0"
# Resources of the Prometheus Operator: no schema in kubernetes-validate, checked field by field below.
CUSTOM_KINDS = {"ServiceMonitor"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}
SECRET_KEYS = (
    "DJANGO_SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "FLOWER_BASIC_AUTH",
    "SUPABASE_JWT_SECRET",
    "METRICS_TOKEN",
)


def _values(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def _render(values: dict, *, name: str = "screener") -> list[dict]:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values=values, name=name, namespace="screener", is_install=True)
    docs = []
    for template, text in sorted(rendered.items()):
        if template.endswith(".yaml"):
            docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def _by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def _pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


@pytest.fixture(scope="module", params=VALUES_FILES, ids=lambda p: p.stem)
def rendered(request) -> tuple[dict, list[dict]]:
    values = _values(request.param)
    return values, _render(values)


def test_there_are_several_values_files():
    assert {p.stem for p in VALUES_FILES} >= {"default-values", "production-values", "small-values"}


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: p.stem)
def test_chart_lints_strictly_without_warnings(values_file: Path):
    report = helm.lint(CHART, _values(values_file), strict=True, kube_version="v" + KUBE_VERSION)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_every_manifest_validates_against_the_kubernetes_schemas(rendered):
    _, docs = rendered
    validated = 0
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        validated += 1
    assert validated >= 10


def test_exactly_one_beat_replica_recreated(rendered):
    _, docs = rendered
    beats = [d for d in _by_kind(docs, "Deployment") if "start-beat" in _pod_spec(d)["containers"][0]["args"]]
    assert len(beats) == 1
    assert beats[0]["spec"]["replicas"] == 1
    assert beats[0]["spec"]["strategy"] == {"type": "Recreate"}
    assert not [
        h
        for h in _by_kind(docs, "HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == beats[0]["metadata"]["name"]
    ]


def test_a_replicas_value_for_beat_is_ignored():
    docs = _render({**_values(CHART / "ci" / "default-values.yaml"), "beat": {"replicas": 3}})
    beat = next(d for d in _by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-beat"))
    assert beat["spec"]["replicas"] == 1


def test_every_long_running_container_has_all_three_probes(rendered):
    _, docs = rendered
    for doc in _by_kind(docs, "Deployment") + _by_kind(docs, "StatefulSet"):
        for container in _pod_spec(doc)["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert probe in container, f"{doc['metadata']['name']}/{container['name']} lacks {probe}"


def test_probes_hit_real_endpoints(rendered):
    _, docs = rendered
    for doc in _by_kind(docs, "Deployment") + _by_kind(docs, "StatefulSet"):
        container = _pod_spec(doc)["containers"][0]
        process = container["args"][0]
        ready = container["readinessProbe"]
        if process == "start-web":
            assert ready["httpGet"]["path"] == "/api/health"
        elif process == "start-worker":
            assert ready["exec"]["command"] == ["healthcheck-worker"]
        elif process == "start-beat":
            assert ready["exec"]["command"] == ["healthcheck-beat"]
        elif process == "start-collector":
            assert ready["exec"]["command"] == ["healthcheck-collector"]
        elif process == "start-flower":
            assert ready["httpGet"]["path"] == "/healthcheck"
        else:
            pytest.fail(f"unexpected process {process}")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            named = container[probe].get("httpGet", container[probe].get("tcpSocket", {})).get("port")
            if named is not None:
                assert named in {p["name"] for p in container["ports"]}
    for script in ("healthcheck-worker", "healthcheck-beat", "healthcheck-collector"):
        assert (REPO_ROOT / "docker" / script).exists()


def test_every_container_has_requests_and_limits(rendered):
    _, docs = rendered
    for doc in [d for d in docs if d["kind"] in WORKLOAD_KINDS]:
        for container in _pod_spec(doc)["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert _pod_spec(doc)["securityContext"]["runAsNonRoot"] is True


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook_after_its_config(rendered):
    _, docs = rendered
    jobs = _by_kind(docs, "Job")
    assert len(jobs) == 1
    annotations = jobs[0]["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert _pod_spec(jobs[0])["containers"][0]["args"] == ["start-migrate"]
    assert _pod_spec(jobs[0])["restartPolicy"] == "Never"
    # what the Job reads must exist before it: hooks of a lower weight
    for doc in _by_kind(docs, "ConfigMap")[:1] + _by_kind(docs, "Secret"):
        assert "pre-install" in doc["metadata"]["annotations"]["helm.sh/hook"]
        assert int(doc["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])


def _secret_values(values: dict) -> list[str]:
    return [v for v in (values.get("secrets") or {}).values() if v]


def test_no_secret_in_plain_manifests(rendered):
    values, docs = rendered
    secrets = _secret_values(values)
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = json.dumps(doc)
        for secret in secrets:
            assert secret not in text, f"{doc['kind']}/{doc['metadata']['name']} holds a secret"
        if doc["kind"] == "ConfigMap":
            assert not set(doc.get("data") or {}) & set(SECRET_KEYS)
        if doc["kind"] in WORKLOAD_KINDS:
            for container in _pod_spec(doc)["containers"]:
                plain = {e["name"] for e in container.get("env", []) if "value" in e}
                assert not plain & set(SECRET_KEYS)
                assert any("secretRef" in ref for ref in container["envFrom"])


def test_default_values_hold_no_secret():
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert _secret_values(defaults) == []
    assert set(defaults["secrets"]) == set(SECRET_KEYS)
    flat = json.dumps(defaults["config"])
    assert not re.search(r"password|secret|://[^/]*:[^/]*@", flat, flags=re.IGNORECASE)


def test_chart_refuses_to_render_without_secrets_or_an_existing_secret():
    with pytest.raises(helm.HelmError, match="DJANGO_SECRET_KEY"):
        _render({})
    docs = _render({"existingSecret": "mine"})
    assert _by_kind(docs, "Secret") == []
    refs = {
        ref["secretRef"]["name"]
        for d in docs
        if d["kind"] in WORKLOAD_KINDS
        for c in _pod_spec(d)["containers"]
        for ref in c["envFrom"]
        if "secretRef" in ref
    }
    assert refs == {"mine"}


def test_workers_cover_every_queue_with_autoscaling_and_disruption_budgets(rendered):
    values, docs = rendered
    workers = [d for d in _by_kind(docs, "Deployment") if _pod_spec(d)["containers"][0]["args"][0] == "start-worker"]
    queues = {q for w in workers for q in _pod_spec(w)["containers"][0]["args"][1].split(",")}
    assert queues == set(settings.CELERY_QUEUES_ALL)
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in _by_kind(docs, "HorizontalPodAutoscaler")}
    pdb_names = {p["metadata"]["name"] for p in _by_kind(docs, "PodDisruptionBudget")}
    for worker in workers:
        name = worker["metadata"]["name"]
        assert name in pdb_names
        # a Deployment under an HPA leaves replicas to it
        assert (name in hpa_targets) == ("replicas" not in worker["spec"])


def test_web_has_service_hpa_pdb_and_websocket_ready_ingress():
    values = _values(CHART / "ci" / "production-values.yaml")
    docs = _render(values)
    web = next(d for d in _by_kind(docs, "Deployment") if d["metadata"]["name"] == "screener-web")
    assert "replicas" not in web["spec"]
    assert any(h["spec"]["scaleTargetRef"]["name"] == "screener-web" for h in _by_kind(docs, "HorizontalPodAutoscaler"))
    assert any(p["metadata"]["name"] == "screener-web" for p in _by_kind(docs, "PodDisruptionBudget"))
    ingress = next(i for i in _by_kind(docs, "Ingress") if i["metadata"]["name"] == "screener")
    annotations = ingress["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {"screener-web"}
    env = {e["name"]: e for e in _pod_spec(web)["containers"][0]["env"]}
    assert env["DJANGO_ALLOWED_HOSTS"]["value"] == "screener.example.com,api.screener.example.com,localhost,$(POD_IP)"
    # POD_IP must be declared before the variable that expands it
    names = [e["name"] for e in _pod_spec(web)["containers"][0]["env"]]
    assert names.index("POD_IP") < names.index("DJANGO_ALLOWED_HOSTS")


def test_collectors_are_one_pod_per_symbol_slice():
    docs = _render(_values(CHART / "ci" / "production-values.yaml"))
    collector = next(iter(_by_kind(docs, "StatefulSet")))
    assert collector["spec"]["replicas"] == 4
    env = {e["name"]: e for e in _pod_spec(collector)["containers"][0]["env"]}
    assert env["COLLECTOR_SLICE_COUNT"]["value"] == "4"
    assert env["COLLECTOR_SLICE_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert collector["spec"]["serviceName"] in {s["metadata"]["name"] for s in _by_kind(docs, "Service")}


def test_flower_is_authenticated_and_optional():
    docs = _render(_values(CHART / "ci" / "production-values.yaml"))
    flower = next(d for d in _by_kind(docs, "Deployment") if d["metadata"]["name"] == "screener-flower")
    assert _pod_spec(flower)["containers"][0]["args"] == ["start-flower"]
    assert any(i["metadata"]["name"] == "screener-flower" for i in _by_kind(docs, "Ingress"))
    small = _render(_values(CHART / "ci" / "small-values.yaml"))
    assert not [d for d in small if "flower" in d["metadata"]["name"]]
    # the chart's own Secret demands FLOWER_BASIC_AUTH while Flower is on
    values = _values(CHART / "ci" / "default-values.yaml")
    values["secrets"] = {**values["secrets"], "FLOWER_BASIC_AUTH": ""}
    with pytest.raises(helm.HelmError, match="FLOWER_BASIC_AUTH"):
        _render(values)


def test_service_monitor_and_dashboards_are_optional_and_well_formed():
    assert not _by_kind(_render(_values(CHART / "ci" / "default-values.yaml")), "ServiceMonitor")
    docs = _render(_values(CHART / "ci" / "production-values.yaml"))
    (monitor,) = _by_kind(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"http", "metrics"}
    selected = monitor["spec"]["selector"]["matchLabels"]
    scraped = [
        s for s in _by_kind(docs, "Service") if all(s["metadata"]["labels"].get(k) == v for k, v in selected.items())
    ]
    ports = {p["name"] for s in scraped for p in s["spec"]["ports"]}
    assert ports == {"http", "metrics"}
    assert len(scraped) == 1 + 5 + 1  # web, one per worker Deployment, collectors
    dashboards = next(d for d in _by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboards"))
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    for body in dashboards["data"].values():
        assert json.loads(body)["panels"]


def test_dashboard_queries_name_series_the_code_exports():
    from prometheus_client import REGISTRY

    import screener_project.observability  # noqa: F401 - registers the shared instruments

    try:
        import apps.collector.instruments  # noqa: F401
    except ImportError:  # the collector's instruments are optional for this check
        pass
    exported = {family.name for family in REGISTRY.collect()}
    dashboard = json.loads((CHART / "dashboards" / "screener.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    names = {name for q in queries for name in re.findall(r"\b(?:screener|collector)_[a-z0-9_]+", q)}
    used = {re.sub(r"_(bucket|total|count|sum)$", "", name) for name in names}
    assert {
        "screener_tick_stage_seconds",
        "screener_alerts_fired",
        "screener_webhook_deliveries",
        "screener_websocket_connections",
    } <= used
    screener_used = {u for u in used if u.startswith("screener_")}
    assert screener_used <= exported, screener_used - exported
