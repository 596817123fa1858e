"""Installable like any production operator: the Helm chart, rendered, installed and run.

Without a cluster (helm only): the chart lints; ``helm template`` renders the expected objects
for the default and for representative values (args, config with the delegation lists,
CA mounts, security context, probes, resources, config checksum, namespaced/cluster RBAC,
peering only with >1 replica, the user-facing view/edit ClusterRoles and their aggregation
labels); the schema refuses bad values naming the key; the chart's CRDs are the repository's
and deploy/ is what the Makefile renders from the chart now.

On the local control plane: ``helm install`` creates the rendered objects, the chart's RBAC
bound to its own ServiceAccount (a TokenRequest token, not the suite's operator identity)
carries a whole lifecycle of the four kinds with the Deployment's own args and the
ConfigMap's own config; two replicas with the rendered ``--peering`` run with exactly one
active and the other taking over; the chart's edit/view ClusterRoles, bound to a user in one
namespace, give exactly the rights they promise there and nothing elsewhere; ``helm
uninstall`` leaves nothing of the release behind.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import (
    CHART,
    CHART_NAME,
    MAKEFILE,
    ROOT,
    ChartOperator,
    Helm,
    Release,
    helm_path,
    install_release,
    make_vars,
    operator_container,
    read_back,
    sa_kubeconfig,
)

from druid_access.claims import KEY_SECRET
from druid_access.config import (
    ClusterConfig,
    PivotConfig,
    ProtectedPrincipals,
    SecretKeys,
    TokenSecret,
    parse,
)
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.environment import (
    FakesInThread,
    apply,
    json_documents,
    kubectl_json,
    secret,
    wait_for,
    wait_reason,
)

KINDS_CRDS = (
    "druidaccess.io_druidconnections.yaml",
    "druidaccess.io_druidgroupmappings.yaml",
    "druidaccess.io_druidroles.yaml",
    "druidaccess.io_druidusers.yaml",
)

RELEASE = "dao-e2e"
HA_RELEASE = "dao-ha"
RELEASE_NS = "dao-system"
WATCH_NS = "helm-e2e"
HA_NS = "helm-ha"
ADMIN_PW = "admin-pw-helm-chart"
TOKEN = "pivot-token-helm-chart"
ADMIN_SECRET = "helm-druid-admin"
PIVOT_SECRET = "helm-pivot-token"
GROUP = "druidaccess.io"


# --- helm ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    path = helm_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"helm not found at {path}: run `make helm` (or set $HELM)")
    return Helm(path, tmp_path_factory.mktemp("helm-home"))


ValuesFile = Callable[[Mapping[str, Any]], Path]


@pytest.fixture
def values_file(tmp_path: Path) -> ValuesFile:
    counter = iter(range(1000))

    def write(values: Mapping[str, Any]) -> Path:
        path = tmp_path / f"values-{next(counter)}.yaml"
        path.write_text(yaml.safe_dump(dict(values), sort_keys=False), encoding="utf-8")
        return path

    return write


def _render(
    helm: Helm,
    values: Mapping[str, Any] | None,
    tmp: Path,
    *,
    release: str = "ops",
    namespace: str = "ops-system",
) -> list[dict[str, Any]]:
    args = ["template", release, str(CHART), "--namespace", namespace]
    if values is not None:
        path = (
            tmp
            / f"values-{hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]}.yaml"
        )
        path.write_text(yaml.safe_dump(dict(values)), encoding="utf-8")
        args += ["-f", str(path)]
    out = helm.run(*args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _find(
    docs: Sequence[Mapping[str, Any]], kind: str, name: str | None = None, namespace: str | None = None
) -> list[dict[str, Any]]:
    return [
        dict(d)
        for d in docs
        if d["kind"] == kind
        and (name is None or d["metadata"]["name"] == name)
        and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]


def _one(docs: Sequence[Mapping[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = _find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def _rules(role: Mapping[str, Any]) -> list[tuple[str, str, frozenset[str]]]:
    """(apiGroup, resource, verbs) for every resource a role names."""
    return [
        (group, resource, frozenset(rule["verbs"]))
        for rule in role.get("rules") or []
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
    ]


def _kopf_rules(docs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, frozenset[str]]]:
    return [
        r
        for role in _find(docs, "ClusterRole") + _find(docs, "Role")
        for r in _rules(role)
        if r[0] == "kopf.dev"
    ]


def _namespaced_bindings(
    docs: Sequence[Mapping[str, Any]], full: str, namespace: str
) -> list[Mapping[str, Any]]:
    """The RoleBindings of the main ClusterRole, once the claims Role is checked: the operator
    may read only the key of its claims, in its own namespace (and make it)."""
    role = _one(docs, "Role", f"{full}-claims")
    assert role["metadata"]["namespace"] == namespace
    assert [(g, r, v) for g, r, v in _rules(role)] == [
        ("", "secrets", frozenset({"get"})),
        ("", "secrets", frozenset({"create"})),
    ]
    assert role["rules"][0]["resourceNames"] == [KEY_SECRET]
    binding = _one(docs, "RoleBinding", f"{full}-claims")
    assert binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": f"{full}-claims",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": full, "namespace": namespace}]
    return [b for b in _find(docs, "RoleBinding") if b["metadata"]["name"] != f"{full}-claims"]


REPRESENTATIVE: dict[str, Any] = {
    "replicaCount": 2,
    "watch": {"allNamespaces": False, "namespaces": ["team-a", "team-b"]},
    "clusters": {
        "prod": {
            "coordinatorUrl": "https://druid-coordinator.druid:8281",
            "authenticator": "ldap",
            "authorizer": "ldapauth",
            "adminSecret": {"name": "druid-admin", "usernameKey": "user", "passwordKey": "pass"},
            "caSecret": {"name": "druid-ca", "key": "ca.crt"},
            "allowedNamespaces": ["team-a"],
            "privilegedNamespaces": ["team-a", "platform-*"],
            "adoptionNamespaces": ["team-a"],
            "protected": {"users": ["admin", "druid_system", "ops"], "roles": ["admin"]},
            "resyncSeconds": 120,
            "timeoutSeconds": 5,
        },
        "staging": {
            "coordinatorUrl": "http://druid-coordinator.staging:8081",
            "adminSecret": {"name": "staging-admin"},
        },
    },
    "pivots": {
        "main": {
            "url": "https://pivot.imply:9095",
            "tokenSecret": {"name": "pivot-token", "key": "api-token"},
            "caSecret": {"name": "pivot-ca", "key": "bundle.pem"},
            "allowedNamespaces": ["team-*"],
            "adoptionNamespaces": ["team-b"],
        },
        # Empty delegation lists are the default: not rendered at all.
        "secondary": {
            "url": "http://pivot.secondary:9095",
            "tokenSecret": {"name": "secondary-token"},
            "adoptionNamespaces": [],
        },
    },
    "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    "metrics": {"enabled": True, "port": 9191, "serviceMonitor": {"enabled": True, "interval": "15s"}},
    "health": {"port": 8181},
    "verbose": True,
}


def _ca_mounts(deployment: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Absolute file path in the container -> (Secret name, key) for every Secret volume item."""
    spec = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    out = {}
    for mount in operator_container(deployment)["volumeMounts"]:
        source = volumes[mount["name"]].get("secret")
        if source is None:
            continue
        assert mount.get("readOnly") is True
        for item in source.get("items") or []:
            out[f"{mount['mountPath'].rstrip('/')}/{item['path']}"] = (source["secretName"], item["key"])
    return out


