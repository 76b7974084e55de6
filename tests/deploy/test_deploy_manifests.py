import json
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client import REGISTRY

import api.metrics  # noqa: F401 - registers the API's metrics
import api.ops_runtime  # noqa: F401 - registers the collector's pause metric
import workers.metrics  # noqa: F401 - registers the workers' metrics
from api.devstack import SEARCH_ATTRIBUTES
from api.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KUSTOMIZATIONS = ["base", "overlays/dev", "overlays/production"]
K8S_VERSION = "1.31"
# Checked against a scrape of a worker running on this SDK (Core SDK names,
# `temporal_` prefix, counters without `_total`, histograms in milliseconds).
TEMPORAL_SDK_METRICS = {
    "temporal_request", "temporal_request_failure", "temporal_request_latency",
    "temporal_long_request", "temporal_long_request_failure",
    "temporal_workflow_completed", "temporal_workflow_failed",
    "temporal_workflow_endtoend_latency",
    "temporal_workflow_task_execution_failed",
    "temporal_workflow_task_execution_latency",
    "temporal_workflow_task_schedule_to_start_latency",
    "temporal_workflow_task_replay_latency",
    "temporal_activity_execution_failed", "temporal_activity_execution_latency",
    "temporal_activity_schedule_to_start_latency",
    "temporal_worker_task_slots_available", "temporal_worker_task_slots_used",
    "temporal_num_pollers", "temporal_sticky_cache_size",
}  # fmt: skip
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


class ComposeLoader(yaml.SafeLoader):
    """Compose's merge tags (`!override`, `!reset`) read as plain values."""


for _tag in ("!override", "!reset"):
    ComposeLoader.add_constructor(
        _tag,
        lambda loader, node: (
            loader.construct_mapping(node) if isinstance(node, yaml.MappingNode)
            else loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode)
            else loader.construct_scalar(node)
        ),
    )  # fmt: skip


def load_all(path: Path) -> list:
    return [doc for doc in yaml.load_all(path.read_text(), Loader=ComposeLoader) if doc]


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def render(kustomization: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S / kustomization)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_parse_deploy_yaml_file(path: Path) -> None:
    assert load_all(path), f"{path} is empty"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_resolve_kustomization_references_existing_files(kustomization: str) -> None:
    """Works without kubectl: every file a kustomization names exists and parses."""
    folder = K8S / kustomization
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    named = list(spec.get("resources", []))
    named += [patch["path"] for patch in spec.get("patches", []) if "path" in patch]
    assert named
    for entry in named:
        target = (folder / entry).resolve()
        assert target.exists(), f"{kustomization}: {entry} does not exist"
        if target.is_dir():
            assert (target / "kustomization.yaml").exists()
        else:
            assert all(doc.get("kind") for doc in load_all(target))


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_render_kustomization_valid_against_kubernetes_schemas(
    kustomization: str,
) -> None:
    objects = render(kustomization)
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    deployments = by_kind(objects, "Deployment")
    assert set(deployments) == {
        "tlounge-api",
        "tlounge-reservation-worker",
        "tlounge-mail-worker",
    }
    assert set(by_kind(objects, "HorizontalPodAutoscaler")) == set(deployments)
    assert set(by_kind(objects, "PodDisruptionBudget")) == set(deployments)
    for name, deployment in deployments.items():
        template = deployment["spec"]["template"]
        assert template["metadata"]["annotations"]["linkerd.io/inject"] == "enabled"
        (container,) = template["spec"]["containers"]
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["limits"]["memory"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert template["spec"]["securityContext"]["runAsNonRoot"] is True
        assert container["livenessProbe"]["httpGet"]["path"]
    api = deployments["tlounge-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["args"] == ["api"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    workers = {
        name: d["spec"]["template"]["spec"]["containers"][0]["args"]
        for name, d in deployments.items() if name != "tlounge-api"
    }  # fmt: skip
    assert workers == {
        "tlounge-reservation-worker": ["worker", "reservation"],
        "tlounge-mail-worker": ["worker", "mail"],
    }


def test_render_overlays_with_their_own_namespace_and_image() -> None:
    for overlay, namespace, tag in (
        ("dev", "tlounge-dev", "main"),
        ("production", "tlounge", "0.1.0"),
    ):
        objects = render(f"overlays/{overlay}")
        assert {o["metadata"].get("namespace") for o in objects} == {namespace}
        images = {
            c["image"]
            for d in by_kind(objects, "Deployment").values()
            for c in d["spec"]["template"]["spec"]["containers"]
        }
        assert images == {f"registry.example.com/tlounge:{tag}"}
    hpa = by_kind(render("overlays/production"), "HorizontalPodAutoscaler")[
        "tlounge-api"
    ]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)


