"""The operator configuration: defaults, tenancy globs, and errors that name the bad key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from druid_access.config import ConfigError, load, parse

GOOD = {
    "namespace": "ops",
    "clusters": {
        "default": {
            "coordinatorUrl": "https://coordinator:8281",
            "adminSecret": {"name": "druid-admin"},
            "allowedNamespaces": ["analytics", "team-*"],
        }
    },
    "pivots": {"default": {"url": "https://pivot:9095", "tokenSecret": {"name": "pivot-token"}}},
}


def test_defaults_and_globs() -> None:
    cfg = parse(GOOD)
    cluster = cfg.clusters["default"]
    assert (cluster.authenticator, cluster.authorizer) == ("basic", "basic")
    assert cluster.admin_secret.username_key == "username"
    assert cluster.protected.users == ("admin", "druid_system")
    assert cluster.protected.roles == ("admin", "druid_system")
    assert cluster.resync_seconds == 300
    assert cluster.allows("team-a") and cluster.allows("analytics")
    assert not cluster.allows("other")
    assert cfg.pivots["default"].allows("anything")  # default: every namespace
    assert cfg.pivots["default"].token_secret.key == "token"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"clusters": {"default": {"adminSecret": {"name": "x"}}}}, "clusters.default.coordinatorUrl"),
        (
            {"clusters": {"default": {"coordinatorUrl": "ftp://x", "adminSecret": {"name": "x"}}}},
            "clusters.default.coordinatorUrl",
        ),
        ({"clusters": {"Bad_Name": GOOD["clusters"]["default"]}}, "clusters.Bad_Name"),
        ({"pivots": {"default": {"url": "https://p", "tokenSecret": {}}}}, "pivots.default.tokenSecret.name"),
        (
            {
                "pivots": {
                    "default": {"url": "https://p", "tokenSecret": {"name": "../../kube-system/secrets/x"}}
                }
            },
            "pivots.default.tokenSecret.name",
        ),
        (
            {"clusters": {"default": {**GOOD["clusters"]["default"], "adminSecret": {"name": "Admin"}}}},
            "clusters.default.adminSecret.name",
        ),
        (
            {"clusters": {"default": {**GOOD["clusters"]["default"], "resyncSeconds": 0}}},
            "clusters.default.resyncSeconds",
        ),
        (
            {"clusters": {"default": {**GOOD["clusters"]["default"], "coordinatorURL": "x"}}},
            "clusters.default.coordinatorURL",
        ),
    ],
)
def test_errors_name_the_key(change: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({**GOOD, **change})
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("where", "url"),
    [
        (("clusters", "coordinatorUrl"), "https://admin:s3cret-pw@coordinator:8281"),
        (("clusters", "brokerUrl"), "http://app:s3cret-pw@broker:8082/"),
        (("clusters", "routerUrl"), "http://s3cret-pw@router:8888"),
        (("pivots", "url"), "https://token:s3cret-pw@pivot:9095/path"),
    ],
)
def test_a_url_with_credentials_is_refused_without_echoing_them(where: tuple[str, str], url: str) -> None:
    section, key = where
    target = {**GOOD[section]["default"], key: url}  # type: ignore[index]
    with pytest.raises(ConfigError) as caught:
        parse({**GOOD, section: {"default": target}})
    assert f"{section}.default.{key}" in str(caught.value)
    assert "must not embed credentials" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_an_at_sign_after_the_host_is_not_taken_for_credentials() -> None:
    cluster = {**GOOD["clusters"]["default"], "coordinatorUrl": "https://coordinator:8281/base@x"}  # type: ignore[dict-item]
    assert (
        parse({**GOOD, "clusters": {"default": cluster}}).clusters["default"].coordinator_url.endswith("@x")
    )


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("clusters: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(bad)
    bad.write_text("- a list")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load(bad)


def run_operator(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "druid_access.cli", "run", "--config", str(config), "--all-namespaces"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_run_refuses_a_broken_config_before_connecting(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("clusters:\n  default:\n    coordinatorUrl: https://c\n")
    result = run_operator(path)
    assert result.returncode == 2
    assert "clusters.default.adminSecret" in result.stderr


def test_run_refuses_kubernetes_credentials_it_cannot_use(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(GOOD))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "current-context": "eks",
                "contexts": [{"name": "eks", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"exec": {"command": "aws", "args": ["eks", "get-token"]}}}],
            }
        )
    )
    result = run_operator(
        config, {"PATH": "/usr/bin:/bin", "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}
    )
    assert result.returncode == 2, result.stderr
    assert "no usable Kubernetes credentials: user 'u' authenticates with an exec plugin" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_urls_applications_use_go_into_generated_secrets_only_when_given() -> None:
    assert parse(GOOD).clusters["default"].consumer_urls() == {}
    cluster = {
        **GOOD["clusters"]["default"],
        "brokerUrl": "https://broker:8282",
        "routerUrl": "http://router:8888",
    }
    parsed = parse({**GOOD, "clusters": {"default": cluster}}).clusters["default"]
    assert parsed.consumer_urls() == {"brokerUrl": "https://broker:8282", "routerUrl": "http://router:8888"}
    with pytest.raises(ConfigError, match=r"clusters\.default\.brokerUrl"):
        parse({**GOOD, "clusters": {"default": {**cluster, "brokerUrl": "broker:8282"}}})
