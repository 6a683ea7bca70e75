"""The webhook URL policy: which URLs a webhook may target, in one place.

The same checker runs when a URL is stored (`PUT /v1/owners/{id}`, `PUT /v1/partners/{id}`:
a 422 naming the reason) and when a delivery is sent (the delivery is `disabled` with the
reason). The sender connects to an address this module checked (`resolve_webhook`): DNS is
resolved once, every address is checked, and the connection goes to that address with the
original name in `Host` and TLS SNI, so a second resolution cannot rebind it.

What is refused:
- schemes other than http and https (compared case-insensitively), user information
  (`user:pass@`), ports outside 1-65535, backslashes, whitespace and control, format
  (bidi overrides, zero-width) or separator characters anywhere in the URL;
- host names that are not valid DNS names: a label over 63 or a name over 253 octets,
  IDNA (UTS 46 / IDNA 2008) failures, percent-encoding, IPv6 zone ids;
- numeric hosts are read the way libc's `inet_aton` reads them (`0x7f000001`,
  `2130706433`, `127.1`, `0177.0.0.1`), and a name whose last label is a number is refused
  (it is an address in disguise, or a malformed one);
- cloud metadata names (`metadata.google.internal`, `*.internal`, ...) and addresses
  (169.254.169.254, 169.254.170.2, 100.100.100.200, fd00:ec2::254): always;
- link-local, multicast, unspecified, reserved and broadcast addresses: always;
- loopback: unless `allow_loopback` (the default in `dealreg dev`) or an allowed network;
- private, shared (CGNAT 100.64/10, Alibaba's metadata included: refused always), ULA
  (fc00::/7) and every other not globally routable address: unless in an allowed network;
- IPv6 forms that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, NAT64
  `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the embedded address; NAT64 local-use
  (`64:ff9b:1::/48`), Teredo and IPv4-compatible addresses are refused.

A refusal is `UnsafeUrl` (a `ValueError`) carrying the reason; a name that does not
resolve is `Unresolvable` (the sender retries it; a PUT accepts it, since DNS may follow).
The parsing and the checks are pure; `resolve_webhook` does the one DNS look-up.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Final

import idna

from shared.settings import Settings

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

MAX_URL_LENGTH: Final = 2000
DNS_TIMEOUT_SECONDS: Final = 5.0

METADATA_ADDRESSES: Final = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "169.254.170.23", "100.100.100.200",
    "fd00:ec2::254", "fd00:ec2::23"))
METADATA_HOSTS: Final = frozenset({
    "metadata.google.internal", "metadata.goog", "metadata", "instance-data",
    "instance-data.ec2.internal", "metadata.azure.internal"})
INTERNAL_SUFFIXES: Final = (".internal",)
LOOPBACK_NAMES: Final = ("localhost",)

_CGNAT: Final = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK: Final = ipaddress.ip_network("0.0.0.0/8")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL: Final = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE: Final = ipaddress.ip_network("::/96")

# Characters refused anywhere in a URL: every "other" (Cc control, Cf format incl. bidi
# overrides and zero-width, Cs surrogates, Co private use, Cn unassigned) and every
# separator (Zs spaces, Zl, Zp).
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})
_SCHEME: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_LABEL: Final = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMBER: Final = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class UnsafeUrl(ValueError):
    """The URL is one a webhook must never target; `reason` says why (for people)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unresolvable(Exception):
    """The host name did not resolve (now): not proven unsafe, but nothing to connect to."""


@dataclass(frozen=True)
class UrlPolicy:
    allow_loopback: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, *, allow_loopback: bool, allowed_networks: Iterable[str]) -> UrlPolicy:
        return cls(allow_loopback, tuple(ipaddress.ip_network(n, strict=False)
                                         for n in allowed_networks))

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlPolicy:
        return cls.of(allow_loopback=settings.webhook_allow_loopback,
                      allowed_networks=settings.webhook_allowed_networks)

    def allows(self, ip: IPAddress) -> bool:
        return any(ip.version == n.version and ip in n for n in self.allowed_networks)


