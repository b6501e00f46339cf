"""The Helm chart: lint, render, validate offline against Kubernetes 1.32, and check what it wires.

Every test runs over each value set (the defaults and the files under values/), so a change that
breaks one shape of installation fails here rather than in someone's cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config import load_settings
from tests.deploy.conftest import (
    NAMESPACE,
    RELEASES,
    VALUE_SETS,
    Helm,
    Rendered,
    kubernetes_validate,
    values_file,
    values_of,
)

Render = Callable[[str], Rendered]

SECRETS_DIR = "/etc/osctl/secrets"
STATE_DIR = "/var/lib/osctl"
RECOMMENDED_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
}
ALWAYS = {"Deployment", "Service", "ConfigMap"}
OPTIONAL_DEFAULTS = {"ServiceAccount", "Role", "RoleBinding", "PodDisruptionBudget", "NetworkPolicy"}

# What each value set must render: the object kinds, the replicas, and every secret file as
# env var -> (Secret name, key). Written out rather than derived, so the chart's logic is checked.
EXPECTED: dict[str, dict[str, Any]] = {
    "default": {
        "kinds": ALWAYS | OPTIONAL_DEFAULTS,
        "replicas": 1,
        "secret_files": {},
    },
    "ha": {
        "kinds": ALWAYS | OPTIONAL_DEFAULTS | {"ServiceMonitor"},
        "replicas": 3,
        "secret_files": {
            "OSCTL_STATE_URL_FILE": ("osctl-state", "url"),
            "OSCTL_API_TOKENS_FILE": ("osctl-api-tokens", "tokens.yaml"),
            "OSCTL_TARGET_APP_FILE": ("app-db", "dsn"),
            "OSCTL_TARGET_BILLING_EU_FILE": ("billing-eu-db", "mysql-dsn"),
            "OSCTL_SLACK_BOT_TOKEN_FILE": ("osctl-slack", "bot-token"),
            "OSCTL_SLACK_WEBHOOK_URL_FILE": ("osctl-slack", "webhook-url"),
            "OSCTL_SLACK_SIGNING_SECRET_FILE": ("osctl-slack", "signing-secret"),
            "OSCTL_SLACK_USERS_FILE": ("osctl-slack", "users.yaml"),
        },
    },
    "single-persistent": {
        "kinds": ALWAYS,
        "replicas": 1,
        "secret_files": {"OSCTL_TARGET_LEGACY_FILE": ("legacy-db", "dsn")},
    },
    "webhook-only": {
        "kinds": ALWAYS | OPTIONAL_DEFAULTS,
        "replicas": 2,
        "secret_files": {
            "OSCTL_STATE_URL_FILE": ("shared-db", "osctl-state-url"),
            "OSCTL_TARGET_SHOP_FILE": ("shared-db", "shop-dsn"),
            "OSCTL_SLACK_WEBHOOK_URL_FILE": ("slack-webhook", "url"),
        },
    },
}

# Fake secret contents for the load_settings round trip, by path under the secrets directory.
FAKE_SECRET_FILES = {
    "state-url": "postgresql+asyncpg://osctl:state-password@state-db:5432/osctl",
    "api-tokens": 'ci: {hash: "sha256:' + "0" * 64 + '", scopes: [pipeline]}',
    "targets/app": "postgresql://app:app-password@app-db:5432/app",
    "targets/billing-eu": "mysql://billing:billing-password@billing-db:3306/billing",
    "targets/legacy": "postgresql://legacy:legacy-password@legacy-db/legacy",
    "targets/shop": "postgresql://shop:shop-password@shop-db/shop",
    "slack/bot-token": "xoxb-test-token",
    "slack/webhook-url": "https://hooks.slack.example/services/T0/B0/secret",
    "slack/signing-secret": "8f742231b10e8888abcd99yyyzzz85a5",
    "slack/users": "{U012ABC: [oncall], U034DEF: [pipeline]}",
}

by_value_set = pytest.mark.parametrize("value_set", VALUE_SETS)


def test_every_value_set_has_expectations() -> None:
    assert sorted(EXPECTED) == sorted(VALUE_SETS)


# -- helm itself -----------------------------------------------------------------------------------


@by_value_set
def test_lint_strict(helm: Helm, value_set: str) -> None:
    result = helm.lint(values_file(value_set))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "[WARNING]" not in output and "[ERROR]" not in output, output


@by_value_set
def test_rendered_manifests_validate_against_kubernetes(
    render: Render, value_set: str, tmp_path: Path
) -> None:
    manifest = tmp_path / f"{value_set}.yaml"
    manifest.write_text(render(value_set).text)
    result = kubernetes_validate(manifest)
    assert result.returncode == 0, result.stdout + result.stderr
    problems = [line for line in result.stdout.splitlines() if not line.startswith("WARN")]
    assert problems == [], result.stdout
    # Only the Prometheus Operator's CRD has no schema to check against.
    for warning in (line for line in result.stdout.splitlines() if line.startswith("WARN")):
        assert "ServiceMonitor" in warning, warning


@by_value_set
def test_renders_the_expected_objects(render: Render, value_set: str) -> None:
    rendered = render(value_set)
    assert rendered.kinds() == EXPECTED[value_set]["kinds"]
    assert "Secret" not in rendered.kinds()  # existingSecret only: the chart never holds a credential
    names = {(item["kind"], item["metadata"]["name"]) for item in rendered.objects}
    assert len(names) == len(rendered.objects)
    for item in rendered.objects:
        assert item["metadata"]["namespace"] == NAMESPACE


@by_value_set
def test_recommended_labels_and_matching_selectors(render: Render, value_set: str) -> None:
    rendered = render(value_set)
    selector = rendered.deployment["spec"]["selector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/name": "osctl",
        "app.kubernetes.io/instance": RELEASES.get(value_set, "osctl"),
    }
    for item in rendered.objects:
        labels = item["metadata"]["labels"]
        assert labels.keys() >= RECOMMENDED_LABELS, item["kind"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
    pod_labels = rendered.deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels.items() >= selector.items()
    assert rendered.one("Service")["spec"]["selector"] == selector
    for pdb in rendered.of_kind("PodDisruptionBudget"):
        assert pdb["spec"]["selector"]["matchLabels"] == selector
    for policy in rendered.of_kind("NetworkPolicy"):
        assert policy["spec"]["podSelector"]["matchLabels"] == selector
    for monitor in rendered.of_kind("ServiceMonitor"):
        assert monitor["spec"]["selector"]["matchLabels"] == selector


# -- the pod ---------------------------------------------------------------------------------------


@by_value_set
def test_replicas_and_rollout_strategy(render: Render, value_set: str) -> None:
    rendered = render(value_set)
    spec = rendered.deployment["spec"]
    assert spec["replicas"] == EXPECTED[value_set]["replicas"]
    embedded_state = not values_of(value_set).get("state", {}).get("existingSecret")
    if embedded_state:
        assert spec["strategy"] == {"type": "Recreate"}  # never two SQLite writers
        assert rendered.config["OSCTL_STATE_URL"] == f"sqlite+aiosqlite:///{STATE_DIR}/state.db"
        assert rendered.config["OSCTL_LEADER_ELECTION"] == "false"
    else:
        assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
        assert "OSCTL_STATE_URL" not in rendered.config  # a secret: OSCTL_STATE_URL_FILE instead
        assert rendered.config["OSCTL_LEADER_ELECTION"] == "true"


@by_value_set
def test_pod_and_container_are_hardened(render: Render, value_set: str) -> None:
    rendered = render(value_set)
    pod_context = rendered.pod["securityContext"]
    expected_user = values_of(value_set).get("podSecurityContext", {}).get("runAsUser", 10001)
    assert pod_context["runAsNonRoot"] is True
    assert pod_context["runAsUser"] == expected_user
    assert pod_context["fsGroup"] == expected_user
    assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}
    context = rendered.container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context.get("runAsUser", pod_context["runAsUser"]) == expected_user
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["privileged"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert rendered.pod["automountServiceAccountToken"] is False
    assert rendered.pod["terminationGracePeriodSeconds"] >= 30


@by_value_set
def test_probes_hit_healthz_and_readyz_on_the_served_port(render: Render, value_set: str) -> None:
    rendered = render(value_set)
    container = rendered.container
    (port,) = container["ports"]
    assert port["name"] == "http"
    assert str(port["containerPort"]) == rendered.config["OSCTL_PORT"]
    assert rendered.config["OSCTL_HOST"] == "0.0.0.0"
    probes = {name: container[f"{name}Probe"]["httpGet"] for name in ("startup", "liveness", "readiness")}
    assert probes == {
        "startup": {"path": "/healthz", "port": "http"},
        "liveness": {"path": "/healthz", "port": "http"},
        "readiness": {"path": "/readyz", "port": "http"},
    }
    for name in ("liveness", "readiness"):
        assert container[f"{name}Probe"]["timeoutSeconds"] < container[f"{name}Probe"]["periodSeconds"]
    (service_port,) = rendered.one("Service")["spec"]["ports"]
    assert service_port["targetPort"] == "http"
    assert container["args"] == ["serve"]
    assert {"configMapRef": {"name": rendered.one("ConfigMap")["metadata"]["name"]}} in container["envFrom"]


@by_value_set
def test_writable_paths_are_volumes(render: Render, value_set: str) -> None:
    rendered = render(value_set)
    mounts = {mount["mountPath"]: mount for mount in rendered.container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in rendered.pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    claim = values_of(value_set).get("stateVolume", {}).get("existingClaim")
    state_volume = volumes[mounts[STATE_DIR]["name"]]
    if claim:
        assert state_volume["persistentVolumeClaim"] == {"claimName": claim}
    else:
        assert state_volume["emptyDir"]["sizeLimit"]
    if SECRETS_DIR in mounts:
        assert mounts[SECRETS_DIR]["readOnly"] is True


# -- secrets, as files -----------------------------------------------------------------------------


def secret_wiring(rendered: Rendered) -> dict[str, tuple[str, str]]:
    """Each *_FILE variable traced through its volume mount to the Secret and key behind it."""
    mounts = {mount["name"]: mount["mountPath"] for mount in rendered.container["volumeMounts"]}
    items: dict[str, tuple[str, str]] = {}
    for volume in rendered.pod["volumes"]:
        for source in volume.get("projected", {}).get("sources", []):
            secret = source["secret"]
            for item in secret["items"]:
                path = f"{mounts[volume['name']]}/{item['path']}"
                assert path not in items, f"two secret items at {path}"
                items[path] = (secret["name"], item["key"])
    wiring = {}
    for name, path in rendered.file_env().items():
        assert path in items, f"{name}={path} is not a mounted secret item"
        wiring[name] = items[path]
    assert len(items) == len(wiring), "a mounted secret item no variable names"
    return wiring


@by_value_set
def test_existing_secrets_are_mounted_as_files_named_by_env(render: Render, value_set: str) -> None:
    rendered = render(value_set)
    assert secret_wiring(rendered) == EXPECTED[value_set]["secret_files"]
    for volume in rendered.pod["volumes"]:
        if "projected" in volume:
            assert volume["projected"]["defaultMode"] == 0o440


@by_value_set
def test_configmap_holds_no_secrets(render: Render, value_set: str) -> None:
    rendered = render(value_set)
    for key in rendered.config:
        assert key.startswith("OSCTL_") or key == "GH_OST_BIN", key
        assert not re.match(r"OSCTL_(TARGET_|API_TOKENS|SLACK_BOT_TOKEN|SLACK_WEBHOOK_URL)", key), key
    # No URL with credentials anywhere in what the chart renders.
    assert not re.search(r"://[^\s/@]+:[^\s/@]+@", rendered.text)


def settings_environ(rendered: Rendered, secrets_root: Path) -> dict[str, str]:
    """The container's environment as the process would see it, with the secret files faked."""
    environ = dict(rendered.config)
    for env in rendered.container["env"]:
        if "value" in env:
            environ[env["name"]] = env["value"]
    for name, path in rendered.file_env().items():
        relative = path.removeprefix(f"{SECRETS_DIR}/")
        fake = secrets_root / relative
        fake.parent.mkdir(parents=True, exist_ok=True)
        fake.write_text(FAKE_SECRET_FILES[relative] + "\n")
        environ[name] = str(fake)
    return environ


