"""Which redirects a client may follow (private to the clients).

Several Druid Coordinators run behind one Service, and only the leader serves the
basic-security API: the others answer every request with ``307 Temporary Redirect`` to the
leader's own address. Following it re-sends the operator's credentials, so a redirect is
followed only to a place the target's configuration names:

- the configured URL's own origin (scheme, host and port), always;
- a host in ``allowed_hosts``: a host-name glob (``*.druid-coordinator.druid.svc``), optionally
  with ``:port`` (also a glob), or a network in CIDR form (``10.0.0.0/8``) that an IP address
  must fall in;
- never from ``https`` to ``http``, whatever the list says.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass

import httpx

__all__ = ["RedirectPolicy", "origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: httpx.URL) -> str:
    """``scheme://host:port`` with the port always written."""
    port = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}:{port}"


@dataclass(frozen=True)
class RedirectPolicy:
    base: httpx.URL
    allowed_hosts: tuple[str, ...] = ()

    def refusal(self, location: httpx.URL) -> str | None:
        """None when a redirect to ``location`` may be followed, else why not."""
        if location.scheme not in ("http", "https"):
            return f"scheme {location.scheme!r} is not http(s)"
        if self.base.scheme == "https" and location.scheme == "http":
            return "it would leave TLS (https to http)"
        if location.userinfo:
            return "the location embeds credentials"
        if origin(location) == origin(self.base):
            return None
        if any(_host_matches(location, entry) for entry in self.allowed_hosts):
            return None
        return "its host is not in the cluster's leaderHosts"


def _host_matches(url: httpx.URL, entry: str) -> bool:
    host = url.host.lower()
    port = str(url.port or _DEFAULT_PORTS.get(url.scheme, 0))
    if "/" in entry:
        try:
            network = ipaddress.ip_network(entry, strict=False)
            return ipaddress.ip_address(host) in network
        except ValueError:  # not an IP address, or not a network
            return False
    pattern_host, _, pattern_port = (
        entry.lower().rpartition(":") if _has_port(entry) else (entry.lower(), "", "")
    )
    return fnmatch.fnmatchcase(host, pattern_host.strip("[]")) and (
        not pattern_port or fnmatch.fnmatchcase(port, pattern_port)
    )


def _has_port(entry: str) -> bool:
    # "host:port"; a bare IPv6 address has several colons and no port.
    return entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry)