@dataclass(frozen=True)
class WebhookTarget:
    """A parsed webhook URL: what the sender connects to and what it says it is."""

    scheme: str
    host: str  # ASCII: an IDNA-encoded name, or an IP address's canonical text
    ip: IPAddress | None  # the host is an address (in whatever notation it was written)
    port: int
    target: str  # path and query ("/" when empty); the fragment is dropped

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if isinstance(self.ip, IPv6Address) else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def url_for(self, address: IPAddress) -> str:
        """The URL that connects to `address` (a checked one) for this target."""
        host = f"[{address}]" if isinstance(address, IPv6Address) else str(address)
        return f"{self.scheme}://{host}:{self.port}{self.target}"


@dataclass(frozen=True)
class ResolvedTarget:
    target: WebhookTarget
    addresses: tuple[IPAddress, ...]  # every one checked; connect to these only


# --- parsing ---------------------------------------------------------------------------


def parse_webhook_url(url: object) -> WebhookTarget:
    """Parse (never resolve) a webhook URL; `UnsafeUrl` if it is malformed or refused by
    its form alone (scheme, user information, port, host syntax)."""
    if not isinstance(url, str):
        raise UnsafeUrl("the URL must be a string")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    for char in url:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise UnsafeUrl(f"the URL contains a control, format or space character "
                            f"(U+{ord(char):04X})")
    if "\\" in url:
        raise UnsafeUrl("the URL contains a backslash")
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else ""
    if scheme not in _DEFAULT_PORTS:
        raise UnsafeUrl("only http and https URLs are allowed")
    rest = url[match.end():] if match else ""
    if not rest.startswith("//"):
        raise UnsafeUrl("the URL has no host (expected scheme://host/...)")
    rest = rest[2:]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        raise UnsafeUrl("user information (user:password@) is not allowed in the URL")
    host_text, port = _split_port(authority, _DEFAULT_PORTS[scheme])
    if not host_text:
        raise UnsafeUrl("the URL has no host")
    if "%" in host_text:
        raise UnsafeUrl("percent-encoded hosts and IPv6 zone ids are not allowed")
    tail = tail.split("#", 1)[0]
    target = tail if tail.startswith("/") else "/" + tail
    if host_text.startswith("["):
        try:
            ip: IPAddress = IPv6Address(host_text[1:-1])
        except ValueError as exc:
            raise UnsafeUrl("the host is not a valid IPv6 address") from exc
        return WebhookTarget(scheme, str(ip), ip, port, target)
    host = _host_name(host_text)
    address = _numeric_ipv4(host)
    if address is not None:
        return WebhookTarget(scheme, str(address), address, port, target)
    return WebhookTarget(scheme, host, None, port, target)


def _split_port(authority: str, default: int) -> tuple[str, int]:
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise UnsafeUrl("the host is not a valid IPv6 address (no closing bracket)")
        host, after = authority[:close + 1], authority[close + 1:]
        if after and not after.startswith(":"):
            raise UnsafeUrl("unexpected text after the IPv6 address")
        port_text = after[1:] if after else None
    elif ":" in authority:
        host, port_text = authority.split(":", 1)
    else:
        host, port_text = authority, None
    if not port_text:  # absent, or empty after the colon (RFC 3986: the default)
        return host, default
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        raise UnsafeUrl(f"invalid port {port_text[:20]!r}: a number from 1 to 65535")
    number = int(port_text)
    if not 1 <= number <= 65535:
        raise UnsafeUrl(f"invalid port {number}: a number from 1 to 65535")
    return host, number


def _host_name(text: str) -> str:
    name = text
    if not name.isascii():  # UTS 46 maps full-width digits and dots (U+3002) to ASCII
        try:
            mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
            root = mapped.endswith(".")
            name = idna.encode(mapped[:-1] if root else mapped).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise UnsafeUrl(f"the host is not a valid internationalized domain name "
                            f"(IDNA: {exc})"[:300]) from exc
        name += "." if root else ""
    name = name[:-1] if name.endswith(".") else name  # one trailing dot: the DNS root
    if not name:
        raise UnsafeUrl("the URL has no host")
    name = name.lower()
    if len(name) > 253:
        raise UnsafeUrl("the host name is longer than 253 characters")
    labels = name.split(".")
    for label in labels:
        if not label:
            raise UnsafeUrl("the host name has an empty label")
        if len(label) > 63:
            raise UnsafeUrl("a label of the host name is longer than 63 characters")
        if not _LABEL.match(label):
            raise UnsafeUrl(f"the host name label {label!r} has characters a DNS name "
                            "cannot have")
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError, ValueError) as exc:
                raise UnsafeUrl(f"the host label {label!r} is not valid IDNA") from exc
    return name