@by_value_set
def test_the_service_reads_its_settings_from_what_the_chart_renders(
    render: Render, value_set: str, tmp_path: Path
) -> None:
    rendered = render(value_set)
    settings = load_settings(settings_environ(rendered, tmp_path))
    values = values_of(value_set)
    assert settings.host == "0.0.0.0"
    assert settings.port == values.get("containerPort", 8080)
    assert settings.log_format == values.get("config", {}).get("logFormat", "json")
    expected_targets = {target["name"] for target in values.get("targets", [])}
    assert set(settings.targets) == expected_targets
    for name, target in settings.targets.items():
        assert target.dsn.get_secret_value() == FAKE_SECRET_FILES[f"targets/{name}"]
    secret_files = EXPECTED[value_set]["secret_files"]
    assert (settings.slack_bot_token is not None) == ("OSCTL_SLACK_BOT_TOKEN_FILE" in secret_files)
    assert (settings.slack_webhook_url is not None) == ("OSCTL_SLACK_WEBHOOK_URL_FILE" in secret_files)
    signs = "OSCTL_SLACK_SIGNING_SECRET_FILE" in secret_files
    assert (settings.slack_signing_secret is not None) == signs
    assert bool(settings.slack_users) == ("OSCTL_SLACK_USERS_FILE" in secret_files)
    if "OSCTL_STATE_URL_FILE" in secret_files:
        assert settings.state_url == FAKE_SECRET_FILES["state-url"]
    else:
        assert settings.state_url == f"sqlite+aiosqlite:///{STATE_DIR}/state.db"


