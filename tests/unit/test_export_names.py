"""The metadata.name ``export`` derives from a remote name: valid, stable, unique per kind."""

from __future__ import annotations

import re
from typing import Any

import yaml

from druid_access.export import Export, Exported, _unique, connection_secret_name, metadata_name, render
from druid_access.models import DRUID_ROLE

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

ODD_NAMES = [
    "alice",
    "alice@corp.example",
    "Alice@Corp.Example",
    "Zoë Smith",
    "日本",
    "データ 分析",
    "-leading-dash",
    "trailing.dot.",
    "a..b",
    "x" * 300,
    "UPPER_case",
    "tab\tname",
    "@",
    "123",
]


def test_a_name_that_is_already_valid_is_kept_as_it_is() -> None:
    for name in ("alice", "readers", "team-a.readers", "123"):
        assert metadata_name(name, "druiduser") == name


def test_every_name_becomes_a_valid_dns_subdomain_of_at_most_63_characters() -> None:
    for name in ODD_NAMES:
        derived = metadata_name(name, "druiduser")
        assert DNS_SUBDOMAIN.match(derived), (name, derived)
        assert len(derived) <= 63


def test_names_are_readable_and_the_same_every_time() -> None:
    assert metadata_name("alice@corp.example", "druiduser").startswith("alice-at-corp.example-")
    assert metadata_name("Zoë Smith", "druiduser").startswith("zoe-smith-")
    assert metadata_name("日本", "druiduser").startswith("druiduser-")
    assert [metadata_name(n, "druidrole") for n in ODD_NAMES] == [
        metadata_name(n, "druidrole") for n in ODD_NAMES
    ]


def test_names_that_read_alike_still_differ() -> None:
    # Case and spacing collapse in the slug; the hash of the whole name keeps them apart.
    names = ["Alice", "alice ", "ALICE", "a l i c e", "alice"]
    derived = _unique((n, metadata_name(n, "druiduser")) for n in names)
    assert len(set(derived.values())) == len(names)
    assert derived["alice"] == "alice"


def test_a_remote_name_equal_to_another_names_derived_name_does_not_clash() -> None:
    taken = metadata_name("Alice", "druiduser")  # e.g. "alice-1a2b3c4d"
    derived = _unique([("Alice", taken), (taken, taken)])
    assert derived[taken] == taken  # a name that is its own metadata.name keeps it
    assert derived["Alice"] != taken
    assert DNS_SUBDOMAIN.match(derived["Alice"])
    assert _unique([(taken, taken), ("Alice", taken)]) == derived  # whatever the order


def test_a_connections_secret_name_is_valid_and_its_own_however_long() -> None:
    long_one = "team-analytics-production-cluster-emea-warehouse-primary-01"
    names = {
        connection_secret_name(metadata_name(n, "druidconnection")) for n in (long_one, long_one[:-1] + "2")
    }
    assert len(names) == 2
    for name in (*names, connection_secret_name("a" * 54 + ".bbbbbbbb"), connection_secret_name("short")):
        assert DNS_SUBDOMAIN.match(name) and len(name) <= 63, name
    assert connection_secret_name("short") == "short-secrets"


def _rendered(spec: dict[str, Any], comments: tuple[str, ...] = ()) -> str:
    return render(Export([Exported(DRUID_ROLE, spec["name"], spec, comments)]), namespace="ns")


def test_text_from_the_target_cannot_end_a_comment_and_start_a_document() -> None:
    hostile = (
        "security|x\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: injected\n#\u2028kind: Secret"
    )
    text = _rendered({"name": "r", "permissions": []}, (f"It holds {hostile!s}",))
    documents = [d for d in yaml.safe_load_all(text) if d]
    assert [d["kind"] for d in documents] == ["DruidRole"]
    for line in text.splitlines():
        assert line.startswith(("#", "---", "apiVersion", "kind", "metadata", "spec", " ")), line


def test_strings_a_yaml_1_1_reader_would_take_for_something_else_are_quoted() -> None:
    names = ["n", "Y", "1e3", "0o17", "yes", "on", "null", "12", "1.5", "2001-12-14", "~"]
    spec = {
        "name": "r",
        "permissions": [{"resource": {"type": "DATASOURCE", "name": n}, "action": "READ"} for n in names],
    }
    text = _rendered(spec)
    for name in names:
        assert f"name: '{name}'" in text or f'name: "{name}"' in text, name
    loaded = next(yaml.safe_load_all(text))
    assert [p["resource"]["name"] for p in loaded["spec"]["permissions"]] == names