def _check_pod_hardening(deployment: Mapping[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    container = operator_container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    # A read-only root needs a writable /tmp (Python and aiohttp may use it).
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    # Requests for scheduling, a memory limit against leaks.
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]


def _check_probes_match_args(deployment: Mapping[str, Any]) -> None:
    container = operator_container(deployment)
    args = container["args"]
    health = next(a.split("=", 1)[1] for a in args if a.startswith("--health="))
    url = urllib.parse.urlsplit(health)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == url.path
        assert ports[get["port"]] == url.port
        assert container[probe]["timeoutSeconds"] >= 1
    metrics = [a for a in args if a.startswith("--metrics-port=")]
    if metrics:
        assert ports["metrics"] == int(metrics[0].split("=", 1)[1])


# --- lint and template ---------------------------------------------------------------------------------


def test_lint_default_and_representative_values(helm: Helm, values_file: ValuesFile) -> None:
    for extra in ([], ["-f", str(values_file(REPRESENTATIVE))]):
        result = helm.run("lint", "--strict", str(CHART), *extra, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
        assert "[ERROR]" not in result.stdout and "[WARNING]" not in result.stdout


def test_template_default_values(helm: Helm, tmp_path: Path) -> None:
    docs = _render(helm, None, tmp_path)
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    full = f"ops-{CHART_NAME}"
    assert kinds == sorted(
        [
            ("ServiceAccount", full),
            ("ConfigMap", f"{full}-config"),
            ("ClusterRole", full),
            ("ClusterRole", f"{full}-resources"),
            ("ClusterRole", f"{full}-discovery"),
            ("ClusterRole", f"{full}-view"),
            ("ClusterRole", f"{full}-edit"),
            ("ClusterRoleBinding", full),
            ("ClusterRoleBinding", f"{full}-resources"),
            ("ClusterRoleBinding", f"{full}-discovery"),
            ("Role", f"{full}-claims"),
            ("RoleBinding", f"{full}-claims"),
            ("Service", f"{full}-metrics"),
            ("Deployment", full),
        ]
    )
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == "ops"
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == CHART_NAME
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == "ops-system"
    deployment = _one(docs, "Deployment")
    container = operator_container(deployment)
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert container["image"] == f"ghcr.io/druid-access-operator/druid-access-operator:{chart['appVersion']}"
    assert "command" not in container  # the image's ENTRYPOINT (druid-access) runs
    assert container["args"] == [
        "run",
        "--config=/etc/druid-access/config.yaml",
        "--all-namespaces",
        "--health=http://0.0.0.0:8080/healthz",
        "--metrics-port=9090",
    ]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == full
    _check_pod_hardening(deployment)
    _check_probes_match_args(deployment)
    config = parse(yaml.safe_load(_one(docs, "ConfigMap")["data"]["config.yaml"]))
    assert config.namespace == "ops-system"
    assert config.clusters == {} and config.pivots == {}
    # Cluster-wide by default: the main role bound by a ClusterRoleBinding, no peering at all.
    binding = _one(docs, "ClusterRoleBinding", full)
    assert binding["roleRef"]["name"] == full
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": full, "namespace": "ops-system"}]
    assert _namespaced_bindings(docs, full, "ops-system") == []
    assert _kopf_rules(docs) == []
    assert not any(a.startswith("--peering") for a in container["args"])


def test_template_representative_values(helm: Helm, tmp_path: Path) -> None:
    docs = _render(helm, REPRESENTATIVE, tmp_path, release="acme", namespace="druid-ops")
    full = f"acme-{CHART_NAME}"
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "KopfPeering",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]
    )
    deployment = _one(docs, "Deployment")
    container = operator_container(deployment)
    assert deployment["spec"]["replicas"] == 2
    assert container["args"] == [
        "run",
        "--config=/etc/druid-access/config.yaml",
        "--namespace=team-a",
        "--namespace=team-b",
        "--health=http://0.0.0.0:8181/healthz",
        "--metrics-port=9191",
        f"--peering={full}",
        "--verbose",
    ]
    _check_pod_hardening(deployment)
    _check_probes_match_args(deployment)

    # The rendered configuration is one the operator accepts, naming what the values said.
    text = _one(docs, "ConfigMap")["data"]["config.yaml"]
    config = parse(yaml.safe_load(text))
    assert config.namespace == "druid-ops"
    prod, staging, main = config.clusters["prod"], config.clusters["staging"], config.pivots["main"]
    assert prod.coordinator_url == "https://druid-coordinator.druid:8281"
    assert (prod.authenticator, prod.authorizer) == ("ldap", "ldapauth")
    assert (prod.admin_secret.name, prod.admin_secret.username_key, prod.admin_secret.password_key) == (
        "druid-admin",
        "user",
        "pass",
    )
    assert prod.allowed_namespaces == ("team-a",)
    assert prod.protected.users == ("admin", "druid_system", "ops")
    assert (prod.resync_seconds, prod.timeout_seconds) == (120, 5)
    assert staging.ca_bundle is None
    assert main.token_secret.key == "api-token"
    assert main.allowed_namespaces == ("team-*",)
    assert "caSecret" not in text  # a chart-only key: the operator would refuse it
    # The delegation lists, rendered where set and meaning what the values said.
    assert prod.privileged_namespaces == ("team-a", "platform-*")
    assert prod.adoption_namespaces == ("team-a",)
    assert prod.privileged("platform-security") and not prod.privileged("team-b")
    assert prod.allows_adoption("team-a") and not prod.allows_adoption("team-b")
    assert main.adoption_namespaces == ("team-b",)
    # Left out (staging) or empty (secondary): not in the file, the operator's default of none.
    raw = yaml.safe_load(text)
    assert {"privilegedNamespaces", "adoptionNamespaces"} <= raw["clusters"]["prod"].keys()
    assert "adoptionNamespaces" in raw["pivots"]["main"]
    assert not {"privilegedNamespaces", "adoptionNamespaces"} & raw["clusters"]["staging"].keys()
    assert "adoptionNamespaces" not in raw["pivots"]["secondary"]
    secondary = config.pivots["secondary"]
    assert staging.privileged_namespaces == staging.adoption_namespaces == ()
    assert secondary.adoption_namespaces == ()
    assert not staging.privileged("team-a") and not secondary.allows_adoption("team-a")

    # Each CA bundle path is a file the Deployment mounts read-only from the named Secret key.
    mounts = _ca_mounts(deployment)
    assert mounts[str(prod.ca_bundle)] == ("druid-ca", "ca.crt")
    assert mounts[str(main.ca_bundle)] == ("pivot-ca", "bundle.pem")
    assert len(mounts) == 2
    config_mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert config_mount["readOnly"] is True
    assert f"{config_mount['mountPath']}/config.yaml" == "/etc/druid-access/config.yaml"

    # Namespaced RBAC: RoleBindings in each watched namespace and the release's, no
    # ClusterRoleBinding for the main role (Secrets, Events); discovery and the four kinds are
    # cluster-wide (the kinds so that a namespace's deletion cannot strand their finalizers).
    bindings = _namespaced_bindings(docs, full, "druid-ops")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["druid-ops", "team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": full,
        }
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": full, "namespace": "druid-ops"}]
    cluster_bindings = _find(docs, "ClusterRoleBinding")
    assert sorted(b["roleRef"]["name"] for b in cluster_bindings) == [
        f"{full}-discovery",
        f"{full}-resources",
    ]
    resources = _one(docs, "ClusterRole", f"{full}-resources")
    assert {g for g, _, _ in _rules(resources)} == {"druidaccess.io"}
    assert all(verbs <= {"get", "list", "watch", "patch"} for _, _, verbs in _rules(resources))
    main = _one(docs, "ClusterRole", full)
    assert "druidaccess.io" not in {g for g, _, _ in _rules(main)}
    discovery = _one(docs, "ClusterRole", f"{full}-discovery")
    assert {(g, r) for g, r, _ in _rules(discovery)} == {
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("", "namespaces"),
    }
    assert all(verbs <= {"get", "list", "watch"} for _, _, verbs in _rules(discovery))

    # Peering: one KopfPeering per watched namespace, and the verbs kopf uses on them.
    peerings = _find(docs, "KopfPeering")
    assert sorted((p["metadata"]["name"], p["metadata"]["namespace"]) for p in peerings) == [
        (full, "team-a"),
        (full, "team-b"),
    ]
    assert all(p["apiVersion"] == "kopf.dev/v1" for p in peerings)
    kopf_rules = _kopf_rules(docs)
    assert [(g, r) for g, r, _ in kopf_rules] == [("kopf.dev", "kopfpeerings")]
    assert {"get", "list", "watch", "patch"} <= kopf_rules[0][2]

    pdb = _one(docs, "PodDisruptionBudget")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    service = _one(docs, "Service")
    assert service["spec"]["selector"] == selector
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9191, "targetPort": "metrics"}]
    monitor = _one(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "interval": "15s"}]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_cluster_scope_rbac_and_peering_with_all_namespaces(helm: Helm, tmp_path: Path) -> None:
    docs = _render(helm, {"replicaCount": 3, "watch": {"allNamespaces": True}}, tmp_path)
    full = f"ops-{CHART_NAME}"
    assert _namespaced_bindings(docs, full, "ops-system") == []
    assert sorted(b["roleRef"]["name"] for b in _find(docs, "ClusterRoleBinding")) == [
        full,
        f"{full}-discovery",
        f"{full}-resources",
    ]
    (peering,) = _find(docs, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == full and "namespace" not in peering["metadata"]
    assert not _find(docs, "KopfPeering")
    # Cluster-wide peering lives in the discovery role (bound cluster-wide), not the main one.
    assert [r[:2] for r in _rules(_one(docs, "ClusterRole", f"{full}-discovery")) if r[0] == "kopf.dev"] == [
        ("kopf.dev", "clusterkopfpeerings")
    ]
    assert not [r for r in _rules(_one(docs, "ClusterRole", full)) if r[0] == "kopf.dev"]
    args = operator_container(_one(docs, "Deployment"))["args"]
    assert "--all-namespaces" in args and f"--peering={full}" in args
    assert not any(a.startswith("--namespace") for a in args)


@pytest.mark.parametrize("all_namespaces", [True, False])
def test_no_peering_with_one_replica(helm: Helm, tmp_path: Path, all_namespaces: bool) -> None:
    values: dict[str, Any] = {
        "replicaCount": 1,
        "watch": {"allNamespaces": all_namespaces, "namespaces": ["x"]},
    }
    docs = _render(helm, values, tmp_path)
    assert not _find(docs, "KopfPeering") and not _find(docs, "ClusterKopfPeering")
    assert _kopf_rules(docs) == []
    assert not any(a.startswith("--peering") for a in operator_container(_one(docs, "Deployment"))["args"])


def test_config_checksum_rolls_pods_when_clusters_change(helm: Helm, tmp_path: Path) -> None:
    def rendered(values: Mapping[str, Any]) -> tuple[str, str]:
        docs = _render(helm, values, tmp_path)
        annotation = _one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]
        return annotation, _one(docs, "ConfigMap")["data"]["config.yaml"]

    one = {"clusters": {"a": {"coordinatorUrl": "http://a:8081", "adminSecret": {"name": "s"}}}}
    two = {"clusters": {"a": {"coordinatorUrl": "http://a:8082", "adminSecret": {"name": "s"}}}}
    sum_one, text_one = rendered(one)
    sum_two, text_two = rendered(two)
    assert text_one != text_two
    assert sum_one != sum_two
    assert rendered(one)[0] == sum_one  # deterministic
    assert rendered({**one, "replicaCount": 2, "verbose": True})[0] == sum_one  # only the config counts
    # It is the digest of exactly what the ConfigMap holds.
    assert sum_one == hashlib.sha256(text_one.rstrip("\n").encode()).hexdigest()


