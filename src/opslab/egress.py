"""Where traffic may go: the one rule for every route that makes the server call out (a canary's load, later
the responder's target and action server, autoops webhooks), the one way a webhook is posted, and the
allowlist decision of the lab's egress proxy.

The service must not be a load cannon for whoever can reach its API: a URL whose host is not in the
configured allow-list is refused before anything runs, dry runs included, token or not.

An allowlist (``runtime.network.allowed_hosts`` of a lab experiment) decides on what a name *resolves
to*, not only on the name: ``decide`` allows a name that an entry matches, and then only an address on
the public internet — a loopback, link-local, private, shared, cloud-metadata, multicast or reserved
address is refused unless an entry names that address (or a network holding it) explicitly. Entries:

    api.example.com          that name, any port            api.example.com:443   that name, port 443
    *.example.com            its subdomains (not itself)    10.1.2.3 / 10.0.0.0/8 that address / network
    [::1]:8080               an IPv6 address with a port    192.168.0.0/16:5432   a network, one port
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from opslab.errors import InvalidInput, PolicyViolation

if TYPE_CHECKING:
    import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AddressClass = Literal[
    "global",
    "loopback",
    "link_local",
    "private",
    "shared",
    "metadata",
    "unspecified",
    "multicast",
    "reserved",
]
# Cloud instance metadata endpoints (AWS, GCP and Azure share the first; ECS tasks, Alibaba, AWS over IPv6).
METADATA = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.169.254/32", "169.254.170.2/32", "100.100.100.200/32", "fd00:ec2::254/128")
)
SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not the public internet
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def check_target(url: str, allowed: Sequence[str], *, field: str, setting: str) -> None:
    """Refuse ``url`` unless its host (or ``host:port``) is in ``allowed``; ``field`` names it in errors."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise InvalidInput.for_field(field, f"{url!r} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidInput.for_field(field, f"{url!r}: expected an http(s) URL with a host")
    names = {a.strip().lower().strip("[]") for a in allowed}
    candidates = {host.lower(), f"{host.lower()}:{port}" if port else host.lower()}
    if names & candidates:
        return
    raise PolicyViolation(
        f"{field}: {host} is not an allowed target of this service; allowed: {', '.join(sorted(names))} "
        f"(set {setting} to add hosts)",
        details={"field": field, "host": host, "allowed": sorted(names), "setting": setting},
    )


def check_volume(requests: float, limit: int, *, field: str, setting: str) -> None:
    """Refuse work that would send more than ``limit`` requests."""
    if requests > limit:
        raise PolicyViolation(
            f"{field}: this would send about {requests:,.0f} requests, over the limit of {limit:,} "
            f"(set {setting} to raise it)",
            details={"field": field, "requests": int(requests), "limit": limit, "setting": setting},
        )