def _numeric_ipv4(host: str) -> IPv4Address | None:
    """The IPv4 address a resolver reads from a numeric host (inet_aton: one to four parts,
    decimal, octal with a leading 0, hex with 0x); None for a name. A name whose last label
    is a number is refused: it is an address in disguise or a malformed one."""
    parts = host.split(".")
    if not _NUMBER.match(parts[-1]):
        return None
    if not all(_NUMBER.match(p) for p in parts) or len(parts) > 4:
        raise UnsafeUrl("the host ends in a number but is not an IPv4 address")
    try:
        values = [_inet_number(p) for p in parts]
    except ValueError as exc:  # 08, 09: not octal
        raise UnsafeUrl("the host is not a valid IPv4 address") from exc
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(parts)):
        raise UnsafeUrl("the host is not a valid IPv4 address (a part is out of range)")
    number = last
    for index, value in enumerate(head):
        number += value << (8 * (3 - index))
    return IPv4Address(number)


def _inet_number(part: str) -> int:
    if part.startswith("0x"):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)
    return int(part, 10)


# --- addresses -------------------------------------------------------------------------


def address_refusal(ip: IPAddress, policy: UrlPolicy) -> str | None:
    """Why a webhook may not connect to `ip` ("a link-local address"), or None."""
    if isinstance(ip, IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            why = address_refusal(embedded, policy)
            return f"{why} ({embedded}, embedded in IPv6)" if why else None
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified or ip in _THIS_NETWORK:
        return "an unspecified address"
    if ip.is_loopback:
        return None if policy.allow_loopback or policy.allows(ip) else "a loopback address"
    if isinstance(ip, IPv6Address) and (
            ip in _NAT64_LOCAL or ip.teredo is not None or ip in _IPV4_COMPATIBLE):
        return "a reserved IPv6 transition address"
    if ip.is_reserved:
        return "a reserved address"
    if ip in _CGNAT:
        return None if policy.allows(ip) else "a shared (CGNAT) address"
    if ip.is_private:
        return None if policy.allows(ip) else "a private address"
    if not ip.is_global:
        return None if policy.allows(ip) else "not a globally routable address"
    return None


def _embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def check_address(ip: IPAddress, policy: UrlPolicy, *, resolved: bool = False) -> None:
    why = address_refusal(ip, policy)
    if why is not None:
        verb = "resolves to" if resolved else "is"
        raise UnsafeUrl(f"the host {verb} {why} ({ip})")


def check_webhook_url(url: object, policy: UrlPolicy) -> WebhookTarget:
    """Everything that can be decided without DNS: the form, a literal address, names that
    are always refused (cloud metadata) or loopback by definition (localhost)."""
    target = parse_webhook_url(url)
    if target.ip is not None:
        check_address(target.ip, policy)
        return target
    host = target.host
    if host in METADATA_HOSTS or host.endswith(INTERNAL_SUFFIXES):
        raise UnsafeUrl(f"the host {host} is a cloud metadata or internal-only name")
    if (any(host == n or host.endswith("." + n) for n in LOOPBACK_NAMES)
            and not policy.allow_loopback):
        raise UnsafeUrl(f"the host {host} is a loopback name")
    return target


# --- resolution (the only I/O) ---------------------------------------------------------

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of `host`, from the system resolver (getaddrinfo)."""
    try:
        infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM), DNS_TIMEOUT_SECONDS)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise Unresolvable(f"cannot resolve {host}: {exc or type(exc).__name__}") from exc
    return [str(info[4][0]) for info in infos]


async def resolve_webhook(url: object, policy: UrlPolicy,
                          resolver: Resolver = system_resolver) -> ResolvedTarget:
    """Check `url`, resolve its host once and check every address it resolves to.
    The sender connects only to the returned addresses."""
    target = check_webhook_url(url, policy)
    if target.ip is not None:
        return ResolvedTarget(target, (target.ip,))
    found = await resolver(target.host, target.port)
    addresses: list[IPAddress] = []
    for text in found:
        try:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError as exc:
            raise UnsafeUrl(f"the host resolves to something that is not an address "
                            f"({text[:60]!r})") from exc
        check_address(ip, policy, resolved=True)
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise Unresolvable(f"{target.host} resolves to no address")
    return ResolvedTarget(target, tuple(addresses))