def test_ca_secret_without_key_renders_a_consistent_mount(helm: Helm, tmp_path: Path) -> None:
    """``caSecret: {name: x}`` (the schema allows leaving out ``key``) must not render a broken pod."""
    values = {
        "clusters": {
            "a": {
                "coordinatorUrl": "https://a:8281",
                "adminSecret": {"name": "s"},
                "caSecret": {"name": "ca"},
            }
        }
    }
    path = tmp_path / "ca-no-key.yaml"
    path.write_text(yaml.safe_dump(values))
    result = helm.run("template", "ops", str(CHART), "-f", str(path), check=False)
    if result.returncode != 0:  # acceptable: the schema requires the key, naming it
        assert "caSecret" in result.stderr and "key" in result.stderr, result.stderr
        return
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    config = parse(yaml.safe_load(_one(docs, "ConfigMap")["data"]["config.yaml"]))
    bundle = str(config.clusters["a"].ca_bundle)
    mounts = _ca_mounts(_one(docs, "Deployment"))
    assert bundle in mounts, f"caBundle {bundle!r} is not a mounted file (mounts: {mounts})"
    secret_name, key = mounts[bundle]
    assert secret_name == "ca" and key


KINDS = ("druidusers", "druidroles", "druidgroupmappings", "druidconnections")
READ = frozenset({"get", "list", "watch"})
WRITE = frozenset({"create", "update", "patch", "delete", "deletecollection"})
AGGREGATE_VIEW = "rbac.authorization.k8s.io/aggregate-to-view"
AGGREGATE_EDIT = "rbac.authorization.k8s.io/aggregate-to-edit"
AGGREGATE_ADMIN = "rbac.authorization.k8s.io/aggregate-to-admin"
AGGREGATE = (AGGREGATE_VIEW, AGGREGATE_EDIT, AGGREGATE_ADMIN)


def _verbs(role: Mapping[str, Any]) -> dict[tuple[str, str], frozenset[str]]:
    """(apiGroup, resource) -> every verb the role grants on it."""
    out: dict[tuple[str, str], frozenset[str]] = {}
    for group, resource, verbs in _rules(role):
        out[group, resource] = out.get((group, resource), frozenset()) | verbs
    return out


def test_user_roles_by_default(helm: Helm, tmp_path: Path) -> None:
    """<fullname>-view and -edit for the people writing the four kinds, aggregated into the
    built-in view/edit/admin by their labels (the aggregation itself, by kube-controller-manager,
    is shown on the control plane by test_user_roles_aggregate_into_the_built_in_roles)."""
    docs = _render(helm, None, tmp_path)
    full = f"ops-{CHART_NAME}"
    view, edit = _one(docs, "ClusterRole", f"{full}-view"), _one(docs, "ClusterRole", f"{full}-edit")
    for role in (view, edit):
        assert "namespace" not in role["metadata"]
        assert role["metadata"]["labels"]["app.kubernetes.io/instance"] == "ops"
    assert {k: v for k, v in view["metadata"]["labels"].items() if k in AGGREGATE} == {AGGREGATE_VIEW: "true"}
    assert {k: v for k, v in edit["metadata"]["labels"].items() if k in AGGREGATE} == {
        AGGREGATE_EDIT: "true",
        AGGREGATE_ADMIN: "true",
    }
    objects = {(GROUP, kind) for kind in KINDS}
    status = {(GROUP, f"{kind}/status") for kind in KINDS}
    # view: read the objects and their status, nothing else.
    assert _verbs(view) == dict.fromkeys(objects | status, READ)
    # edit: view, plus writing the objects but never their status (status.owned is the
    # operator's record of what it created); no Secrets, no other group, no wildcard.
    assert _verbs(edit) == {**dict.fromkeys(objects, READ | WRITE), **dict.fromkeys(status, READ)}
    for role in (view, edit):
        for rule in role["rules"]:
            assert "*" not in [*rule["apiGroups"], *rule["resources"], *rule["verbs"]], rule
            assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
    # Nothing binds them: they are for the cluster's administrators to bind (or aggregate).
    bindings = _find(docs, "ClusterRoleBinding") + _find(docs, "RoleBinding")
    assert not [b for b in bindings if b["roleRef"]["name"] in (f"{full}-view", f"{full}-edit")]


def test_user_roles_aggregation_and_creation_can_be_turned_off(helm: Helm, tmp_path: Path) -> None:
    full = f"ops-{CHART_NAME}"
    default = _render(helm, None, tmp_path)
    unlabelled = _render(helm, {"userRoles": {"aggregate": False}}, tmp_path)
    for suffix in ("view", "edit"):
        role = _one(unlabelled, "ClusterRole", f"{full}-{suffix}")
        assert not set(role["metadata"]["labels"]) & set(AGGREGATE), role["metadata"]["labels"]
        assert role["rules"] == _one(default, "ClusterRole", f"{full}-{suffix}")["rules"]
    absent = _render(helm, {"userRoles": {"create": False}}, tmp_path)
    names = {d["metadata"]["name"] for d in _find(absent, "ClusterRole")}
    assert names == {full, f"{full}-discovery", f"{full}-resources"}
    assert not [d for d in absent if set(d["metadata"]["labels"]) & set(AGGREGATE)]
    # Independent of the operator's own RBAC.
    only_users = _render(helm, {"rbac": {"create": False}}, tmp_path)
    assert {d["metadata"]["name"] for d in _find(only_users, "ClusterRole")} == {
        f"{full}-view",
        f"{full}-edit",
    }


def test_schema_covers_exactly_the_operator_config(helm: Helm) -> None:
    """values.schema.json and druid_access.config agree key for key (caSecret becomes caBundle)."""
    schema = json.loads((CHART / "values.schema.json").read_text())

    def aliases(model: Any) -> set[str]:
        return {f.alias or name for name, f in model.model_fields.items()}

    for key, model, secret_key, secret_model in (
        ("clusters", ClusterConfig, "adminSecret", SecretKeys),
        ("pivots", PivotConfig, "tokenSecret", TokenSecret),
    ):
        target = schema["properties"][key]["additionalProperties"]
        assert target["additionalProperties"] is False
        assert set(target["properties"]) - {"caSecret"} | {"caBundle"} == aliases(model), key
        assert set(target["properties"][secret_key]["properties"]) == aliases(secret_model)
        assert set(target["properties"]["protected"]["properties"]) == aliases(ProtectedPrincipals)
        required = {f.alias or n for n, f in model.model_fields.items() if f.is_required()}
        assert set(target["required"]) == required


# --- schema --------------------------------------------------------------------------------------------


