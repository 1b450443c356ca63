"""deploy/: every file parses, agrees with the settings table, the metrics and itself; promtool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.metrics import REFUSAL_REASONS, RELEASE_OUTCOMES, UNKNOWN_DATASET, Metrics
from gateway.settings import ENV_PREFIX, SETTINGS, load_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "gateway-rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "gateway-alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboard.json"
TOML = DEPLOY / "gateway.toml"
SETTING_NAMES = {s.name for s in SETTINGS}
K8S_KINDS = {"Deployment", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler",
             "PodDisruptionBudget"}


def load_yaml(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def k8s_objects() -> list[dict[str, Any]]:
    return [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in load_yaml(path)]


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in k8s_objects() if o["kind"] == kind
             and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} objects"
    return found[0]


def gateway_toml() -> dict[str, Any]:
    with open(TOML, "rb") as fh:
        return tomllib.load(fh)["gateway"]


def pod_spec() -> dict[str, Any]:
    return one("Deployment", "gateway")["spec"]["template"]["spec"]


def container() -> dict[str, Any]:
    (only,) = pod_spec()["containers"]
    return only


def compose() -> dict[str, Any]:
    (doc,) = load_yaml(DEPLOY / "compose.yaml")
    return doc


def gateway_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose()["services"].items()
            if svc.get("build", {}).get("dockerfile") == "deploy/Dockerfile"}


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text(encoding="utf-8"))
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def alerts() -> list[dict[str, Any]]:
    (doc,) = load_yaml(RULES)
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def deploy_text_files() -> list[Path]:
    return [p for p in DEPLOY.rglob("*") if p.is_file()]


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.y*ml")), ids=lambda p: p.name)
def test_every_yaml_file_parses(path: Path) -> None:
    assert load_yaml(path), f"{path} holds no document"


def test_every_json_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.json"))
    assert DASHBOARD in files
    for path in files:
        json.loads(path.read_text(encoding="utf-8"))


def test_only_rule_files_have_rule_in_their_name() -> None:
    """Ops tooling runs `promtool check rules` on deploy/**/*rule*.y*ml: a test file would fail."""
    named = {p for p in DEPLOY.rglob("*.y*ml") if "rule" in p.name.lower()}
    assert named == {RULES}


def test_kubernetes_manifests_are_complete_and_namespaced() -> None:
    objects = k8s_objects()
    assert {o["kind"] for o in objects} >= K8S_KINDS
    for obj in objects:
        assert obj["apiVersion"] and obj["kind"]
        if obj["kind"] not in ("Namespace", "Kustomization"):
            assert obj["metadata"]["name"] and obj["metadata"]["namespace"] == "county-gateway"
    (kustomization,) = load_yaml(DEPLOY / "k8s" / "kustomization.yaml")
    # Applying secret.yaml's placeholders would overwrite the real secrets.
    unlisted = {"kustomization.yaml", "secret.yaml"}
    manifests = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")}
    assert set(kustomization["resources"]) == manifests - unlisted


def test_probes_point_at_healthz_and_readyz() -> None:
    """R-OP-03: liveness never checks dependencies; readiness does."""
    c = container()
    port_names = {p["name"] for p in c["ports"]}
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] in port_names
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": gateway_toml()["port"], "metrics": gateway_toml()["metrics_port"]}


def test_selectors_and_references_resolve() -> None:
    deployment = one("Deployment", "gateway")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert one("Service")["spec"]["selector"].items() <= pod_labels.items()
    for kind, path in (("PodDisruptionBudget", "selector"), ("NetworkPolicy", "podSelector")):
        assert one(kind)["spec"][path]["matchLabels"].items() <= pod_labels.items()
    target = one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "gateway")
    port_names = {p["name"] for p in container()["ports"]}
    assert {p["targetPort"] for p in one("Service")["spec"]["ports"]} <= port_names


def test_volumes_configmaps_and_secrets_resolve() -> None:
    spec, c = pod_spec(), container()
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert {m["name"] for m in c["volumeMounts"]} <= set(volumes)
    for volume in volumes.values():
        if "configMap" in volume:
            one("ConfigMap", volume["configMap"]["name"])
        if "persistentVolumeClaim" in volume:
            one("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
        if "secret" in volume:
            one("Secret", volume["secret"]["secretName"])
    for env in c["env"]:
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["key"] in one("Secret", ref["name"])["stringData"]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    toml = gateway_toml()
    assert {toml["state_dir"], toml["data_dir"], toml["policies_dir"]} <= set(mounts)
    # Every replica signs with the one keyring (tokens, audit checkpoints), read-only.
    assert mounts[toml["state_dir"] + "/keys"]["readOnly"] is True


def test_pods_run_unprivileged_as_the_image_user() -> None:
    security = pod_spec()["securityContext"]
    assert security["runAsNonRoot"] is True
    user = [args for ins, args in dockerfile() if ins == "USER"][-1]
    assert security["runAsUser"] == int(user.split(":")[0]) != 0
    assert container()["securityContext"]["allowPrivilegeEscalation"] is False


def test_config_maps_carry_the_toml_and_the_policies() -> None:
    config = one("ConfigMap", "gateway-config")["data"]["gateway.toml"]
    assert config == TOML.read_text(), "stale: run python3 deploy/k8s/render_configmaps.py"
    data = one("ConfigMap", "gateway-policies")["data"]
    shipped = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "policies").glob("*.yaml")}
    assert data == shipped, "stale: run python3 deploy/k8s/render_configmaps.py"


def test_grace_periods_outlast_the_drain() -> None:
    """R-OP-04: the orchestrator must not kill a replica still finishing paid answers."""
    grace = gateway_toml()["shutdown_grace_seconds"]
    pre_stop = int(container()["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod_spec()["terminationGracePeriodSeconds"] > grace + pre_stop
    for svc in gateway_services().values():
        assert int(svc["stop_grace_period"].rstrip("s")) > grace


def test_dockerfile_slim_non_root_volume_healthcheck() -> None:
    instructions = dockerfile()
    assert all(args.split()[0] == "python:3.11-slim" for ins, args in instructions if ins == "FROM")
    user = [args for ins, args in instructions if ins == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    volumes = " ".join(args for ins, args in instructions if ins == "VOLUME")
    assert gateway_toml()["state_dir"] in volumes
    (health,) = [args for ins, args in instructions if ins == "HEALTHCHECK"]
    assert "/healthz" in health
    commands = dict((ins, args) for ins, args in instructions if ins in ("ENTRYPOINT", "CMD"))
    assert json.loads(commands["ENTRYPOINT"]) + json.loads(commands["CMD"]) == [
        "gateway", "serve", "--config", "/etc/gateway/gateway.toml"]
    for ins, args in instructions:
        if ins == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_compose_runs_three_gateways_on_one_postgres() -> None:
    services = compose()["services"]
    gateways = gateway_services()
    assert len(gateways) == 3
    assert {"postgres", "prometheus", "grafana", "loadbalancer"} <= set(services)
    state_dir = gateway_toml()["state_dir"]
    replica_ids, state_volumes, key_volumes = set(), set(), set()
    for svc in gateways.values():
        assert "@postgres:5432/" in svc["environment"]["GATEWAY_STORE_DSN"]
        replica_ids.add(svc["environment"]["GATEWAY_REPLICA_ID"])
        mounts = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}
        state_volumes.add(mounts[state_dir])
        key_volumes.add(mounts[state_dir + "/keys"])
    assert len(replica_ids) == 3 and len(state_volumes) == 3 and len(key_volumes) == 1
    assert state_volumes | key_volumes <= set(compose()["volumes"])


def test_compose_bind_mounts_exist() -> None:
    for svc in compose()["services"].values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"compose mounts missing {source}"


def test_load_balancer_and_prometheus_know_every_replica() -> None:
    names = set(gateway_services())
    toml = gateway_toml()
    nginx = (DEPLOY / "nginx" / "nginx.conf").read_text(encoding="utf-8")
    assert set(re.findall(r"^\s*server\s+([\w.-]+:\d+)", nginx, re.M)) == {
        f"{n}:{toml['port']}" for n in names}
    (prom,) = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "gateway"]
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"{n}:{toml['metrics_port']}" for n in names}
    assert all((DEPLOY / "prometheus" / f).is_file() for f in prom["rule_files"])


def test_every_gateway_variable_and_toml_key_is_a_setting() -> None:
    variables = {m for p in deploy_text_files()
                 for m in re.findall(r"\bGATEWAY_[A-Z0-9_]+", p.read_text(encoding="utf-8"))}
    assert variables, "deploy/ should configure replicas through GATEWAY_* variables"
    names = {v[len(ENV_PREFIX):].lower() for v in variables}
    assert names <= SETTING_NAMES, names - SETTING_NAMES
    toml = gateway_toml()
    assert set(toml) <= SETTING_NAMES, set(toml) - SETTING_NAMES
    assert "store_dsn" not in toml, "the DSN is a secret: environment only"
    load_settings(TOML)


def test_rules_and_dashboard_use_only_existing_metrics() -> None:
    names = Metrics(["residents"], [("GET", "/healthz")]).metric_names()
    exprs = [a["expr"] for a in alerts()] + dashboard_exprs()
    texts = [*exprs, DASHBOARD.read_text(encoding="utf-8")]
    used = {m for text in texts for m in re.findall(r"\bgateway_[a-z0-9_]+", text)}
    assert used and used <= names, used - names
    domains = {"reason": set(REFUSAL_REASONS), "outcome": set(RELEASE_OUTCOMES),
               "status_class": {"2xx", "4xx", "5xx"}, "dataset": {UNKNOWN_DATASET, "$dataset"}}
    for label, value in re.findall(r'\b(\w+)!?=~?"([^"]*)"', " ".join(exprs)):
        if label in domains:
            assert value in domains[label], f'{label}="{value}" can never match'


def test_every_alert_is_documented_labelled_and_tested() -> None:
    runbook = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    (tests,) = load_yaml(RULE_TESTS)
    tested = {case["alertname"] for t in tests["tests"] for case in t.get("alert_rule_test", [])}
    for alert in alerts():
        name = alert["alert"]
        assert alert["labels"]["severity"] in ("critical", "warning"), name
        assert {"summary", "description"} <= set(alert["annotations"]), name
        assert alert["annotations"]["runbook_url"] == f"docs/operations.md#{name.lower()}"
        assert re.search(rf"^###\s+{name}\s*$", runbook, re.M), f"no runbook section for {name}"
        assert name in tested, f"no promtool test for {name}"


def test_dashboard_panels_are_well_formed() -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [p["id"] for p in dash["panels"]]
    assert dash["uid"] and len(ids) == len(set(ids))
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])
            assert panel["datasource"]["uid"] == "${datasource}"


def run_promtool(*args: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install -y prometheus)")
    result = subprocess.run([promtool, *args], cwd=DEPLOY / "prometheus", capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules() -> None:
    run_promtool("check", "rules", RULES.name)


def test_promtool_test_rules() -> None:
    run_promtool("test", "rules", RULE_TESTS.name)


def test_promtool_check_config() -> None:
    run_promtool("check", "config", "prometheus.yml")
