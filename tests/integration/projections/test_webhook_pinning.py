"""The sender connects to the address it checked, and TLS still verifies the name: a real
TLS receiver on 127.0.0.1 with a certificate for `hooks.pinned.test` (from a CA made here).
The request goes to the checked IP; the name is in `Host` and in SNI, and the certificate
is verified against the name, not the IP (so pinning the address costs no TLS safety)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.projections.notifications import post_pinned
from shared.webhooks.url_policy import UrlPolicy, resolve_webhook

NAME = "hooks.pinned.test"


def _certificates(tmp: Path) -> tuple[Path, Path, Path]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dealreg test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tmp / "ca.pem", tmp / "leaf.pem", tmp / "leaf.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class TlsReceiver:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.sni: list[str | None] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode()
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((request_line, headers))
        writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[tuple[TlsReceiver, ssl.SSLContext]]:
    ca, leaf, key = _certificates(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(leaf, key)
    found = TlsReceiver()
    server_context.sni_callback = lambda _sock, name, _ctx: found.sni.append(name)
    server = await asyncio.start_server(found.handle, "127.0.0.1", 0, ssl=server_context)
    found.port = server.sockets[0].getsockname()[1]
    client_context = ssl.create_default_context(cafile=str(ca))
    try:
        yield found, client_context
    finally:
        server.close()
        await server.wait_closed()


async def test_the_request_goes_to_the_checked_address_with_the_name_in_host_and_sni(
        receiver: tuple[TlsReceiver, ssl.SSLContext]) -> None:
    found, trust = receiver
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]
    resolved = await resolve_webhook(f"https://{NAME}:{found.port}/hook?x=1",
                                     UrlPolicy(allow_loopback=True), resolver)
    async with httpx.AsyncClient(verify=trust, trust_env=False) as http:
        response = await post_pinned(http, resolved, b"{}", {"webhook-id": "msg_1"}, 5.0)
    assert response.status_code == 204
    [(line, headers)] = found.requests
    assert found.sni == [NAME]
    assert line.startswith("POST /hook?x=1 ")
    assert headers["host"] == f"{NAME}:{found.port}"
    assert headers["webhook-id"] == "msg_1"
    assert lookups == [NAME]


async def test_the_certificate_is_verified_against_the_name_not_the_address(
        receiver: tuple[TlsReceiver, ssl.SSLContext]) -> None:
    found, trust = receiver

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]
    # Another name pinned to the same address: the receiver's certificate is not for it.
    resolved = await resolve_webhook(f"https://other.pinned.test:{found.port}/hook",
                                     UrlPolicy(allow_loopback=True), resolver)
    async with httpx.AsyncClient(verify=trust, trust_env=False) as http:
        with pytest.raises(httpx.ConnectError, match=r"(?i)certificate|hostname"):
            await post_pinned(http, resolved, b"{}", {}, 5.0)
    assert found.requests == []
    assert resolved.addresses == (ipaddress.ip_address("127.0.0.1"),)