INVALID = [
    pytest.param({"replicaCont": 2}, "replicaCont", id="typo-top-level"),
    pytest.param(
        {"clusters": {"a": {"coordinatorUrl": "http://a:8081", "adminSecert": {"name": "s"}}}},
        "adminSecert",
        id="typo-in-cluster",
    ),
    pytest.param({"watch": {"allNamespace": False}}, "allNamespace", id="typo-nested"),
    pytest.param({"replicaCount": "two"}, "/replicaCount", id="wrong-type-int"),
    pytest.param({"watch": {"namespaces": "team-a"}}, "/watch/namespaces", id="wrong-type-list"),
    pytest.param({"verbose": "yes"}, "/verbose", id="wrong-type-bool"),
    pytest.param(
        {"clusters": {"a": {"coordinatorUrl": "druid-coordinator:8081", "adminSecret": {"name": "s"}}}},
        "/clusters/a/coordinatorUrl",
        id="bad-url",
    ),
    pytest.param(
        {"pivots": {"p": {"url": "ftp://pivot", "tokenSecret": {"name": "t"}}}},
        "/pivots/p/url",
        id="bad-pivot-url",
    ),
    pytest.param({"replicaCount": 0}, "/replicaCount", id="replicas-zero"),
    pytest.param(
        {"watch": {"allNamespaces": False}}, "/watch/namespaces", id="namespaced-without-namespaces"
    ),
    pytest.param(
        {"clusters": {"a": {"coordinatorUrl": "http://a"}}}, "adminSecret", id="missing-admin-secret"
    ),
    pytest.param(
        {"clusters": {"Bad_Name": {"coordinatorUrl": "http://a", "adminSecret": {"name": "s"}}}},
        "Bad_Name",
        id="bad-target-name",
    ),
    pytest.param(
        {
            "clusters": {
                "a": {
                    "coordinatorUrl": "http://a",
                    "adminSecret": {"name": "s"},
                    "privilegedNamespaces": "ops",
                }
            }
        },
        "/clusters/a/privilegedNamespaces",
        id="wrong-type-privileged-namespaces",
    ),
    pytest.param(
        {
            "clusters": {
                "a": {"coordinatorUrl": "http://a", "adminSecret": {"name": "s"}, "adoptionNamespaces": [1]}
            }
        },
        "/clusters/a/adoptionNamespaces",
        id="wrong-type-cluster-adoption-namespaces",
    ),
    pytest.param(
        {
            "clusters": {
                "a": {
                    "coordinatorUrl": "http://a",
                    "adminSecret": {"name": "s"},
                    "privilegedNamespaces": [""],
                }
            }
        },
        "/clusters/a/privilegedNamespaces",
        id="empty-privileged-namespace",
    ),
    pytest.param(
        {"pivots": {"p": {"url": "http://p", "tokenSecret": {"name": "t"}, "adoptionNamespaces": "ops"}}},
        "/pivots/p/adoptionNamespaces",
        id="wrong-type-pivot-adoption-namespaces",
    ),
    pytest.param(
        {"pivots": {"p": {"url": "http://p", "tokenSecret": {"name": "t"}, "privilegedNamespaces": ["x"]}}},
        "privilegedNamespaces",
        id="privileged-namespaces-on-a-pivot",
    ),
    pytest.param({"userRoles": {"aggregate": "yes"}}, "/userRoles/aggregate", id="wrong-type-user-roles"),
    pytest.param({"userRoles": {"create": "false"}}, "/userRoles/create", id="string-user-roles-create"),
    pytest.param({"userRoles": {"aggregated": False}}, "aggregated", id="typo-user-roles"),
]


DASHBOARD_AND_RULES = {"grafanaDashboard": {"enabled": True}, "prometheusRule": {"enabled": True}}
_METRIC = re.compile(r"\bdruid_access_[a-z_]+")


