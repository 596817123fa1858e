"""The metadata.name ``export`` derives from a remote name: valid, stable, unique per kind."""

from __future__ import annotations

import re

from druid_access.export import _unique, metadata_name

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
