"""The models parse the samples users apply and refuse what the schema refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from druid_access.models import (
    KINDS,
    Action,
    DruidConnectionSpec,
    DruidRoleSpec,
    DruidUserSpec,
    KindInfo,
    ResourceType,
)

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
BY_KIND: dict[str, KindInfo] = {info.kind: info for info in KINDS}


def _sample_docs() -> list[dict[str, object]]:
    docs = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] in BY_KIND]
    return docs


def test_samples_cover_every_kind() -> None:
    assert {d["kind"] for d in _sample_docs()} == set(BY_KIND)


@pytest.mark.parametrize("doc", _sample_docs(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_samples_parse(doc: dict[str, object]) -> None:
    spec = BY_KIND[str(doc["kind"])].spec.model_validate(doc["spec"])
    assert spec.model_dump(by_alias=True, exclude_none=True)


def test_defaults() -> None:
    user = DruidUserSpec.model_validate({})
    assert (user.cluster, user.deletion_policy, user.adoption_policy, user.drift_policy) == (
        "default",
        "Delete",
        "Refuse",
        "Correct",
    )
    assert user.roles == [] and user.password is None and user.suspend is False


def test_role_permissions_are_typed() -> None:
    role = DruidRoleSpec.model_validate(
        {"permissions": [{"resource": {"type": "DATASOURCE", "name": "wiki.*"}, "action": "READ"}]}
    )
    assert role.permissions[0].resource.type is ResourceType.DATASOURCE
    assert role.permissions[0].action is Action.READ


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "team/x"},
        {"name": "a:b"},
        {"name": ".hidden"},
        {"password": "inline"},
        {"password": {"secretKeyRef": {"name": "s", "key": "k"}, "value": "inline"}},
        {"roles": ["ok", "bad/role"]},
        {"deletionPolicy": "Orphan"},
    ],
)
def test_user_rejects(spec: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DruidUserSpec.model_validate(spec)


def test_connection_requires_query_hosts_and_refuses_inline_secrets() -> None:
    with pytest.raises(ValidationError):
        DruidConnectionSpec.model_validate({})
    with pytest.raises(ValidationError):
        DruidConnectionSpec.model_validate(
            {"queryHosts": ["h"], "defaultDbAuthToken": {"username": "u", "password": "p"}}
        )