def _dashboard_and_rules(helm: Helm, tmp: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    docs = _render(helm, DASHBOARD_AND_RULES, tmp)
    config_map = _one(docs, "ConfigMap", f"ops-{CHART_NAME}-dashboard")
    return (
        config_map,
        json.loads(config_map["data"]["druid-access-operator.json"]),
        _one(docs, "PrometheusRule"),
    )


def _expressions(dashboard: Mapping[str, Any], rules: Mapping[str, Any]) -> list[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets") or []]
    return exprs + [rule["expr"] for group in rules["spec"]["groups"] for rule in group["rules"]]


def test_dashboard_and_alerts_are_off_by_default_and_render_when_asked(helm: Helm, tmp_path: Path) -> None:
    kinds = {d["kind"] for d in _render(helm, None, tmp_path)}
    assert "PrometheusRule" not in kinds
    config_map, dashboard, rules = _dashboard_and_rules(helm, tmp_path)
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"  # the sidecar's label
    assert config_map["metadata"]["namespace"] == "ops-system"
    assert dashboard["uid"] == "druid-access-operator"
    titles = {panel["title"] for panel in dashboard["panels"]}
    for wanted in (
        "Objects by Ready reason",
        "Remote writes",
        "Drift detected",
        "Reconcile latency",
        "Target health",
    ):
        assert wanted in titles
    alerts = {rule["alert"]: rule for group in rules["spec"]["groups"] for rule in group["rules"]}
    assert set(alerts) == {
        "DruidAccessTargetUnreachable",
        "DruidAccessObjectsNotReady",
        "DruidAccessDriftDetected",
    }
    assert alerts["DruidAccessTargetUnreachable"]["for"] == "5m"
    assert alerts["DruidAccessObjectsNotReady"]["for"] == "15m"
    assert "{{ $labels.target }}" in alerts["DruidAccessTargetUnreachable"]["annotations"]["summary"]
    # Where Grafana's sidecar looks, and the alert thresholds, are values.
    other = {
        "grafanaDashboard": {"enabled": True, "namespace": "monitoring", "labels": {"dashboards": "druid"}},
        "prometheusRule": {"enabled": True, "notReadyFor": "1h", "labels": {"release": "kps"}},
    }
    docs = _render(helm, other, tmp_path)
    config_map = _one(docs, "ConfigMap", f"ops-{CHART_NAME}-dashboard")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["dashboards"] == "druid"
    rule = _one(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert [
        r["for"] for r in rule["spec"]["groups"][0]["rules"] if r["alert"] == "DruidAccessObjectsNotReady"
    ] == ["1h"]


@pytest.mark.parametrize(("values", "named"), INVALID)
def test_invalid_values_are_refused_naming_the_key(
    helm: Helm, values_file: ValuesFile, values: Mapping[str, Any], named: str
) -> None:
    result = helm.run("template", "ops", str(CHART), "-f", str(values_file(values)), check=False)
    assert result.returncode != 0, f"accepted: {values}"
    assert "don't meet the specifications of the schema" in result.stderr, result.stderr
    assert named in result.stderr, result.stderr
    assert result.stdout.strip() == ""


# --- drift ---------------------------------------------------------------------------------------------


def test_chart_crds_are_the_repository_crds() -> None:
    chart_crds = sorted(p.name for p in (CHART / "crds").iterdir())
    assert chart_crds == sorted([*KINDS_CRDS, "kopf.dev_peerings.yaml"])
    assert sorted(p.name for p in (ROOT / "crds").glob("*.yaml")) == sorted(KINDS_CRDS)
    for name in KINDS_CRDS:
        assert (CHART / "crds" / name).read_bytes() == (ROOT / "crds" / name).read_bytes(), (
            f"helm/druid-access-operator/crds/{name} differs from crds/{name}: run `make manifests`"
        )
    peering = [d for d in yaml.safe_load_all((CHART / "crds" / "kopf.dev_peerings.yaml").read_text()) if d]
    assert sorted((d["metadata"]["name"], d["spec"]["scope"]) for d in peering) == [
        ("clusterkopfpeerings.kopf.dev", "Cluster"),
        ("kopfpeerings.kopf.dev", "Namespaced"),
    ]


def _manifests_recipe() -> list[str]:
    lines = MAKEFILE.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^manifests:", line))
    commands: list[str] = []
    pending = ""
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        text = line.strip()
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        commands.append(pending + text)
        pending = ""
    return commands


def test_deploy_manifests_are_rendered_from_the_chart(helm: Helm, tmp_path: Path) -> None:
    """deploy/*.yaml is exactly what the Makefile's `manifests` target renders now."""
    variables = make_vars()
    commands = _manifests_recipe()
    assert any(c.startswith("cp crds/*.yaml $(CHART)/crds/") for c in commands)  # checked above
    rendered = {}
    for command in commands:
        if command.startswith("cp "):
            continue
        match = re.search(r">\s*deploy/(\S+)\s*$", command)
        assert match and "$(HELM) template" in command, f"unexpected recipe line: {command}"
        target = tmp_path / match.group(1)
        shell = command[: match.start()] + f"> {shlex.quote(str(target))}"
        shell = shell.replace("$(HELM)", shlex.quote(str(helm.binary))).replace(
            "$(CHART)", variables["CHART"]
        )
        assert "$(" not in shell, shell
        subprocess.run(
            ["bash", "-eu", "-o", "pipefail", "-c", shell], cwd=ROOT, env=helm.env(), check=True, timeout=60
        )
        rendered[match.group(1)] = target
    assert sorted(rendered) == ["druid-access-operator.yaml", "rbac.yaml"]
    for name, path in rendered.items():
        assert path.read_text() == (ROOT / "deploy" / name).read_text(), (
            f"deploy/{name} is stale: run `make manifests`"
        )
    # The suite's operator identity (controlplane.OPERATOR_*) is the one deploy/rbac.yaml binds.
    sa = next(
        d
        for d in yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text())
        if d and d["kind"] == "ServiceAccount"
    )
    assert (sa["metadata"]["namespace"], sa["metadata"]["name"]) == ("druid-access", "druid-access-operator")


# --- on the control plane ------------------------------------------------------------------------------


def _ensure_namespace(cp: ControlPlane, name: str) -> None:
    if cp.kubectl("get", "namespace", name, check=False).returncode != 0:
        cp.kubectl("create", "namespace", name)


def _release_values(fakes: FakesInThread, namespaces: Sequence[str], replicas: int) -> dict[str, Any]:
    return {
        "replicaCount": replicas,
        "watch": {"allNamespaces": False, "namespaces": list(namespaces)},
        "clusters": {
            "default": {
                "coordinatorUrl": fakes.coordinator.url,
                "adminSecret": {"name": ADMIN_SECRET},
                "resyncSeconds": 5,
                "timeoutSeconds": 5,
            }
        },
        "pivots": {
            "default": {
                "url": fakes.pivot.url,
                "tokenSecret": {"name": PIVOT_SECRET},
                "resyncSeconds": 5,
                "timeoutSeconds": 5,
            }
        },
    }


@pytest.fixture(scope="module")
def fakes() -> Iterator[FakesInThread]:
    with FakesInThread(admin_password=ADMIN_PW, pivot_token=TOKEN, credential_iterations=1000) as f:
        yield f


@pytest.fixture(scope="module")
def cluster_ready(controlplane: ControlPlane) -> ControlPlane:
    """The release namespace with the credential Secrets (as NOTES.txt asks) and the watched namespaces."""
    for ns in (RELEASE_NS, WATCH_NS, HA_NS):
        _ensure_namespace(controlplane, ns)
    apply(
        controlplane,
        [
            secret(ADMIN_SECRET, {"username": "admin", "password": ADMIN_PW}, RELEASE_NS),
            secret(PIVOT_SECRET, {"token": TOKEN}, RELEASE_NS),
        ],
    )
    return controlplane


@pytest.fixture(scope="module")
def release(
    helm: Helm, cluster_ready: ControlPlane, fakes: FakesInThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    cp = cluster_ready
    rel = install_release(
        helm,
        cp,
        RELEASE,
        _release_values(fakes, [WATCH_NS], 1),
        tmp_path_factory.mktemp("release"),
        namespace=RELEASE_NS,
    )
    yield rel
    helm.run(
        "uninstall",
        RELEASE,
        "-n",
        RELEASE_NS,
        "--ignore-not-found",
        kubeconfig=cp.admin_kubeconfig,
        check=False,
    )


def _can(cp: ControlPlane, kubeconfig: Path, verb: str, resource: str, namespace: str | None) -> bool:
    # kubectl reads "kind/status" as an object named "status": ask for the subresource instead.
    resource, slash, subresource = resource.partition("/")
    args = ["auth", "can-i", verb, resource] + (["-n", namespace] if namespace else [])
    args += [f"--subresource={subresource}"] if slash else []
    result = cp.kubectl(*args, kubeconfig=kubeconfig, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


def key(doc: Mapping[str, Any]) -> tuple[str, str | None, str]:
    return doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]


def _manifest(helm: Helm, cp: ControlPlane, rel: Release) -> list[dict[str, Any]]:
    out = helm.run("get", "manifest", rel.name, "-n", rel.namespace, kubeconfig=cp.admin_kubeconfig).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_install_creates_the_rendered_objects(
    helm: Helm, release: Release, controlplane: ControlPlane, tmp_path: Path
) -> None:
    cp = controlplane
    assert f"is installed in namespace {RELEASE_NS}" in release.install_output  # NOTES.txt
    assert f"kubectl -n {RELEASE_NS} create secret generic {ADMIN_SECRET}" in release.install_output
    status = json.loads(
        helm.run("status", RELEASE, "-n", RELEASE_NS, "-o", "json", kubeconfig=cp.admin_kubeconfig).stdout
    )
    assert status["info"]["status"] == "deployed"

    manifest = _manifest(helm, cp, release)
    # What helm applied is what `helm template` renders for the same values.
    rendered = _render(helm, release.values, tmp_path, release=RELEASE, namespace=RELEASE_NS)
    assert sorted(map(key, manifest)) == sorted(map(key, rendered))
    full = release.fullname
    assert sorted(map(key, manifest)) == sorted(
        [
            ("ServiceAccount", RELEASE_NS, full),
            ("ConfigMap", RELEASE_NS, f"{full}-config"),
            ("ClusterRole", None, full),
            ("ClusterRole", None, f"{full}-resources"),
            ("ClusterRole", None, f"{full}-discovery"),
            ("ClusterRole", None, f"{full}-view"),
            ("ClusterRole", None, f"{full}-edit"),
            ("ClusterRoleBinding", None, f"{full}-resources"),
            ("ClusterRoleBinding", None, f"{full}-discovery"),
            ("Role", RELEASE_NS, f"{full}-claims"),
            ("RoleBinding", RELEASE_NS, f"{full}-claims"),
            ("RoleBinding", RELEASE_NS, full),
            ("RoleBinding", WATCH_NS, full),
            ("Service", RELEASE_NS, f"{full}-metrics"),
            ("Deployment", RELEASE_NS, full),
        ]
    )
    for doc in manifest:
        kind, ns, name = key(doc)
        args = ["get", kind.lower(), name] + (["-n", ns] if ns else [])
        live = kubectl_json(cp, *args)
        assert doc["metadata"]["labels"].items() <= live["metadata"]["labels"].items()
        if kind == "ConfigMap":
            assert live["data"] == doc["data"]
        elif kind == "ClusterRole":
            assert live["rules"] == doc["rules"]
        elif kind in ("RoleBinding", "ClusterRoleBinding"):
            assert (live["roleRef"], live["subjects"]) == (doc["roleRef"], doc["subjects"])
        elif kind == "Deployment":
            want, got = operator_container(doc), operator_container(live)
            assert got["args"] == want["args"]
            assert got["image"] == want["image"]
            assert got["securityContext"] == want["securityContext"]
            assert (
                live["spec"]["template"]["metadata"]["annotations"]
                == doc["spec"]["template"]["metadata"]["annotations"]
            )
            assert live["spec"]["template"]["spec"]["serviceAccountName"] == full
        elif kind == "Service":
            assert live["spec"]["selector"] == doc["spec"]["selector"]
    # The installed config points at this module's fakes and names the release namespace.
    cm = kubectl_json(cp, "get", "configmap", f"{full}-config", "-n", RELEASE_NS)
    config = parse(yaml.safe_load(cm["data"]["config.yaml"]))
    assert config.namespace == RELEASE_NS
    assert (
        config.clusters["default"].coordinator_url == release.values["clusters"]["default"]["coordinatorUrl"]
    )
    # No pods: the control plane has no nodes. The Deployment exists and waits for them.
    deployment = kubectl_json(cp, "get", "deployment", full, "-n", RELEASE_NS)
    assert deployment["spec"]["replicas"] == 1

    # The RBAC works as intended for the chart's own ServiceAccount: namespaced, nothing more.
    kubeconfig = sa_kubeconfig(cp, full, RELEASE_NS, tmp_path / "sa.kubeconfig")
    allowed = [
        ("list", "druidusers.druidaccess.io", WATCH_NS),
        ("watch", "druidconnections.druidaccess.io", WATCH_NS),
        ("patch", "druidroles.druidaccess.io/status", WATCH_NS),
        ("create", "secrets", WATCH_NS),
        ("create", "events", WATCH_NS),
        ("get", "secrets", RELEASE_NS),
        ("list", "customresourcedefinitions.apiextensions.k8s.io", None),
        ("list", "namespaces", None),
        # Its own kinds everywhere, so that a namespace's deletion cannot strand their finalizers
        # (it watches only its namespaces all the same); Secrets and Events only where bound.
        ("list", "druidusers.druidaccess.io", "default"),
        ("patch", "druidusers.druidaccess.io", HA_NS),
    ]
    denied = [
        ("get", "secrets", "default"),
        ("list", "secrets", HA_NS),
        ("create", "events", "default"),
        ("update", "secrets", WATCH_NS),
        ("delete", "secrets", WATCH_NS),
        ("delete", "druidusers.druidaccess.io", WATCH_NS),
        ("create", "druidusers.druidaccess.io", WATCH_NS),
        ("list", "kopfpeerings.kopf.dev", WATCH_NS),  # one replica: no peering
        ("create", "customresourcedefinitions.apiextensions.k8s.io", None),
    ]
    assert [a for a in allowed if not _can(cp, kubeconfig, *a)] == []
    assert [d for d in denied if _can(cp, kubeconfig, *d)] == []


def test_install_refuses_invalid_values(
    helm: Helm, cluster_ready: ControlPlane, values_file: ValuesFile
) -> None:
    cp = cluster_ready
    path = values_file({"replicaCount": 0, "watch": {"allNamespaces": False}})
    result = helm.run(
        "install",
        "dao-bad",
        str(CHART),
        "-n",
        RELEASE_NS,
        "-f",
        str(path),
        kubeconfig=cp.admin_kubeconfig,
        check=False,
    )
    assert result.returncode != 0
    assert "/replicaCount" in result.stderr and "/watch/namespaces" in result.stderr, result.stderr
    status = helm.run("status", "dao-bad", "-n", RELEASE_NS, kubeconfig=cp.admin_kubeconfig, check=False)
    assert status.returncode != 0 and "not found" in status.stderr
    leftovers = cp.kubectl(
        "get", "all", "-A", "-l", "app.kubernetes.io/instance=dao-bad", "-o", "name"
    ).stdout
    assert leftovers.strip() == ""


# --- the user roles on the control plane ---------------------------------------------------------------

USERS_NS = "helm-users"
OTHER_NS = "helm-users-other"
EDITOR = "edna@users.test"
VIEWER = "vick@users.test"
AGG_NS = "helm-users-builtin"
AGG_EDITOR = "ada@users.test"

# (verb, resource, subresource, namespace); namespace None: across all namespaces.
Check = tuple[str, str, str, str | None]


def _access_as(cp: ControlPlane, user: str, checks: Sequence[Check]) -> dict[Check, bool]:
    """What the API server answers ``user`` for each check: one SelfSubjectAccessReview per
    check, created while impersonating the user (what ``kubectl auth can-i --as`` does), in
    one kubectl call."""
    reviews = []
    for verb, resource, subresource, namespace in checks:
        plural, _, group = resource.partition(".")
        attributes = {"verb": verb, "group": group, "resource": plural, "subresource": subresource}
        if namespace is not None:
            attributes["namespace"] = namespace
        reviews.append(
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            }
        )
    payload = json.dumps({"apiVersion": "v1", "kind": "List", "items": reviews})
    result = cp.kubectl("create", "-f", "-", "-o", "json", "--as", user, input=payload, timeout=60)
    # One JSON document per review, one after the other; each answer is matched to its check by
    # the attributes the server echoes, not by position.
    answers: dict[Check, bool] = {}
    for review in json_documents(result.stdout):
        attributes = review["spec"]["resourceAttributes"]
        resource = ".".join(filter(None, (attributes["resource"], attributes.get("group", ""))))
        check = (attributes["verb"], resource, attributes.get("subresource", ""), attributes.get("namespace"))
        answers[check] = bool(review["status"].get("allowed"))
    assert sorted(answers, key=str) == sorted(set(checks), key=str), result.stdout
    return answers


def _can_i_as(cp: ControlPlane, user: str, verb: str, resource: str, namespace: str, *extra: str) -> bool:
    result = cp.kubectl(
        "auth", "can-i", verb, resource, "-n", namespace, "--as", user, *extra, check=False, timeout=30
    )
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


def _user_binding(name: str, namespace: str, role: str, user: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


def test_user_roles_bound_in_a_namespace(release: Release, controlplane: ControlPlane) -> None:
    """The chart's edit and view ClusterRoles, bound to a user by a RoleBinding in one namespace
    (their aggregation into the built-in roles: the next test)."""
    cp = controlplane
    full = release.fullname
    aggregation = {}
    for suffix in ("view", "edit"):
        labels = kubectl_json(cp, "get", "clusterrole", f"{full}-{suffix}")["metadata"]["labels"]
        aggregation[suffix] = {k: v for k, v in labels.items() if k in AGGREGATE}
    assert aggregation == {
        "view": {AGGREGATE_VIEW: "true"},
        "edit": {AGGREGATE_EDIT: "true", AGGREGATE_ADMIN: "true"},
    }

    for ns in (USERS_NS, OTHER_NS):
        _ensure_namespace(cp, ns)
    bindings = [
        _user_binding("dao-test-edit", USERS_NS, f"{full}-edit", EDITOR),
        _user_binding("dao-test-view", USERS_NS, f"{full}-view", VIEWER),
    ]
    try:
        apply(cp, bindings)
        # The authorizer's cache sees new bindings after a moment.
        wait_for(
            lambda: (
                _can_i_as(cp, EDITOR, "create", f"druidusers.{GROUP}", USERS_NS)
                and _can_i_as(cp, VIEWER, "list", f"druidusers.{GROUP}", USERS_NS)
            ),
            timeout=30,
            what="the RoleBindings to take effect",
        )
        _check_editor(cp)
        _check_viewer(cp)
        # The same answers through `kubectl auth can-i` (the subresource flag included), and
        # the control for it: the operator's own role may write status where it is bound.
        operator = f"system:serviceaccount:{RELEASE_NS}:{full}"
        for kind in KINDS:
            resource = f"{kind}.{GROUP}"
            assert _can_i_as(cp, EDITOR, "delete", resource, USERS_NS)
            assert not _can_i_as(cp, EDITOR, "patch", resource, USERS_NS, "--subresource=status")
            assert _can_i_as(cp, operator, "patch", resource, WATCH_NS, "--subresource=status")
        assert not _can_i_as(cp, EDITOR, "get", "secrets", USERS_NS)
        assert not _can_i_as(cp, EDITOR, "list", f"druidusers.{GROUP}", OTHER_NS)
    finally:
        for binding in bindings:
            cp.kubectl(
                "delete",
                "rolebinding",
                binding["metadata"]["name"],
                "-n",
                USERS_NS,
                "--ignore-not-found",
                check=False,
            )
        for ns in (USERS_NS, OTHER_NS):
            cp.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


def test_user_roles_aggregate_into_the_built_in_roles(release: Release, controlplane: ControlPlane) -> None:
    """kube-controller-manager's aggregation copies the chart's rules into view, edit and admin,
    so a namespace's existing editors and viewers can use the four kinds with no new binding."""
    cp = controlplane
    kinds = set(KINDS)

    def granted(role: str) -> dict[str, set[str]]:
        rules = kubectl_json(cp, "get", "clusterrole", role).get("rules") or []
        out: dict[str, set[str]] = {}
        for rule in rules:
            if GROUP in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    out.setdefault(resource, set()).update(rule.get("verbs", []))
        return out

    wait_for(
        lambda: all(kinds <= set(granted(role)) for role in ("view", "edit", "admin")),
        timeout=30,
        what="the built-in roles to aggregate the chart's rules",
    )
    for role, expected in (("view", READ), ("edit", READ | WRITE), ("admin", READ | WRITE)):
        verbs = granted(role)
        assert all(verbs[kind] == set(expected) for kind in kinds), (role, verbs)
    # Bound as usual, the built-in edit role now lets a namespace's editor create the four kinds.
    _ensure_namespace(cp, AGG_NS)
    binding = _user_binding("dao-test-builtin-edit", AGG_NS, "edit", AGG_EDITOR)
    binding["roleRef"]["name"] = "edit"
    apply(cp, binding)
    try:
        wait_for(
            lambda: _can_i_as(cp, AGG_EDITOR, "create", f"druidusers.{GROUP}", AGG_NS),
            timeout=30,
            what="the built-in edit role to allow druidusers",
        )
        assert not _can_i_as(cp, AGG_EDITOR, "patch", f"druidusers.{GROUP}", AGG_NS, "--subresource=status")
    finally:
        cp.kubectl("delete", "namespace", AGG_NS, "--wait=false", check=False)


def _check_editor(cp: ControlPlane) -> None:
    allowed: list[Check] = []
    denied: list[Check] = []
    for kind in KINDS:
        resource = f"{kind}.{GROUP}"
        allowed += [(verb, resource, "", USERS_NS) for verb in sorted(READ | WRITE)]
        allowed.append(("get", resource, "status", USERS_NS))
        # status.owned is the operator's record of ownership: never writable by users.
        denied += [(verb, resource, "status", USERS_NS) for verb in ("patch", "update")]
        # Nothing in another namespace, nor across all of them.
        denied += [(verb, resource, "", OTHER_NS) for verb in sorted(READ | WRITE)]
        denied += [(verb, resource, "", None) for verb in ("list", "watch")]
    denied += [(verb, "secrets", "", USERS_NS) for verb in ("get", "list", "watch", "create")]
    denied += [("create", "rolebindings.rbac.authorization.k8s.io", "", USERS_NS)]
    answers = _access_as(cp, EDITOR, allowed + denied)
    assert [c for c in allowed if not answers[c]] == []
    assert [c for c in denied if answers[c]] == []


def _check_viewer(cp: ControlPlane) -> None:
    allowed: list[Check] = []
    denied: list[Check] = []
    for kind in KINDS:
        resource = f"{kind}.{GROUP}"
        allowed += [(verb, resource, "", USERS_NS) for verb in sorted(READ)]
        allowed.append(("get", resource, "status", USERS_NS))
        denied += [(verb, resource, "", USERS_NS) for verb in sorted(WRITE)]
        denied += [(verb, resource, "status", USERS_NS) for verb in ("patch", "update")]
        denied += [(verb, resource, "", OTHER_NS) for verb in sorted(READ)]
    denied += [(verb, "secrets", "", USERS_NS) for verb in ("get", "list")]
    answers = _access_as(cp, VIEWER, allowed + denied)
    assert [c for c in allowed if not answers[c]] == []
    assert [c for c in denied if answers[c]] == []


# --- the operator as the chart runs it -----------------------------------------------------------------


def _doc(kind: str, name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _role(name: str, namespace: str) -> dict[str, Any]:
    return _doc(
        "DruidRole",
        name,
        namespace,
        {"permissions": [{"resource": {"type": "DATASOURCE", "name": f"{name}.*"}, "action": "READ"}]},
    )


FORBIDDEN = 'forbidden: User "system:serviceaccount'


def _chart_operator(cp: ControlPlane, release: Release, tmp_path: Path) -> ChartOperator:
    """The operator as the release's Deployment runs it: its args, its config, its ServiceAccount."""
    args, config_text = read_back(cp, release)
    return ChartOperator(
        deployment_args=args,
        config_text=config_text,
        kubeconfig=sa_kubeconfig(cp, release.fullname, RELEASE_NS, tmp_path / "sa.kubeconfig"),
        workdir=tmp_path / "operator",
        pod_namespace=RELEASE_NS,
    )


def test_chart_rbac_carries_the_whole_lifecycle(
    release: Release, controlplane: ControlPlane, fakes: FakesInThread, tmp_path: Path
) -> None:
    cp = controlplane
    operator = _chart_operator(cp, release, tmp_path)
    assert f"--namespace={WATCH_NS}" in operator.command
    operator.start()
    try:
        _lifecycle(cp, fakes, operator)
    finally:
        code = operator.stop()
    log = operator.log()
    assert FORBIDDEN not in log, [line for line in log.splitlines() if FORBIDDEN in line][:5]
    assert "Traceback" not in log, log[-3000:]
    assert code == 0, log[-3000:]


def test_dashboard_and_alerts_name_only_metrics_the_operator_serves(
    helm: Helm, release: Release, controlplane: ControlPlane, tmp_path: Path
) -> None:
    """Every metric a panel or an alert queries is one the operator's /metrics serves."""
    cp = controlplane
    _, dashboard, rules = _dashboard_and_rules(helm, tmp_path)
    used = {name for expr in _expressions(dashboard, rules) for name in _METRIC.findall(expr)}
    assert {"druid_access_objects", "druid_access_target_up", "druid_access_remote_writes_total"} <= used
    operator = _chart_operator(cp, release, tmp_path)
    operator.start()
    try:
        apply(cp, [_role("dash-readers", WATCH_NS)])
        wait_reason(cp, "druidrole", WATCH_NS, "dash-readers", "Synced")
        url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            served = response.read().decode()
        cp.kubectl("delete", "druidrole", "dash-readers", "-n", WATCH_NS, "--timeout=60s")
    finally:
        code = operator.stop()
    assert code == 0, operator.log()[-3000:]
    families = set(re.findall(r"^# TYPE (\S+) ", served, re.M))
    samples = {line.split("{")[0].split(" ")[0] for line in served.splitlines() if line and line[0] != "#"}
    for name in sorted(used):
        assert name in families or name in samples, f"{name} is not in /metrics"
    assert re.search(r'^druid_access_objects\{kind="DruidRole",reason="Synced"\} [1-9]', served, re.M), served
    assert re.search(r'^druid_access_target_up\{target="default",target_type="cluster"\} 1\.0$', served, re.M)


def _lifecycle(cp: ControlPlane, fakes: FakesInThread, operator: ChartOperator) -> None:
    ns = WATCH_NS
    assert f"watching {ns}, standalone" in operator.log()
    # A Secret a resource references must opt in to being read by the operator.
    password = secret("hank-pw", {"password": "hank-secret-1"}, ns)
    password["metadata"].setdefault("labels", {})[f"{GROUP}/allow"] = "true"
    apply(cp, password)
    apply(
        cp,
        [
            _role("helm-readers", ns),
            _doc(
                "DruidUser",
                "hank",
                ns,
                {
                    "roles": ["helm-readers"],
                    "password": {"secretKeyRef": {"name": "hank-pw", "key": "password"}},
                },
            ),
            _doc(
                "DruidUser",
                "gen",
                ns,
                {
                    "roles": ["helm-readers"],
                    "password": {"secretKeyRef": {"name": "gen-pw", "key": "password"}, "generate": True},
                },
            ),
            _doc(
                "DruidGroupMapping",
                "helm-analysts",
                ns,
                {"groupPattern": "cn=helm-analysts", "roles": ["helm-readers"]},
            ),
            _doc(
                "DruidConnection",
                "helm-main",
                ns,
                {
                    "queryHosts": ["broker:8082"],
                    "title": "Helm main",
                    "defaultDbAuthToken": {
                        "username": "hank",
                        "passwordSecretRef": {"name": "hank-pw", "key": "password"},
                    },
                },
            ),
        ],
    )
    objects = [
        ("druidrole", "helm-readers"),
        ("druiduser", "hank"),
        ("druiduser", "gen"),
        ("druidgroupmapping", "helm-analysts"),
        ("druidconnection", "helm-main"),
    ]
    for kind, name in objects:
        obj = wait_reason(cp, kind, ns, name, "Synced", timeout=60)
        assert obj["status"]["owned"] is True
        assert any(f.startswith(GROUP) for f in obj["metadata"].get("finalizers", []))

    coord, pivot = fakes.coordinator, fakes.pivot
    state: dict[str, Any] = fakes.call(
        lambda: {
            "role": [p.resource_action() for p in coord.roles.get("helm-readers", [])],
            "hank": set(coord.users.get("hank", ())),
            "gen": set(coord.users.get("gen", ())),
            "creds": {u for u in ("hank", "gen") if coord.credentials.get(u) is not None},
            "mapping": list(coord.group_mappings["helm-analysts"].roles)
            if "helm-analysts" in coord.group_mappings
            else None,
            "connection": dict(pivot.connections.get("helm-main") or {}),
        }
    )
    assert state["role"] == [{"resource": {"name": "helm-readers.*", "type": "DATASOURCE"}, "action": "READ"}]
    assert state["hank"] == {"helm-readers"} and state["gen"] == {"helm-readers"}
    assert state["creds"] == {"hank", "gen"}
    assert state["mapping"] == ["helm-readers"]
    assert state["connection"]["title"] == "Helm main"
    assert state["connection"]["defaultDbAuthToken"]["password"] == "hank-secret-1"

    # The generated password: a Secret the operator created (allowed by the chart's RBAC), owned by the user.
    generated = kubectl_json(cp, "get", "secret", "gen-pw", "-n", ns)
    owners = generated["metadata"].get("ownerReferences") or []
    assert [(o["kind"], o["name"]) for o in owners] == [("DruidUser", "gen")]
    assert base64.b64decode(generated["data"]["password"]).decode()
    # Events were posted (events RBAC) for the remote changes.
    events = kubectl_json(cp, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=hank")[
        "items"
    ]
    assert "CreatedAuthenticatorUser" in {e["reason"] for e in events}
    assert any("set the password of 'hank'" in e.get("message", "") for e in events), events

    for kind, name in reversed(objects):
        cp.kubectl("delete", kind, name, "-n", ns, "--timeout=60s")
    remaining = fakes.call(
        lambda: (
            {"helm-readers"} & set(coord.roles),
            {"hank", "gen"} & (set(coord.users) | set(coord.credentials)),
            {"helm-analysts"} & set(coord.group_mappings),
            {"helm-main"} & set(pivot.connections),
        )
    )
    assert remaining == (set(), set(), set(), set())
    assert "DruidRole helm-e2e/helm-readers: deleted role 'helm-readers'" in operator.log()


# --- high availability ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ha_release(
    helm: Helm, cluster_ready: ControlPlane, fakes: FakesInThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    cp = cluster_ready
    rel = install_release(
        helm,
        cp,
        HA_RELEASE,
        _release_values(fakes, [HA_NS], 2),
        tmp_path_factory.mktemp("ha"),
        namespace=RELEASE_NS,
    )
    yield rel
    helm.run(
        "uninstall",
        HA_RELEASE,
        "-n",
        RELEASE_NS,
        "--ignore-not-found",
        kubeconfig=cp.admin_kubeconfig,
        check=False,
    )


def _peers(cp: ControlPlane, name: str) -> dict[str, Any]:
    obj = kubectl_json(cp, "get", "kopfpeering", name, "-n", HA_NS)
    return dict(obj.get("status") or {})


def _state(log: str) -> bool | None:
    """True if the last peering transition logged resumed work, False if paused, None if none."""
    last = None
    for line in log.splitlines():
        if "Resuming operations" in line:
            last = True
        elif "Pausing operations" in line or "Pausing all operators" in line:
            last = False
    return last


def test_two_replicas_one_active_then_failover(
    ha_release: Release, controlplane: ControlPlane, fakes: FakesInThread, tmp_path: Path
) -> None:
    cp = controlplane
    rel = ha_release
    # The chart's peering pieces are installed: the CRDs (crds/), the KopfPeering, the RBAC.
    for crd in ("kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"):
        cp.kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{crd}")
    cp.kubectl("get", "kopfpeering", rel.fullname, "-n", HA_NS)
    args, config_text = read_back(cp, rel)
    assert f"--peering={rel.fullname}" in args
    kubeconfig = sa_kubeconfig(cp, rel.fullname, RELEASE_NS, tmp_path / "sa.kubeconfig")
    assert _can(cp, kubeconfig, "patch", "kopfpeerings.kopf.dev", HA_NS)

    replicas = [
        ChartOperator(args, config_text, kubeconfig, tmp_path / f"replica-{i}", RELEASE_NS) for i in range(2)
    ]
    try:
        _ha_scenario(cp, fakes, rel, replicas)
    finally:
        for replica in replicas:
            if replica.running:
                cp.kubectl("delete", "druid", "--all", "-n", HA_NS, "--timeout=60s", check=False)
                break
        codes = [replica.stop() for replica in replicas]
    for replica in replicas:
        log = replica.log()
        assert FORBIDDEN not in log, [line for line in log.splitlines() if FORBIDDEN in line][:5]
    assert all(code in (0, None) for code in codes), codes


def _ha_scenario(cp: ControlPlane, fakes: FakesInThread, rel: Release, replicas: list[ChartOperator]) -> None:
    first, second = replicas
    first.start()
    p_first = first.priority()
    # The first replica announces itself before the second starts (as a rolling Deployment would).
    wait_for(
        lambda: any(p.get("priority") == p_first for p in _peers(cp, rel.fullname).values()),
        timeout=30,
        what="the first replica's keep-alive",
    )
    second.start()
    p_second = second.priority()
    assert p_first != p_second
    active, standby = (first, second) if p_first > p_second else (second, first)

    def settled() -> bool:
        priorities = sorted(p.get("priority") for p in _peers(cp, rel.fullname).values())
        return (
            priorities == sorted([p_first, p_second])
            and _state(active.log()) is True
            and _state(standby.log()) is not True
        )

    wait_for(settled, timeout=30, what="one active replica and one standing by")

    def clear_logs() -> None:
        fakes.coordinator.requests.clear()
        fakes.pivot.requests.clear()

    fakes.call(clear_logs)
    apply(
        cp,
        [
            _role("ha-first", HA_NS),
            _doc("DruidGroupMapping", "ha-group", HA_NS, {"groupPattern": "cn=ha", "roles": ["ha-first"]}),
        ],
    )
    wait_reason(cp, "druidrole", HA_NS, "ha-first", "Synced", timeout=60)
    wait_reason(cp, "druidgroupmapping", HA_NS, "ha-group", "Synced", timeout=60)
    time.sleep(2)  # a window in which a standby that was not paused would have acted too
    coord = fakes.coordinator
    creates = fakes.call(
        lambda: (
            coord.requests.count("POST", r"/db/[^/]+/roles/ha-first$"),
            coord.requests.count("POST", r"/db/[^/]+/groupMappings/ha-group$"),
        )
    )
    assert creates == (1, 1)
    assert "DruidRole helm-ha/ha-first: created role 'ha-first'" in active.log()
    assert "helm-ha/ha-first" not in standby.log()
    assert "helm-ha/ha-group" not in standby.log()
    assert _state(standby.log()) is not True

    # The active replica goes away (a pod deleted, a node drained): SIGTERM, a clean exit.
    assert active.stop() == 0
    started = time.monotonic()
    apply(cp, _role("ha-second", HA_NS))
    wait_for(
        lambda: fakes.call(lambda: "ha-second" in coord.roles), timeout=30, what="the standby to take over"
    )
    takeover = time.monotonic() - started
    wait_reason(cp, "druidrole", HA_NS, "ha-second", "Synced", timeout=30)
    assert _state(standby.log()) is True
    assert "DruidRole helm-ha/ha-second: created role 'ha-second'" in standby.log()
    assert "ha-second" not in active.log()
    # Nothing already in sync was written again by the new active replica.
    counts = fakes.call(
        lambda: (
            coord.requests.count("POST", r"/db/[^/]+/roles/ha-first$"),
            coord.requests.count("POST", r"/db/[^/]+/groupMappings/ha-group$"),
            coord.requests.count("POST", r"/db/[^/]+/roles/ha-second$"),
        )
    )
    assert counts == (1, 1, 1)
    wait_reason(cp, "druidrole", HA_NS, "ha-first", "Synced", timeout=30)
    print(f"takeover after SIGTERM: {takeover:.1f}s")
    # The departed replica removed itself from the peering on its way out.
    assert [p["priority"] for p in _peers(cp, rel.fullname).values()] == [standby.priority()]


def test_a_replica_outranked_while_active_stops_its_loops(
    ha_release: Release, controlplane: ControlPlane, fakes: FakesInThread, tmp_path: Path
) -> None:
    """kopf pauses its watches when a replica with a higher priority appears; the work queue
    and the resync timers are the operator's own and must pause with them, or the replica that
    was active goes on reconciling next to the new one."""
    cp, rel, coord = controlplane, ha_release, fakes.coordinator
    args, config_text = read_back(cp, rel)
    kubeconfig = sa_kubeconfig(cp, rel.fullname, RELEASE_NS, tmp_path / "sa.kubeconfig")
    low, high = (
        ChartOperator([*args, f"--priority={p}"], config_text, kubeconfig, tmp_path / name, RELEASE_NS)
        for name, p in (("low", 10), ("high", 20))
    )
    name = "ha-outranked"
    try:
        low.start()
        apply(cp, _role(name, HA_NS))
        wait_reason(cp, "druidrole", HA_NS, name, "Synced", timeout=60)  # its workers and resyncs run
        high.start()
        wait_for(lambda: "workers and resyncs paused" in low.log() or None, timeout=30, what="the pause")
        assert _state(low.log()) is False  # kopf paused too
        paused_at = len(low.log())

        # Drift on the Coordinator: the active replica's resync (every 5 s) puts the role back;
        # the paused one's resyncs do not run.
        since = time.time()
        fakes.call(lambda: coord.roles.pop(name))
        wait_for(lambda: fakes.call(lambda: name in coord.roles) or None, timeout=30, what="the correction")
        time.sleep(6)  # a resync period more, in which a paused replica would have acted too
        creates = [r for r in coord.requests.filter("POST", rf"/roles/{name}$") if r.timestamp >= since]
        assert len(creates) == 1, creates
        assert f"created role '{name}'" in high.log()
        assert name not in low.log()[paused_at:]

        # The active one leaves: the other resumes its loops.
        assert high.stop() == 0
        wait_for(lambda: "workers and resyncs resumed" in low.log() or None, timeout=30, what="the resume")
    finally:
        cp.kubectl("delete", "druidrole", name, "-n", HA_NS, "--timeout=60s", check=False)
        codes = [replica.stop() for replica in (low, high)]
    assert all(code in (0, None) for code in codes), codes


# --- uninstall (last: the release fixture is used above) -----------------------------------------------


def test_uninstall_leaves_no_operator_objects(
    helm: Helm, release: Release, controlplane: ControlPlane
) -> None:
    cp = controlplane
    selector = f"app.kubernetes.io/instance={RELEASE}"
    before = cp.kubectl(
        "get", "clusterroles,clusterrolebindings", "-l", selector, "-o", "name"
    ).stdout.split()
    assert len(before) == 7  # the main, resources, discovery, view and edit roles, two bindings
    helm.run(
        "uninstall", RELEASE, "-n", RELEASE_NS, "--wait", "--timeout=60s", kubeconfig=cp.admin_kubeconfig
    )

    types = cp.kubectl("api-resources", "--verbs=list", "-o", "name").stdout.split()
    leftovers = cp.kubectl("get", ",".join(types), "-A", "-l", selector, "-o", "name").stdout.split()
    assert leftovers == []
    releases = cp.kubectl(
        "get", "secrets", "-n", RELEASE_NS, "-l", f"owner=helm,name={RELEASE}", "-o", "name"
    )
    assert releases.stdout.split() == []
    assert (
        helm.run("status", RELEASE, "-n", RELEASE_NS, kubeconfig=cp.admin_kubeconfig, check=False).returncode
        != 0
    )
    # The other release is untouched, and CRDs stay (Helm never deletes crds/ objects).
    for crd in (
        "druidusers.druidaccess.io",
        "druidroles.druidaccess.io",
        "druidgroupmappings.druidaccess.io",
        "druidconnections.druidaccess.io",
        "kopfpeerings.kopf.dev",
        "clusterkopfpeerings.kopf.dev",
    ):
        cp.kubectl("get", "crd", crd)
    # The ServiceAccount is gone, so a token for it can no longer be requested.
    assert (
        cp.kubectl("create", "token", f"{RELEASE}-{CHART_NAME}", "-n", RELEASE_NS, check=False).returncode
        != 0
    )
