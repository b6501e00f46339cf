"""values.schema.json refuses bad values, and says which field, before anything reaches a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import Helm

POSTGRES_STATE = {"state": {"existingSecret": "osctl-state"}}

# (case id, values overriding the defaults, text the error must contain: the field's JSON pointer)
# fmt: off
BAD_VALUES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("zero-replicas", {"replicaCount": 0}, ["/replicaCount", "minimum"]),
    ("replicas-as-text", {"replicaCount": "two"}, ["/replicaCount"]),
    ("unknown-top-level-key", {"replicas": 2}, ["'replicas' not allowed"]),
    ("unknown-nested-key", {"service": {"nodePort": 30080}}, ["/service", "'nodePort' not allowed"]),
    ("pull-policy", {"image": {"pullPolicy": "Sometimes"}}, ["/image/pullPolicy"]),
    ("digest", {"image": {"digest": "sha256:abc"}}, ["/image/digest"]),
    ("log-level", {"config": {"logLevel": "verbose"}}, ["/config/logLevel"]),
    ("secret-in-configmap", {"config": {"extra": {"OSCTL_TARGET_APP": "postgresql://u:p@h/d"}}}, ["/config/extra/OSCTL_TARGET_APP"]),
    ("chart-owned-setting", {"config": {"extra": {"OSCTL_PORT": "9090"}}}, ["/config/extra/OSCTL_PORT"]),
    ("target-name", {"targets": [{"name": "App_DB", "existingSecret": "app-db"}]}, ["/targets/0/name"]),
    ("target-without-secret", {"targets": [{"name": "app"}]}, ["/targets/0", "existingSecret"]),
    ("target-secret-name", {"targets": [{"name": "app", "existingSecret": "App DB"}]}, ["/targets/0/existingSecret"]),
    ("several-replicas-on-sqlite", {"replicaCount": 3}, ["/state/existingSecret", "/leaderElection/enabled"]),
    ("leader-election-on-sqlite", {"leaderElection": {"enabled": True}}, ["/state/existingSecret"]),
    ("lock-key-fraction", {**POSTGRES_STATE, "leaderElection": {"lockKey": 1.5}}, ["/leaderElection/lockKey"]),
    ("leader-retry-zero", {**POSTGRES_STATE, "leaderElection": {"retryIntervalSeconds": 0}}, ["/leaderElection/retryIntervalSeconds"]),
    ("privileged-port", {"containerPort": 80}, ["/containerPort"]),
    ("service-port", {"service": {"port": 70000}}, ["/service/port"]),
    ("service-type", {"service": {"type": "ExternalName"}}, ["/service/type"]),
    ("writable-root", {"securityContext": {"readOnlyRootFilesystem": False}}, ["/securityContext/readOnlyRootFilesystem"]),
    ("escalation", {"securityContext": {"allowPrivilegeEscalation": True}}, ["/securityContext/allowPrivilegeEscalation"]),
    ("added-capability", {"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}, ["/securityContext/capabilities/add"]),
    ("root-pod", {"podSecurityContext": {"runAsNonRoot": False}}, ["/podSecurityContext/runAsNonRoot"]),
    ("uid-zero", {"podSecurityContext": {"runAsUser": 0}}, ["/podSecurityContext/runAsUser"]),
    ("unconfined-seccomp", {"podSecurityContext": {"seccompProfile": {"type": "Unconfined"}}}, ["/podSecurityContext/seccompProfile/type"]),
    ("pdb-both", {"podDisruptionBudget": {"maxUnavailable": 1, "minAvailable": 1}}, ["/podDisruptionBudget"]),
    ("pdb-percentage", {"podDisruptionBudget": {"minAvailable": "half"}}, ["/podDisruptionBudget/minAvailable"]),
    ("scrape-interval", {"metrics": {"serviceMonitor": {"interval": "30 seconds"}}}, ["/metrics/serviceMonitor/interval"]),
    ("memory-quantity", {"resources": {"requests": {"memory": "lots"}}}, ["/resources/requests/memory"]),
    ("egress-flag", {"networkPolicy": {"egress": {"restricted": "yes"}}}, ["/networkPolicy/egress/restricted"]),
    ("unknown-setting", {"config": {"extra": {"LOG_LEVEL": "debug"}}}, ["/config/extra", "'LOG_LEVEL' not allowed"]),
    ("tmp-medium", {"tmpVolume": {"medium": "Disk"}}, ["/tmpVolume/medium"]),
]
# fmt: on

# Refused by the templates (rules a schema cannot say), with the message they give.
BAD_COMBINATIONS: list[tuple[str, dict[str, Any], str]] = [
    (
        "duplicate-target",
        {"targets": [{"name": "app", "existingSecret": "a"}, {"name": "app", "existingSecret": "b"}]},
        'targets: duplicate target name "app"',
    ),
    (
        "slack-secret-without-keys",
        {"slack": {"existingSecret": "osctl-slack", "botTokenKey": "", "webhookUrlKey": ""}},
        "slack: existingSecret is set but both botTokenKey and webhookUrlKey are empty",
    ),
]


def write_values(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.parametrize(
    ("values", "expected"), [case[1:] for case in BAD_VALUES], ids=[case[0] for case in BAD_VALUES]
)
def test_schema_rejects_bad_values(
    helm: Helm, tmp_path: Path, values: dict[str, Any], expected: list[str]
) -> None:
    path = write_values(tmp_path, values)
    for result in (helm.template([path]), helm.lint([path])):
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"accepted {values}:\n{output}"
        assert "don't meet the specifications of the schema" in output, output
        for text in expected:
            assert text in output, output


@pytest.mark.parametrize(
    ("values", "message"), [case[1:] for case in BAD_COMBINATIONS], ids=[case[0] for case in BAD_COMBINATIONS]
)
def test_templates_reject_bad_combinations(
    helm: Helm, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    result = helm.template([write_values(tmp_path, values)])
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_set_flags_are_checked_too(helm: Helm) -> None:
    result = helm.template(set_values=["image.pullPolicy=Sometimes"])
    assert result.returncode != 0
    assert "/image/pullPolicy" in result.stderr


def test_good_overrides_pass(helm: Helm, tmp_path: Path) -> None:
    values = {
        **POSTGRES_STATE,
        "replicaCount": 2,
        "leaderElection": {"enabled": True},
        "podDisruptionBudget": {"minAvailable": "50%"},
        "securityContext": {"runAsUser": 12345},
        "config": {"extra": {"OSCTL_SLACK_BASE_URL": "https://slack.internal/api/"}},
    }
    path = write_values(tmp_path, values)
    for result in (helm.template([path]), helm.lint([path])):
        assert result.returncode == 0, result.stdout + result.stderr
