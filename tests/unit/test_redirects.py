"""Which redirects the clients follow: the configured origin, ``leaderHosts``, never https to http."""

from __future__ import annotations

import httpx
import pytest

from druid_access.clients.redirects import RedirectPolicy, origin


def refusal(base: str, location: str, hosts: tuple[str, ...] = ()) -> str | None:
    return RedirectPolicy(httpx.URL(base), hosts).refusal(httpx.URL(location))


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