def post_webhook(
    url: str, body: Mapping[str, Any], *, timeout_s: float = 5.0, client: httpx.Client | None = None
) -> str | None:
    """POST a webhook's JSON body (Slack-compatible when it has ``text``). A webhook that is down never
    stops the work that notifies: the failure comes back as a reason (never naming the URL, which may be
    a credential itself, as a Slack webhook's is), None when delivered."""
    import httpx  # here: the lab's proxy and config read this module and never post

    try:
        if client is not None:
            r = client.post(url, json=dict(body), timeout=timeout_s)
        else:
            r = httpx.post(url, json=dict(body), timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    return f"HTTP {r.status_code}" if r.status_code >= 300 else None


# --- the allowlist decision ---


def classify_address(address: str | IPAddress) -> AddressClass:
    """What kind of address this is; IPv6 forms that carry an IPv4 address (mapped, 6to4, NAT64) are
    judged by the IPv4 address they reach."""
    ip = _unwrap(ipaddress.ip_address(address) if isinstance(address, str) else address)
    if any(ip in net for net in METADATA):
        return "metadata"
    if ip.is_unspecified:
        return "unspecified"  # 0.0.0.0 and :: connect to the local host on Linux
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link_local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in SHARED:
        return "shared"
    if ip.is_private:
        return "private"
    return "global" if ip.is_global else "reserved"


def _unwrap(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


@dataclass(frozen=True)
class HostRule:
    """One allowlist entry: a name, a domain's subdomains (``suffix``) or an address network."""

    entry: str
    kind: Literal["name", "suffix", "network"]
    name: str = ""  # lowercased ASCII (IDNA); for suffix: ".example.com"
    network: IPNetwork | None = None
    port: int | None = None  # None: any port

    def allows_name(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.kind == "name":
            return host == self.name
        return self.kind == "suffix" and host.endswith(self.name) and len(host) > len(self.name)

    def allows_address(self, ip: IPAddress, port: int) -> bool:
        if self.kind != "network" or self.network is None or (self.port is not None and self.port != port):
            return False
        return ip.version == self.network.version and ip in self.network


def parse_rule(entry: str) -> HostRule:
    """An allowlist entry as a rule; ``ValueError`` says what is wrong with it."""
    text = entry.strip()
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"{entry!r}: expected a host name, an address or a network")
    port: int | None = None
    if text.startswith("["):
        inner, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{entry!r}: expected [IPv6] or [IPv6]:PORT")
        text, port = inner, _port(rest[1:], entry) if rest else None
        return HostRule(entry, "network", network=_network(text, entry), port=port)
    try:
        return HostRule(entry, "network", network=ipaddress.ip_network(text, strict=False))
    except ValueError:
        pass
    if text.count(":") == 1:
        text, _, raw_port = text.rpartition(":")
        port = _port(raw_port, entry)
        try:
            return HostRule(entry, "network", network=ipaddress.ip_network(text, strict=False), port=port)
        except ValueError:
            pass
    elif ":" in text:
        raise ValueError(f"{entry!r}: write an IPv6 address with a port as [ADDRESS]:PORT")
    if text.startswith("*."):
        return HostRule(entry, "suffix", name="." + _name(text[2:], entry), port=port)
    return HostRule(entry, "name", name=_name(text, entry), port=port)


def parse_allowlist(entries: Iterable[str]) -> tuple[HostRule, ...]:
    return tuple(parse_rule(e) for e in entries)


def _port(raw: str, entry: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) < 65536:
        raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")
    return int(raw)


def _network(text: str, entry: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{entry!r}: {text!r} is not an IP address or network") from None


def _name(text: str, entry: str) -> str:
    name = normalize_host(text)
    if not name or len(name) > 253 or not all(_label_ok(label) for label in name.split(".")):
        raise ValueError(f"{entry!r}: not a host name")
    return name


def _label_ok(label: str) -> bool:
    return 0 < len(label) <= 63 and all(c.isascii() and (c.isalnum() or c in "-_") for c in label)


def normalize_host(host: str) -> str:
    """A requested host as rules compare it: lowercase, no brackets, no final dot, IDNA for non-ASCII
    names (an unencodable name is returned as given, lowercased: it matches no rule)."""
    host = host.strip().strip("[]").lower()
    host = host[:-1] if host.endswith(".") else host
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return host
    return host


def as_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is a literal one (``[::1]`` included), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class EgressDecision:
    """Whether a connection to ``host``:``port`` may go out, and to which address."""

    allowed: bool
    why: str
    address: str | None = None  # the address to connect to (allowed), or the one refused
    address_class: AddressClass | None = None


def name_allowed(rules: Sequence[HostRule], host: str, port: int) -> bool:
    """The first question, before any resolution: does an entry name this host (or address)?"""
    literal = as_address(host)
    if literal is not None:
        ip = _unwrap(literal)
        return any(r.allows_address(ip, port) or r.allows_address(literal, port) for r in rules)
    name = normalize_host(host)
    return any(r.allows_name(name, port) for r in rules)


def decide(rules: Sequence[HostRule], host: str, port: int, addresses: Sequence[str]) -> EgressDecision:
    """The decision for a request to ``host``:``port`` that resolves to ``addresses`` (for an address
    literal: itself), in order of preference. The first acceptable address wins; connect to exactly it."""
    if not name_allowed(rules, host, port):
        return EgressDecision(False, "not in allowed_hosts")
    if not addresses:
        return EgressDecision(False, "does not resolve")
    refused: EgressDecision | None = None
    for raw in addresses:
        try:
            literal = ipaddress.ip_address(raw)
        except ValueError:
            continue
        kind = classify_address(literal)
        explicit = any(
            r.allows_address(_unwrap(literal), port) or r.allows_address(literal, port) for r in rules
        )
        if kind == "global" or explicit:
            why = "allowed" if kind == "global" else f"allowed: {kind} address named in allowed_hosts"
            return EgressDecision(True, why, str(literal), kind)
        refused = refused or EgressDecision(
            False,
            f"resolves to a {kind.replace('_', '-')} address, which allowed_hosts does not name",
            str(literal),
            kind,
        )
    return refused or EgressDecision(False, "resolves to no IP address")