def test_name_only_settings_that_exist() -> None:
    texts = [p.read_text() for p in DEPLOY.rglob("*") if p.is_file()]
    texts.append((ROOT / "docs" / "runbook.md").read_text())
    names = set(re.findall(rf"\b{ENV_PREFIX}[A-Z0-9_]+\b", "\n".join(texts)))
    assert len(names) > 15
    unknown = {
        n
        for n in names
        if n.removeprefix(ENV_PREFIX).lower() not in Settings.model_fields
    }
    assert unknown == set()


def _port_settings(env: dict[str, str]) -> set[int]:
    """The ports a container can listen on: each *_PORT setting, default or set."""
    ports = set()
    for field, info in Settings.model_fields.items():
        if field.endswith("_port"):
            value = env.get(f"{ENV_PREFIX}{field.upper()}", info.default)
            ports.add(int(value))
    return ports - {0}


def test_expose_only_ports_that_settings_define() -> None:
    objects = render("overlays/production")
    (config,) = by_kind(objects, "ConfigMap").values()
    for deployment in by_kind(objects, "Deployment").values():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = dict(config["data"]) | {
            e["name"]: e["value"] for e in container.get("env", [])
        }
        allowed = _port_settings(env)
        exposed = {p["containerPort"] for p in container["ports"]}
        assert exposed <= allowed, deployment["metadata"]["name"]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) in exposed

    compose = load_all(DEPLOY / "compose.yaml")[0]["services"]
    scraped = {
        target
        for job in load_all(DEPLOY / "prometheus" / "prometheus.yml")[0][
            "scrape_configs"
        ]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    for name in ("api", "reservation-worker", "mail-worker"):
        allowed = _port_settings(compose[name]["environment"])
        published = {int(p.rsplit(":", 1)[1]) for p in compose[name].get("ports", [])}
        targets = {int(t.split(":")[1]) for t in scraped if t.startswith(f"{name}:")}
        assert targets, f"Prometheus does not scrape {name}"
        assert published | targets <= allowed, name


_SERIES = {"counter": ("_total",), "histogram": _HISTOGRAM_SUFFIXES, "gauge": ("",)}


def _exported_names() -> set[str]:
    """Every series name the registry can expose, labelled or not yet observed."""
    names = set()
    for metric in REGISTRY.collect():
        names.update(metric.name + suffix for suffix in _SERIES.get(metric.type, ("",)))
    return names


def _promql_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\b(?:tlounge|temporal)_[a-z0-9_]+\b", expr))


def _known(metric: str, exported: set[str]) -> bool:
    if metric.startswith("tlounge_"):
        return metric in exported
    base = metric
    for suffix in _HISTOGRAM_SUFFIXES:
        base = base.removesuffix(suffix)
    return base in TEMPORAL_SDK_METRICS


def test_chart_only_metrics_the_code_exports() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "tlounge.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    exported, used = _exported_names(), set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            metrics = _promql_metrics(target["expr"])
            assert metrics, f"{panel['title']}: no metric in {target['expr']}"
            used |= metrics
    assert {m for m in used if not _known(m, exported)} == set()
    assert "tlounge_reminder_lateness_seconds_bucket" in used
    assert "temporal_workflow_task_execution_failed" in used
    ids = [p["gridPos"]["y"] * 100 + p["gridPos"]["x"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "two panels share a grid position"


def test_alert_on_exported_metrics_with_runbook_sections() -> None:
    rules = load_all(DEPLOY / "prometheus" / "alerts.yaml")[0]
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("#")
    }
    exported, alerts = _exported_names(), []
    for group in rules["groups"]:
        for rule in group["rules"]:
            alerts.append(rule["alert"])
            metrics = _promql_metrics(rule["expr"]) or {"up"}
            assert {
                m for m in metrics if m != "up" and not _known(m, exported)
            } == set()
            anchor = rule["annotations"]["runbook"].split("#", 1)[1]
            assert anchor in anchors, f"{rule['alert']}: no runbook section {anchor}"
            assert rule["labels"]["severity"] in ("page", "warn")
    assert {
        "TLoungeReminderLate", "TLoungeMailPermanentFailures",
        "TLoungeWorkflowTaskFailures", "TLoungeApiErrorRate", "TLoungeApiLatencyHigh",
    } <= set(alerts)  # fmt: skip


def _compose_schema() -> dict:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())


@pytest.mark.parametrize("name", ["compose.yaml", "compose.yugabyte.yaml"])
def test_validate_compose_file_against_spec(name: str) -> None:
    document = load_all(DEPLOY / name)[0]
    jsonschema.validate(document, _compose_schema())


def test_compose_runs_full_stack_from_one_image() -> None:
    services = load_all(DEPLOY / "compose.yaml")[0]["services"]
    assert {
        "temporal", "temporal-ui", "temporal-postgresql", "postgres", "valkey", "minio",
        "mailpit", "prometheus", "grafana", "api", "reservation-worker", "mail-worker",
    } <= set(services)  # fmt: skip
    assert services["api"]["command"] == ["api"]
    assert services["reservation-worker"]["command"] == ["worker", "reservation"]
    assert services["mail-worker"]["command"] == ["worker", "mail"]
    images = {
        services[n]["image"] for n in ("api", "reservation-worker", "mail-worker")
    }
    assert images == {"tlounge:local"}
    for service in services.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port
    yugabyte = load_all(DEPLOY / "compose.yugabyte.yaml")[0]["services"]
    for name in ("api", "reservation-worker", "mail-worker"):
        assert yugabyte[name]["environment"]["TLOUNGE_DATABASE_URL"].endswith(
            "@yugabytedb:5433/yugabyte"
        )


def _pairs(text: str) -> dict[str, str]:
    return dict(re.findall(r"\b([A-Z][A-Za-z]+)=(Keyword|Datetime)\b", text))


def test_register_every_search_attribute_for_clusters() -> None:
    values = load_all(DEPLOY / "temporal-helm-values.yaml")[0]
    (job,) = [o for o in values["extraObjects"] if o["kind"] == "Job"]
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert _pairs(env["SEARCH_ATTRIBUTES"]) == SEARCH_ATTRIBUTES
    compose = load_all(DEPLOY / "compose.yaml")[0]["services"]["temporal-setup"]
    assert _pairs(compose["command"][0]) == SEARCH_ATTRIBUTES
    assert values["elasticsearch"]["enabled"] is False
    assert (
        values["server"]["config"]["persistence"]["visibility"]["sql"]["driver"]
        == "postgres12"
    )


def test_argocd_application_points_at_production_overlay() -> None:
    (app,) = load_all(DEPLOY / "argocd-application.yaml")
    assert app["kind"] == "Application"
    path = app["spec"]["source"]["path"]
    assert (ROOT / path / "kustomization.yaml").exists()
    assert path.endswith("overlays/production")
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}


def test_dockerfile_runs_as_non_root_tlounge_command() -> None:
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    instructions = [
        line.split(" ", 1) for line in lines if line and not line.startswith((" ", "#"))
    ]
    final = instructions[
        max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :
    ]
    ops = {op: arg for op, arg in final}
    assert ops["USER"].split(":")[0] not in ("0", "root")
    assert json.loads(ops["ENTRYPOINT"]) == ["tlounge"]
    assert json.loads(ops["CMD"]) == ["api"]
    assert "TLOUNGE_API_HOST=0.0.0.0" in "\n".join(lines)
