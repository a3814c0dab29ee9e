"""The egress guard: what may be reached, checked when a URL is accepted and again at
every connection."""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from outrider import egress
from outrider.config import parse_allowed_cidrs
from outrider.egress import EgressRefused, IPAddress, check_url

REFUSED = [
    # schemes and credentials
    "ftp://8.8.8.8/file",
    "file:///etc/passwd",
    "gopher://8.8.8.8:70/",
    "javascript:alert(1)",
    "//8.8.8.8/no-scheme",
    "http://user:secret@8.8.8.8/",
    "http://token@8.8.8.8/",
    # loopback, in every spelling
    "http://127.0.0.1/",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://0x7f.1/",
    "http://[::1]/",
    "http://localhost/",
    "http://localhost./",
    # private, link-local, metadata, CGNAT, "this network"
    "http://10.0.0.1/",
    "http://012.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1:8080/",
    "http://169.254.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/",
    "http://100.64.0.1/",
    "http://100.127.255.254/",
    "http://0.0.0.0/",
    "http://0/",
    "http://0.1.2.3/",
    # multicast, broadcast, reserved, benchmarking, documentation
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://[ff02::1]/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://198.18.0.1/",
    "http://198.19.255.255/",
    "http://192.0.2.1/",
    "http://198.51.100.7/",
    "http://203.0.113.9/",
    "http://[2001:db8::1]/",
    # IPv6 unique-local, site-local, unspecified, metadata
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[fd00:ec2::254]/",
    "http://[fec0::1]/",
    "http://[::]/",
    # IPv4 wrapped in IPv6: NAT64, 6to4, Teredo, mapped, compatible
    "http://[64:ff9b::7f00:1]/",
    "http://[64:ff9b::808:808]/",
    "http://[2002:7f00:1::]/",
    "http://[2001::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::127.0.0.1]/",
    "http://[::10.0.0.1]/",
    # names: resolving to a refused address, to a mix, or to nothing
    "http://internal.corp.test/",
    "http://mixed.corp.test/",
    "http://nothing.corp.test/",
]

PASSING = [
    "https://8.8.8.8/hook",
    "http://1.1.1.1:8080/x",
    "https://[2606:4700:4700::1111]/",
    "https://[::ffff:8.8.8.8]/",
    "https://hooks.public.test/outrider",
]

FAKE_DNS: dict[str, tuple[str, ...]] = {
    "internal.corp.test": ("10.1.2.3",),
    "mixed.corp.test": ("93.184.215.14", "192.168.0.10"),
    "nothing.corp.test": (),
    "hooks.public.test": ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
}


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    real = egress.resolve

    async def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
        if host in FAKE_DNS:
            return tuple(ipaddress.ip_address(a) for a in FAKE_DNS[host])
        return await real(host, port)

    monkeypatch.setattr(egress, "resolve", resolve)


LOOPBACK = parse_allowed_cidrs("127.0.0.0/8")


def resolve_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> list[str]:
    """Make every name resolve to `addresses`; returns the names asked for, in order."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
        asked.append(host)
        return tuple(ipaddress.ip_address(address) for address in addresses)

    monkeypatch.setattr(egress, "resolve", resolve)
    return asked


async def post_through_guard(url: str, client: httpx.AsyncClient | None = None) -> httpx.Response:
    """A guarded POST with loopback allowed, as the delivery job makes it."""
    async with client or httpx.AsyncClient() as session:
        return await egress.post(session, url, LOOPBACK, b"{}", {}, timeout=5)


def test_the_table_is_large_enough() -> None:
    assert len(REFUSED) >= 40


@pytest.mark.parametrize("url", REFUSED)
async def test_refused(url: str) -> None:
    with pytest.raises(EgressRefused) as refused:
        await check_url(url)
    assert str(refused.value)  # always a reason a person can read


@pytest.mark.parametrize("url", PASSING)
async def test_passing(url: str) -> None:
    checked = await check_url(url)
    assert checked.addresses


async def test_reasons_say_what_is_wrong() -> None:
    with pytest.raises(EgressRefused, match="does not resolve to any address"):
        await check_url("http://nothing.corp.test/")
    with pytest.raises(
        EgressRefused, match=re.escape("192.168.0.10, which is not a public address")
    ):
        await check_url("http://mixed.corp.test/")
    with pytest.raises(EgressRefused, match="credentials"):
        await check_url("http://a:b@8.8.8.8/")


async def test_an_operator_can_allow_internal_networks() -> None:
    allowed = parse_allowed_cidrs("10.0.0.0/8, 192.168.0.0/16")
    assert (await check_url("http://internal.corp.test/", allowed)).addresses
    assert (await check_url("http://[::ffff:10.0.0.1]/", allowed)).addresses
    with pytest.raises(EgressRefused):
        await check_url("http://127.0.0.1/", allowed)


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        _Recorder.seen.append(dict(self.headers.items()))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()


@pytest.fixture
def local_server() -> Iterator[HTTPServer]:
    _Recorder.seen = []
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


async def test_dns_rebinding_gains_nothing(
    monkeypatch: pytest.MonkeyPatch, local_server: HTTPServer
) -> None:
    """Public when the URL is accepted, 127.0.0.1 when it is connected to: refused, and
    nothing reaches the local server."""
    answers = iter(["93.184.215.14", "127.0.0.1"])

    async def rebinding(host: str, port: int) -> tuple[IPAddress, ...]:
        return (ipaddress.ip_address(next(answers)),)

    monkeypatch.setattr(egress, "resolve", rebinding)
    url = f"http://rebind.test:{local_server.server_address[1]}/hook"
    await check_url(url)  # accepted: the name looked public
    async with httpx.AsyncClient() as client:
        with pytest.raises(EgressRefused, match=re.escape("127.0.0.1")):
            await egress.post(client, url, (), b"{}", {}, timeout=5)
    assert _Recorder.seen == []


async def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(
    monkeypatch: pytest.MonkeyPatch, local_server: HTTPServer
) -> None:
    resolutions = resolve_to(monkeypatch, "127.0.0.1")
    port = local_server.server_address[1]
    response = await post_through_guard(f"http://receiver.test:{port}/hook")
    assert response.status_code == 204
    assert resolutions == ["receiver.test"]  # resolved once: by the guard, not again
    assert _Recorder.seen[0]["Host"] == f"receiver.test:{port}"


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_keeps_the_name_for_sni_and_certificate_checks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Connected to 127.0.0.1, yet the certificate is verified for the name: the TLS
    handshake carries it (SNI)."""
    cert, key = _certificate(tmp_path, "secure.receiver.test")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    names: list[str | None] = []

    def remember_name(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        names.append(name)

    server_context.sni_callback = remember_name
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    resolve_to(monkeypatch, "127.0.0.1")
    try:
        response = await post_through_guard(
            f"https://secure.receiver.test:{server.server_address[1]}/hook",
            httpx.AsyncClient(verify=ssl.create_default_context(cafile=cert)),
        )
        assert response.status_code == 204
        assert names == ["secure.receiver.test"]
    finally:
        server.shutdown()
        server.server_close()


async def test_each_checked_address_is_tried_while_connecting_fails(
    monkeypatch: pytest.MonkeyPatch, local_server: HTTPServer
) -> None:
    # Nothing listens on 127.0.0.2 (the server is bound to 127.0.0.1 only).
    resolve_to(monkeypatch, "127.0.0.2", "127.0.0.1")
    response = await post_through_guard(f"http://dual.test:{local_server.server_address[1]}/hook")
    assert response.status_code == 204
    assert len(_Recorder.seen) == 1