# -- RBAC, disruption, network, metrics ------------------------------------------------------------


@by_value_set
def test_role_is_read_only_on_its_own_objects(render: Render, value_set: str) -> None:
    rendered = render(value_set)
    for role in rendered.of_kind("Role"):
        rules = {rule["resources"][0]: rule for rule in role["rules"]}
        assert rules["configmaps"]["resourceNames"] == [rendered.one("ConfigMap")["metadata"]["name"]]
        secrets = sorted({secret for secret, _key in EXPECTED[value_set]["secret_files"].values()})
        assert rules.get("secrets", {}).get("resourceNames", []) == secrets
        for rule in role["rules"]:
            assert rule["verbs"] == ["get"]
            assert rule["apiGroups"] == [""]
        (binding,) = rendered.of_kind("RoleBinding")
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": rendered.pod["serviceAccountName"], "namespace": NAMESPACE}
        ]


def test_default_leader_settings_match_the_service_defaults(render: Render) -> None:
    config = render("default").config
    assert config["OSCTL_LEADER_LOCK_KEY"] == str(0x6F7363746C01)
    assert (config["OSCTL_LEADER_RETRY_SECONDS"], config["OSCTL_LEADER_LEASE_SECONDS"]) == ("1", "10")


def test_pod_disruption_budget(render: Render) -> None:
    assert render("default").one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    ha = render("ha").one("PodDisruptionBudget")["spec"]
    assert ha["minAvailable"] == 2
    assert "maxUnavailable" not in ha
    assert "PodDisruptionBudget" not in render("single-persistent").kinds()


