"""Which redirects the clients follow: the configured origin, ``leaderHosts``, never https to http."""

from __future__ import annotations

import httpx
import pytest

from druid_access.clients.redirects import RedirectPolicy, origin, parse_host_rule
from druid_access.config import ClusterConfig


def refusal(base: str, location: str, hosts: tuple[str, ...] = ()) -> str | None:
    return RedirectPolicy(httpx.URL(base), hosts, setting="leaderHosts").refusal(httpx.URL(location))


def test_origin_always_names_the_port() -> None:
    assert origin(httpx.URL("http://Coordinator.example/x?y")) == "http://coordinator.example:80"
    assert origin(httpx.URL("https://10.0.0.1:8281/")) == "https://10.0.0.1:8281"
    assert origin(httpx.URL("http://[::1]:8081/")) == "http://[::1]:8081"


def test_the_configured_origin_is_always_allowed() -> None:
    assert refusal("http://coord.svc:8081", "http://coord.svc:8081/druid-ext/x") is None
    assert refusal("http://coord.svc", "http://coord.svc:80/x") is None


@pytest.mark.parametrize(
    "location",
    [
        "http://coord.svc:8082/x",  # same host, another port: another server
        "http://10.0.0.7:8081/x",
        "https://coord.svc:8081/x",  # another scheme is another origin
    ],
)
def test_anything_else_needs_leader_hosts(location: str) -> None:
    why = refusal("http://coord.svc:8081", location)
    assert why is not None and "leaderHosts" in why


@pytest.mark.parametrize(
    ("hosts", "location", "allowed"),
    [
        (("127.0.0.1",), "http://127.0.0.1:9999/x", True),  # a host without a port: any port
        (("*.coordinator.druid.svc",), "http://druid-coordinator-1.coordinator.druid.svc:8081/", True),
        (("*.coordinator.druid.svc",), "http://coordinator.druid.svc.evil.example:8081/", False),
        (("*.coordinator.druid.svc",), "http://evil.example/?.coordinator.druid.svc", False),
        (("10.0.0.12:8281",), "https://10.0.0.12:8281/", True),
        (("10.0.0.12:8281",), "https://10.0.0.12:8282/", False),
        (("10.0.0.12:82*",), "https://10.0.0.12:8282/", True),
        (("10.0.0.0/8",), "http://10.200.3.4:8081/", True),
        (("10.0.0.0/8",), "http://11.0.0.1:8081/", False),
        (("10.0.0.0/8",), "http://ten.example:8081/", False),  # a name is not in a network
        (("fd00::/8",), "http://[fd00::1]:8081/", True),
        (("[fd00::1]:8081",), "http://[fd00::1]:8081/", True),
        (("COORD.SVC",), "http://coord.svc:1/", True),  # host names compare case-insensitively
        (("coord.svc",), "http://coord.svc.:1/", True),  # a fully qualified name's trailing dot
        # An IP glob matches IP addresses only, and * never spans a dot.
        (("10.0.0.*",), "http://10.0.0.7:8081/", True),
        (("10.0.0.*",), "http://10.0.0.evil.example:8081/", False),
        (("10.0.0.*",), "http://[::ffff:10.0.0.7]:8081/", False),
        (("*.svc",), "http://a.b.svc:1/", False),
        (("*",), "http://evil.example:1/", False),
        (("*",), "http://localhost:1/", True),
        (("*.svc",), "http://10.0.0.1:1/", False),  # a name glob matches names only
    ],
)
def test_leader_hosts(hosts: tuple[str, ...], location: str, allowed: bool) -> None:
    base = "http://service.example:8081" if location.startswith("http:") else "https://service.example:8281"
    assert (refusal(base, location, hosts) is None) is allowed


def test_never_from_https_to_http_even_when_listed() -> None:
    why = refusal("https://coord.svc:8281", "http://coord.svc:8281/x", ("*",))
    assert why is not None and "https to http" in why
    assert refusal("http://coord.svc:8081", "https://leader.svc:8281/x", ("leader.svc",)) is None


def test_credentials_in_the_location_and_other_schemes_are_refused() -> None:
    assert refusal("http://c:1", "http://user:pw@c:1/x", ("*",)) is not None
    assert refusal("http://c:1", "ftp://c:1/x", ("*",)) is not None


def test_never_a_downgrade_along_a_chain() -> None:
    """http -> https (an allowed leader) -> http: the second hop is a downgrade, refused."""
    policy = RedirectPolicy(httpx.URL("http://svc:8081"), ("*.leaders",))
    assert policy.refusal(httpx.URL("https://a.leaders:8281/x")) is None
    why = policy.refusal(httpx.URL("http://b.leaders:8081/x"), current=httpx.URL("https://a.leaders:8281/x"))
    assert why is not None and "https to http" in why


def test_a_location_without_a_host_is_refused() -> None:
    assert refusal("http://c:1", "http:///x", ("*",)) is not None


def test_the_message_names_the_setting_only_where_there_is_one() -> None:
    druid = RedirectPolicy(httpx.URL("http://c:1"), (), setting="leaderHosts")
    pivot = RedirectPolicy(httpx.URL("http://p:1"), ())
    assert "leaderHosts" in (druid.refusal(httpx.URL("http://d:1/")) or "")
    assert pivot.refusal(httpx.URL("http://d:1/")) == "it leaves the configured URL's origin"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("", "empty"),
        ("10.0.0.0/33", "CIDR"),
        ("10.0.0.0/8:8081", "takes no port"),
        ("10.0.*", "four parts"),
        ("ho st", "not a host name"),
        ("coord.svc:http", "not a number"),
    ],
)
def test_bad_entries_are_refused_when_the_configuration_loads(entry: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_host_rule(entry)
    config = {"coordinatorUrl": "http://c:8081", "adminSecret": {"name": "a"}, "leaderHosts": [entry]}
    with pytest.raises(ValueError, match="leaderHosts"):
        ClusterConfig.model_validate(config)
