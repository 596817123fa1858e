"""Which redirects a client may follow (private to the clients).

Several Druid Coordinators run behind one Service, and only the leader serves the
basic-security API: the others answer every request with ``307 Temporary Redirect`` to the
leader's own address. Following it re-sends the operator's credentials, so a redirect is
followed only to a place the target's configuration names:

- the configured URL's own origin (scheme, host and port), always;
- a host matching one of ``allowed_hosts`` (a cluster's ``leaderHosts``), each entry being
  - a network in CIDR form (``10.0.0.0/8``, ``fd00::/8``), which only an IP address falls in;
  - an IP address, or an IPv4 glob (``10.0.0.*``), which only an IP address matches;
  - a host-name glob (``*.druid-coordinator.druid.svc``) matched label by label, so ``*``
    stands for one DNS label and never spans a dot;
  - any of the last three with ``:port`` (a port may be a glob: ``82*``);
- never to a lower scheme than the hop it comes from (``https`` to ``http``), nor to a
  location with credentials in it or without a host.

Entries are checked when the configuration loads (``parse_host_rule``), so a mistyped one
fails start-up instead of never matching.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # URLs are handed in: the rules import no HTTP library
    import httpx


__all__ = ["HostRule", "RedirectPolicy", "origin", "parse_host_rule"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_IP_LABEL = re.compile(r"[0-9*?\[\]!-]+")
_LABEL_GLOB = re.compile(r"[a-z0-9*?\[\]!_-]+")
_PORT_GLOB = re.compile(r"[0-9*?\[\]!-]+")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def origin(url: httpx.URL) -> str:
    """``scheme://host:port`` with the port always written."""
    port = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}:{port}"


@dataclass(frozen=True)
class HostRule:
    """One ``leaderHosts`` entry: a network, or a host glob, with an optional port glob."""

    network: IPNetwork | None = None
    host: str | None = None  # lower case; an IP address, an IPv4 glob or a host-name glob
    port: str | None = None

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and not fnmatch.fnmatchcase(str(port), self.port):
            return False
        address = _ip(host)
        if self.network is not None:
            return address is not None and address in self.network
        assert self.host is not None
        if _is_ip_pattern(self.host):
            # An IP (glob) matches IP addresses only: "10.0.0.*" must not match "10.0.0.evil.example".
            if address is None:
                return False
            if ":" in self.host:
                return address == ipaddress.ip_address(self.host)
            return address.version == 4 and _labels_match(str(address), self.host)
        return address is None and _labels_match(host.lower().rstrip("."), self.host)


def parse_host_rule(entry: str) -> HostRule:
    """Parse one entry; ``ValueError`` says what is wrong with it."""
    text = entry.strip().lower()
    if not text:
        raise ValueError("an empty entry")
    if "/" in text:
        try:
            return HostRule(network=ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(
                f"{entry!r} is not a network in CIDR form ({exc}); a network takes no port"
            ) from None
    host, port = _split_port(text)
    if port is not None and not _PORT_GLOB.fullmatch(port):
        raise ValueError(f"{entry!r}: the port {port!r} is not a number or a glob of digits")
    if _ip(host) is not None:
        return HostRule(host=host, port=port)
    labels = host.rstrip(".").split(".")
    if _looks_like_ip(labels):
        if len(labels) != 4:
            raise ValueError(f"{entry!r}: an IPv4 address or glob has four parts (10.0.0.*)")
        return HostRule(host=host, port=port)
    if not all(_LABEL_GLOB.fullmatch(label) for label in labels):
        raise ValueError(f"{entry!r} is not a host name, IP address, glob or CIDR network")
    return HostRule(host=".".join(labels), port=port)


@dataclass(frozen=True)
class RedirectPolicy:
    base: httpx.URL
    allowed_hosts: tuple[str, ...] = ()
    setting: str | None = None  # the configuration key of allowed_hosts, for messages
    rules: tuple[HostRule, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(parse_host_rule(entry) for entry in self.allowed_hosts))

    def refusal(self, location: httpx.URL, *, current: httpx.URL | None = None) -> str | None:
        """None when a redirect from ``current`` (default: the base URL) to ``location`` may be
        followed, else why not."""
        scheme_now = (current or self.base).scheme
        if location.scheme not in ("http", "https"):
            return f"its scheme {location.scheme!r} is not http(s)"
        if scheme_now == "https" and location.scheme == "http":
            return "it would leave TLS (https to http)"
        if location.userinfo:
            return "its location embeds credentials"
        if not location.host:
            return "its location has no host"
        if origin(location) == origin(self.base):
            return None
        port = location.port or _DEFAULT_PORTS[location.scheme]
        if any(rule.matches(location.host, port) for rule in self.rules):
            return None
        if self.setting is None:
            return "it leaves the configured URL's origin"
        return f"its host is not in the {self.setting}"


def _split_port(text: str) -> tuple[str, str | None]:
    if text.startswith("["):  # [v6] or [v6]:port
        host, _, rest = text[1:].partition("]")
        return host, (rest[1:] if rest.startswith(":") else None)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, None  # a name, an IPv4 glob, or a bare IPv6 address


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _looks_like_ip(labels: list[str]) -> bool:
    # Digits and glob characters only, with a digit somewhere ("*" alone is a one-label name glob).
    return all(_IP_LABEL.fullmatch(label) for label in labels) and any(c.isdigit() for c in "".join(labels))


def _is_ip_pattern(pattern: str) -> bool:
    return ":" in pattern or _looks_like_ip(pattern.split("."))


def _labels_match(host: str, pattern: str) -> bool:
    labels, patterns = host.split("."), pattern.split(".")
    return len(labels) == len(patterns) and all(
        fnmatch.fnmatchcase(label, glob) for label, glob in zip(labels, patterns, strict=True)
    )