def test_network_policy_default_admits_only_the_http_port(render: Render) -> None:
    spec = render("default").one("NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    assert "egress" not in spec


def test_network_policy_restricted_egress(render: Render) -> None:
    values = values_of("ha")["networkPolicy"]
    spec = render("ha").one("NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"][0]["from"] == values["ingressFrom"]
    dns, *extra = spec["egress"]
    assert dns == {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    assert extra == values["egress"]["extraRules"]


def test_service_monitor_only_when_enabled(render: Render) -> None:
    for value_set in VALUE_SETS:
        enabled = values_of(value_set).get("metrics", {}).get("serviceMonitor", {}).get("enabled", False)
        assert ("ServiceMonitor" in render(value_set).kinds()) == enabled, value_set
    monitor = render("ha").one("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "15s", "scrapeTimeout": "5s"}
    ]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


# -- value-set specifics ---------------------------------------------------------------------------


def test_ha_settings(render: Render) -> None:
    rendered = render("ha")
    assert rendered.config["OSCTL_LEADER_LOCK_KEY"] == "424242"
    assert rendered.config["OSCTL_LEADER_RETRY_SECONDS"] == "3"
    assert rendered.config["OSCTL_LEADER_LEASE_SECONDS"] == "15"
    assert rendered.config["OSCTL_SLACK_CHANNEL"] == "#db-migrations"
    assert rendered.config["OSCTL_MAX_COPYING"] == "2"
    assert rendered.config["OSCTL_LOG_LEVEL"] == "debug"
    assert rendered.container["image"] == "registry.example.com/platform/osctl:0.1.0-rc1"
    assert rendered.container["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert rendered.pod["imagePullSecrets"] == [{"name": "registry-pull"}]


def test_single_persistent_settings(render: Render) -> None:
    rendered = render("single-persistent")
    assert {item["metadata"]["name"] for item in rendered.objects} == {"schema-changes"}
    assert rendered.container["image"] == (
        "osctl@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
    )
    assert rendered.pod["serviceAccountName"] == "platform-tools"
    assert rendered.config["GH_OST_BIN"] == "/opt/gh-ost-mounted/gh-ost"
    assert {"name": "gh-ost", "mountPath": "/opt/gh-ost-mounted", "readOnly": True} in rendered.container[
        "volumeMounts"
    ]
    (port,) = rendered.one("Service")["spec"]["ports"]
    assert (rendered.one("Service")["spec"]["type"], port["port"]) == ("NodePort", 80)
    assert rendered.config["OSCTL_PORT"] == "9000"
    assert rendered.config["OSCTL_API_URL"] == "http://127.0.0.1:9000"
    tmp = next(volume for volume in rendered.pod["volumes"] if volume["name"] == "tmp")
    assert tmp["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}


def test_webhook_only_settings(render: Render) -> None:
    rendered = render("webhook-only")
    assert rendered.deployment["metadata"]["name"] == "migrations-osctl"
    # A bigint lock key survives helm's float64 numbers exactly.
    assert rendered.config["OSCTL_LEADER_LOCK_KEY"] == "9007199254740991"
    assert rendered.config["OSCTL_LEADER_RETRY_SECONDS"] == "0.5"
    assert rendered.config["OSCTL_LEADER_LEASE_SECONDS"] == "7.5"
    names = [env["name"] for env in rendered.container["env"]]
    assert names[-2:] == ["OSCTL_SLACK_BASE_URL", "HTTPS_PROXY"]  # extraEnv after the chart's own
    assert rendered.deployment["spec"]["template"]["metadata"]["labels"]["example.com/cost-center"] == "db"
    assert rendered.pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"


def test_config_change_rolls_the_pods(helm: Helm) -> None:
    def checksum(*set_values: str) -> str:
        result = helm.template(set_values=set_values)
        assert result.returncode == 0, result.stderr
        match = re.search(r"checksum/config: (\w+)", result.stdout)
        assert match is not None
        return match.group(1)

    assert checksum() != checksum("config.logLevel=debug")


def test_notes_warn_about_an_ephemeral_store_and_no_tokens(helm: Helm) -> None:
    notes = helm.notes()
    assert "embedded SQLite file in an emptyDir" in notes
    assert "no API tokens" in notes
    ha_notes = helm.notes(values_file("ha"))
    assert "WARNING" not in ha_notes
    assert "app (secret app-db), billing-eu (secret billing-eu-db)" in ha_notes
    assert "/metrics" in ha_notes
