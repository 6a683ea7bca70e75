"""The webhook URL policy (shared/webhooks/url_policy.py): the one checker the PUT endpoints
and the sender use. Every URL observed in issue 13 item 4 is refused with a reason, numeric
hosts are read the way libc reads them, and a fuzzer checks that no encoding of a
non-public address gets through and that nothing but `UnsafeUrl` is ever raised."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shared.settings import Settings
from shared.webhooks.url_policy import (
    IPAddress,
    Unresolvable,
    UnsafeUrl,
    UrlPolicy,
    address_refusal,
    check_webhook_url,
    parse_webhook_url,
    resolve_webhook,
)

STRICT = UrlPolicy()
LOOPBACK_OK = UrlPolicy(allow_loopback=True)


@pytest.mark.parametrize(("url", "reason"), [
    ("http://169.254.169.254/latest/meta-data", "cloud metadata address"),
    ("http://[fd00:ec2::254]/", "cloud metadata address"),
    ("http://metadata.google.internal./", "metadata"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ("http://0x7f000001/", "loopback address (127.0.0.1)"),
    ("http://2130706433/", "loopback address (127.0.0.1)"),
    ("http://127.1/", "loopback address (127.0.0.1)"),
    ("http://0177.0.0.1/", "loopback address (127.0.0.1)"),
    ("http://100.100.100.200/", "cloud metadata address"),
    ("http://10.0.0.1/", "private address"),
    ("HTTP://127.0.0.1/", "loopback address"),
    ("http://127.0.0.1/", "loopback address"),
    ("http://example.com:99999/", "invalid port 99999"),
    ("http://example.com:0/", "invalid port 0"),
    ("http://exa\u202emple.com/", "U+202E"),
    ("http://" + "a" * 64 + ".example.com/", "longer than 63"),
    ("http://" + ".".join(["a" * 60] * 5) + "/", "longer than 253"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[::ffff:127.0.0.1]/", "loopback address (127.0.0.1, embedded in IPv6)"),
    ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
    ("http://[64:ff9b::10.0.0.1]/", "private address (10.0.0.1, embedded in IPv6)"),
    ("http://[2002:a9fe:a9fe::]/", "cloud metadata"),
    ("http://[fd12:3456::1]/", "private address"),
    ("http://[::]/", "unspecified"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://0/", "unspecified"),
    ("http://100.64.0.1/", "shared (CGNAT)"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "reserved"),
    ("ftp://example.com/x", "only http and https"),
    ("javascript:alert(1)", "only http and https"),
    ("http://user:pass@example.com/", "user information"),
    ("http://example.com@127.0.0.1/", "user information"),
    ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "loopback"),  # full-width
    ("http://localhost:8080/", "loopback name"),
    ("http://app.localhost/", "loopback name"),
    ("http://example.123/", "ends in a number"),
    ("http://1.2.3.4.5/", "ends in a number"),
    ("http://256.1.1.1/", "out of range"),
    ("http://08.1.1.1/", "not a valid IPv4"),
    ("http://xn--a.com/", "IDNA"),
    ("http://\u0661\u0662\u0663.com/", "IDNA"),
    ("http://exa\u200bmple.com/", "U+200B"),
    ("http://example.com\u0085/", "U+0085"),
    ("http://example.com\\@evil/", "backslash"),
    ("http://[fe80::1%25eth0]/", "zone"),
    ("http://ex%61mple.com/", "percent"),
    ("http:///path", "no host"),
    ("http:example.com", "no host"),
    ("http://[::1/", "closing bracket"),
])
def test_every_unsafe_or_malformed_url_is_refused_with_its_reason(url: str,
                                                                   reason: str) -> None:
    with pytest.raises(UnsafeUrl) as refused:
        check_webhook_url(url, STRICT)
    assert reason in refused.value.reason


@pytest.mark.parametrize("url", [
    "https://hooks.acme.example/dealreg", "HTTPS://Hooks.Acme.Example:8443/x?y=1#frag",
    "http://8.8.8.8/", "http://[2606:4700:4700::1111]/", "http://bücher.de/hook",
    "http://a-b_c.example.com./"])
def test_public_urls_pass_in_any_scheme_case(url: str) -> None:
    target = check_webhook_url(url, STRICT)
    assert target.scheme in ("http", "https") and "#" not in target.target


def test_the_target_keeps_the_name_for_host_and_connects_to_the_checked_address() -> None:
    target = parse_webhook_url("HTTPS://Hooks.Example.COM:8443/a/b?c=d#e")
    assert (target.scheme, target.host, target.port, target.target) == (
        "https", "hooks.example.com", 8443, "/a/b?c=d")
    assert target.host_header == "hooks.example.com:8443"
    assert target.url_for(ipaddress.ip_address("2606:4700::1")) == (
        "https://[2606:4700::1]:8443/a/b?c=d")
    assert parse_webhook_url("http://example.com/").host_header == "example.com"


def test_upper_and_lower_case_schemes_are_the_same_url() -> None:
    assert parse_webhook_url("HTTP://127.0.0.1/") == parse_webhook_url("http://127.0.0.1/")
    for url in ("HTTP://127.0.0.1/", "http://127.0.0.1/"):
        assert check_webhook_url(url, LOOPBACK_OK).ip == ipaddress.ip_address("127.0.0.1")


def test_loopback_needs_the_setting_or_an_allowed_network_and_metadata_never_passes() -> None:
    assert check_webhook_url("http://127.0.0.1:9/x", LOOPBACK_OK).port == 9
    assert check_webhook_url("http://localhost:9/x", LOOPBACK_OK).host == "localhost"
    allowed = UrlPolicy.of(allow_loopback=False, allowed_networks=["127.0.0.0/8",
                                                                   "10.0.0.0/8"])
    assert check_webhook_url("http://10.1.2.3/", allowed).port == 80
    everything = UrlPolicy.of(allow_loopback=True, allowed_networks=[
        "0.0.0.0/0", "::/0"])
    for url in ("http://169.254.169.254/", "http://100.100.100.200/",
                "http://[fd00:ec2::254]/", "http://[fe80::1]/", "http://224.0.0.1/",
                "http://0.0.0.0/", "http://metadata.google.internal/"):
        with pytest.raises(UnsafeUrl):
            check_webhook_url(url, everything)


def test_serve_refuses_loopback_by_default() -> None:
    policy = UrlPolicy.from_settings(Settings())
    assert policy == STRICT
    with pytest.raises(UnsafeUrl):
        check_webhook_url("http://127.0.0.1:8000/", policy)


def _static_resolver(*answers: Sequence[str]):  # type: ignore[no-untyped-def]
    calls: list[str] = []

    async def resolve(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]
    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


async def test_every_resolved_address_is_checked_and_returned_for_the_connection() -> None:
    public = _static_resolver(["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
    resolved = await resolve_webhook("https://hooks.example.com/x", STRICT, public)
    assert [str(a) for a in resolved.addresses] == [
        "93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    mixed = _static_resolver(["93.184.215.14", "10.0.0.7"])
    with pytest.raises(UnsafeUrl, match="resolves to a private address"):
        await resolve_webhook("https://hooks.example.com/x", STRICT, mixed)
    link_local = _static_resolver(["fe80::1%eth0"])
    with pytest.raises(UnsafeUrl, match="resolves to a link-local address"):
        await resolve_webhook("https://hooks.example.com/x", STRICT, link_local)
    # Literal addresses are never looked up.
    never = _static_resolver(["10.0.0.1"])
    assert (await resolve_webhook("http://8.8.8.8/", STRICT, never)).addresses == (
        ipaddress.ip_address("8.8.8.8"),)
    assert never.calls == []  # type: ignore[attr-defined]


async def test_a_name_that_does_not_resolve_is_unresolvable_not_unsafe() -> None:
    async def nothing(host: str, port: int) -> Sequence[str]:
        raise Unresolvable(f"cannot resolve {host}")
    with pytest.raises(Unresolvable):
        await resolve_webhook("https://no-such-name.invalid/", STRICT, nothing)
    with pytest.raises(Unresolvable):
        await resolve_webhook("https://empty.example/", STRICT, _static_resolver([]))


# --- fuzzing ---------------------------------------------------------------------------

def _non_public(ip: IPAddress) -> bool:
    """An independent oracle (not the checker's code): what must never be reached."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _non_public(ip.ipv4_mapped)
        if ip in ipaddress.ip_network("64:ff9b::/96"):
            return _non_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            return _non_public(ip.sixtofour)
    return not ip.is_global or ip in ipaddress.ip_network("100.64.0.0/10") or (
        ip.is_multicast or ip.is_reserved or ip.is_private or ip.is_loopback)


_special_v4 = st.sampled_from([
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32"]).flatmap(
    lambda n: st.integers(0, ipaddress.ip_network(n).num_addresses - 1).map(
        lambda i, n=n: ipaddress.ip_network(n)[i]))  # type: ignore[misc]
_any_v4 = st.one_of(_special_v4, st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address))
_special_v6 = st.sampled_from([
    "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "2001:db8::/32",
    "64:ff9b:1::/48", "2001::/32", "100::/64"]).flatmap(
    lambda n: st.integers(0, min(ipaddress.ip_network(n).num_addresses - 1, 2**64)).map(
        lambda i, n=n: ipaddress.ip_network(n)[i]))  # type: ignore[misc]
_any_v6 = st.one_of(
    _special_v6, st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
    _any_v4.map(lambda a: ipaddress.IPv6Address(f"::ffff:{a}")),
    _any_v4.map(lambda a: ipaddress.IPv6Address((0x64FF9B << 96) | int(a))),
    _any_v4.map(lambda a: ipaddress.IPv6Address((0x2002 << 112) | (int(a) << 80))))


@st.composite
def _encoded_v4(draw: st.DrawFn) -> tuple[str, IPAddress]:
    """An IPv4 address written as a resolver reads it: 1-4 parts in decimal, octal, hex."""
    ip = draw(_any_v4)
    value = int(ip)
    parts_count = draw(st.integers(1, 4))
    octets = list(ip.packed)
    if parts_count == 4:
        numbers = octets
    elif parts_count == 3:
        numbers = [octets[0], octets[1], value & 0xFFFF]
    elif parts_count == 2:
        numbers = [octets[0], value & 0xFFFFFF]
    else:
        numbers = [value]

    def write(n: int) -> str:
        style = draw(st.sampled_from(["dec", "oct", "hex", "HEX"]))
        if style == "oct":
            return "0" + format(n, "o")
        if style == "hex":
            return "0x" + format(n, "x")
        if style == "HEX":
            return "0X" + format(n, "X")
        return str(n)
    text = ".".join(write(n) for n in numbers)
    if draw(st.booleans()):  # the same after IDNA (UTS 46) mapping: full-width forms
        wide = {**{c: chr(0xFF10 + int(c)) for c in "0123456789"}, "x": "\uff58",
                "X": "\uff38", ".": draw(st.sampled_from(["\u3002", "\uff0e", "\uff61"]))}
        text = "".join(wide.get(c, c) if draw(st.booleans()) else c for c in text)
    return text, ip


_hosts = st.one_of(
    _encoded_v4(),
    _any_v6.map(lambda a: (f"[{a}]", a)),
    _any_v6.map(lambda a: (f"[{a.exploded.upper()}]", a)),
)


@settings(max_examples=1500, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(host=_hosts, scheme=st.sampled_from(["http", "HTTP", "https", "HtTpS"]),
       port=st.one_of(st.none(), st.integers(-5, 100_000)), trailing_dot=st.booleans())
@example(host=("0x7f000001", ipaddress.IPv4Address("127.0.0.1")), scheme="http", port=None,
         trailing_dot=False)
def test_no_encoding_of_a_non_public_address_is_ever_accepted(
        host: tuple[str, IPAddress], scheme: str, port: int | None,
        trailing_dot: bool) -> None:
    text, ip = host
    if trailing_dot and not text.startswith("["):
        text += "." if text.isascii() else "\u3002"  # an ideographic full stop
    url = f"{scheme}://{text}{'' if port is None else f':{port}'}/hook"
    if port is None or 1 <= port <= 65535:  # read as the resolver reads it
        assert parse_webhook_url(url).ip == ip, url
    try:
        target = check_webhook_url(url, STRICT)
    except UnsafeUrl:
        return
    assert target.ip == ip, (url, target)
    assert not _non_public(ip), url
    assert port is None or 1 <= port <= 65535


_url_text = st.one_of(
    st.text(max_size=80),
    st.builds(lambda s, a, p: f"{s}://{a}{p}",
              st.sampled_from(["http", "HTTPS", "ftp", "", "h\u0130ttp"]),
              st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
              st.text(max_size=20)),
    st.builds(lambda a, b: f"http://{a}.{b}/",
              st.text(alphabet="0123456789xXabcdef.", max_size=20),
              st.text(alphabet="0123456789xXabcdef", max_size=12)),
)


@settings(max_examples=3000, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(url=_url_text)
def test_any_text_is_either_a_checked_target_or_a_refusal_never_a_crash(url: str) -> None:
    try:
        target = check_webhook_url(url, STRICT)
    except UnsafeUrl as refused:
        assert refused.reason
        return
    assert target.scheme in ("http", "https") and 1 <= target.port <= 65535
    assert target.host.isascii() and len(target.host) <= 253
    if target.ip is not None:
        assert not _non_public(target.ip), url
    else:  # a name the resolver is asked about, never an address in disguise
        with pytest.raises(ValueError):
            ipaddress.ip_address(target.host)
        try:
            socket.inet_aton(target.host)
        except OSError:
            pass
        else:
            raise AssertionError(f"{url!r}: {target.host} is an address to libc")


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(answers=st.lists(st.one_of(_any_v4, _any_v6).map(str), min_size=1, max_size=4))
def test_a_name_passes_only_when_every_address_it_resolves_to_is_public(
        answers: list[str]) -> None:
    async def resolver(host: str, port: int) -> Sequence[str]:
        return answers

    async def run() -> None:
        try:
            resolved = await resolve_webhook("https://hooks.example.com/", STRICT, resolver)
        except UnsafeUrl:
            assert any(_non_public(ipaddress.ip_address(a)) for a in answers)
            return
        assert not any(_non_public(a) for a in resolved.addresses)
        assert {str(a) for a in resolved.addresses} == {
            str(ipaddress.ip_address(a)) for a in answers}
    asyncio.run(run())


@given(ip=st.one_of(_any_v4, _any_v6))
@settings(max_examples=500, deadline=None, derandomize=True, database=None)
def test_the_oracle_and_the_checker_agree_on_every_address(ip: IPAddress) -> None:
    assert (address_refusal(ip, STRICT) is not None) == _non_public(ip), ip
