"""The SSRF guard over real sockets: caps, redirects and DNS rebinding (R9, OWASP API7).

Two local servers share one port: ``media`` on 127.0.0.1 stands for a public host, ``evil``
on 127.0.0.2 for an internal one. The stub resolver maps ``media.test`` to the first and
``evil.test`` to the second, and the permit lets the fetcher connect to 127.0.0.1 only, so
any request that reaches ``evil`` is a hole in the guard.
"""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from interfaces.net.guard import FetchRefused, GuardedFetcher, IPAddress
from tests.support.servers import free_port

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
MEDIA = "127.0.0.1"
EVIL = "127.0.0.2"


class RecordingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, Handler)
        self.paths: list[str] = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        cast(RecordingServer, self.server).paths.append(self.path)
        url = urlsplit(self.path)
        # The fetcher hangs up past a limit, as it should.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._answer(url.path, parse_qs(url.query))

    def _answer(self, path: str, query: dict[str, list[str]]) -> None:
        if path == "/image.png":
            self._send(200, PNG, content_type="image/png")
        elif path == "/page.html":
            self._send(200, b"<html></html>", content_type="text/html; charset=utf-8")
        elif path == "/large":
            self._send(200, b"x" * 5000, content_type="image/png")
        elif path == "/large-chunked":
            self._send_chunked([b"x" * 1000] * 10)
        elif path == "/slow":
            self._trickle(total=50, every=0.1)
        elif path == "/gzipped":
            self._send(200, b"\x1f\x8b", content_type="image/png", encoding="gzip")
        elif path == "/redirect":
            self._send(302, b"", location=query["to"][0])
        elif path.startswith("/hops/"):
            left = int(path.removeprefix("/hops/"))
            if left == 0:
                self._send(200, PNG, content_type="image/png")
            else:
                self._send(302, b"", location=f"/hops/{left - 1}")
        else:
            self._send(404, b"not here", content_type="text/plain")

    def _send(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str | None = None,
        location: str | None = None,
        encoding: str | None = None,
    ) -> None:
        self.send_response(status)
        for name, value in (
            ("Content-Type", content_type),
            ("Location", location),
            ("Content-Encoding", encoding),
        ):
            if value is not None:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _send_chunked(self, chunks: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def _trickle(self, *, total: int, every: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(total))
        self.send_header("Connection", "close")
        self.end_headers()
        for _ in range(total):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(every)


@dataclass
class Servers:
    port: int
    media: RecordingServer
    evil: RecordingServer

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    media = RecordingServer((MEDIA, 0))
    port = media.server_address[1]
    evil = RecordingServer((EVIL, port))
    threads = [
        threading.Thread(target=server.serve_forever, daemon=True) for server in (media, evil)
    ]
    for thread in threads:
        thread.start()
    yield Servers(port=port, media=media, evil=evil)
    for server in (media, evil):
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _forget_requests(servers: Servers) -> Iterator[None]:
    yield
    assert servers.evil.paths == [], "a request reached the internal server"
    servers.media.paths.clear()


class Resolver:
    """Answers from a script, one answer list per call, and records each call."""

    def __init__(self, *answers: list[str]) -> None:
        self._answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host == "evil.test":
            return [EVIL]
        return self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]


def media_only(address: IPAddress) -> bool:
    return address == ipaddress.ip_address(MEDIA)


def fetcher(
    servers: Servers, resolver: Resolver | None = None, *, timeout: float = 1.0
) -> GuardedFetcher:
    return GuardedFetcher(
        resolver=resolver or Resolver([MEDIA]),
        permit=media_only,
        schemes=("http", "https"),
        ports={servers.port},
        timeout=timeout,
    )


def refusal(fetcher: GuardedFetcher, url: str, *, max_bytes: int = 10_000) -> str:
    with pytest.raises(FetchRefused) as refused:
        fetcher.fetch(url, max_bytes=max_bytes)
    return refused.value.message


def test_fetches_the_body_and_its_media_type(servers: Servers) -> None:
    url = servers.url("media.test", "/image.png")
    fetched = fetcher(servers).fetch(url, max_bytes=10_000)
    try:
        assert (fetched.url, fetched.content_type, fetched.size) == (url, "image/png", len(PNG))
        assert fetched.file.read() == PNG
    finally:
        fetched.close()


def test_follows_relative_redirects_on_permitted_hosts(servers: Servers) -> None:
    fetched = fetcher(servers).fetch(servers.url("media.test", "/hops/3"), max_bytes=10_000)
    fetched.close()
    assert fetched.url == servers.url("media.test", "/hops/0")
    assert servers.media.paths == ["/hops/3", "/hops/2", "/hops/1", "/hops/0"]


def test_more_than_three_redirects_are_refused(servers: Servers) -> None:
    message = refusal(fetcher(servers), servers.url("media.test", "/hops/4"))
    assert message == "the URL redirects more than 3 times"
    assert servers.media.paths == ["/hops/4", "/hops/3", "/hops/2", "/hops/1"]


def test_a_declared_length_over_the_cap_is_refused_before_reading(servers: Servers) -> None:
    message = refusal(fetcher(servers), servers.url("media.test", "/large"), max_bytes=1000)
    assert message == "the file is larger than the 1,000-byte limit"


def test_a_chunked_body_is_cut_off_at_the_cap(servers: Servers) -> None:
    url = servers.url("media.test", "/large-chunked")
    message = refusal(fetcher(servers), url, max_bytes=2500)
    assert message == "the file is larger than the 2,500-byte limit"

    fetched = fetcher(servers).fetch(url, max_bytes=10_000)
    fetched.close()
    assert fetched.size == 10_000


def test_the_timeout_bounds_the_whole_download_not_each_read(servers: Servers) -> None:
    started = time.monotonic()
    message = refusal(fetcher(servers, timeout=1.0), servers.url("media.test", "/slow"))
    assert message == "the download did not finish within 1 second"
    assert time.monotonic() - started < 1.8


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://evil.test:{port}/image.png", "evil.test resolves to a non-public address"),
        ("http://127.0.0.2:{port}/image.png", "127.0.0.2 is a loopback address"),
        (
            "http://evil.test:{port}/x?to=http://media.test/",
            "evil.test resolves to a non-public address",
        ),
        ("file:///etc/passwd", "only http or https URLs can be fetched, not file"),
        ("http://user@media.test:{port}/image.png", "user name or password"),
        ("http://localhost:{port}/image.png", "localhost is a local name"),
        ("http://2130706433:{port}/", "non-standard notation"),
    ],
)
def test_redirects_to_refused_places_are_refused(
    servers: Servers, target: str, reason: str
) -> None:
    location = target.format(port=servers.port)
    url = servers.url("media.test", f"/redirect?to={location}")
    message = refusal(fetcher(servers), url)
    assert message.startswith("it redirects to ")
    assert reason in message


def test_the_connection_goes_to_the_address_that_was_checked(servers: Servers) -> None:
    """A name that answers 127.0.0.1 once and 127.0.0.2 afterwards is looked up exactly once
    per connection; the socket goes to the checked answer, never to a fresh lookup."""
    resolver = Resolver([MEDIA], [EVIL])
    fetched = fetcher(servers, resolver).fetch(
        servers.url("rebinding.test", "/image.png"), max_bytes=10_000
    )
    fetched.close()
    assert resolver.calls == ["rebinding.test"]
    assert servers.media.paths == ["/image.png"]


def test_rebinding_between_check_and_fetch_is_refused(servers: Servers) -> None:
    resolver = Resolver([MEDIA], [EVIL])
    guard = fetcher(servers, resolver)
    url = servers.url("rebinding.test", "/image.png")
    guard.check(url)
    assert refusal(guard, url) == (
        "rebinding.test resolves to a non-public address; only public addresses can be fetched"
    )
    assert servers.media.paths == []


def test_every_new_connection_is_checked_again(servers: Servers) -> None:
    """The server closes each connection, so the redirect needs a new one and a new lookup."""
    resolver = Resolver([MEDIA], [EVIL])
    message = refusal(fetcher(servers, resolver), servers.url("rebinding.test", "/hops/1"))
    assert message == (
        f"it redirects to {servers.url('rebinding.test', '/hops/0')}, but rebinding.test "
        "resolves to a non-public address; only public addresses can be fetched"
    )
    assert resolver.calls == ["rebinding.test", "rebinding.test"]
    assert servers.media.paths == ["/hops/1"]


def test_error_statuses_are_refused(servers: Servers) -> None:
    message = refusal(fetcher(servers), servers.url("media.test", "/missing"))
    assert message == "the server answered 404 Not Found"


def test_the_accept_callback_judges_the_media_type(servers: Servers) -> None:
    seen: list[str | None] = []

    def images_only(content_type: str | None) -> bool:
        seen.append(content_type)
        return content_type is not None and content_type.startswith("image/")

    with pytest.raises(FetchRefused) as refused:
        fetcher(servers).fetch(
            servers.url("media.test", "/page.html"), max_bytes=10_000, accept=images_only
        )
    assert refused.value.message == "content of type text/html is not accepted"
    assert seen == ["text/html"]


def test_encoded_bodies_are_refused(servers: Servers) -> None:
    message = refusal(fetcher(servers), servers.url("media.test", "/gzipped"))
    assert message == "the server sent the body gzip-encoded; only unencoded files can be fetched"


def test_an_unreachable_host_is_refused(servers: Servers) -> None:
    port = free_port()
    guard = GuardedFetcher(
        resolver=Resolver([MEDIA]), permit=media_only, schemes=("http",), ports={port}
    )
    message = refusal(guard, f"http://media.test:{port}/image.png")
    assert message == "media.test could not be reached"


@dataclass
class TlsServer:
    port: int
    certificate: bytes
    server_names: list[str | None]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """An https server on 127.0.0.1 whose certificate names media.test and no address."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "media.test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("media.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    server_names: list[str | None] = []
    context.sni_callback = lambda _socket, server_name, _context: server_names.append(server_name)
    server = RecordingServer((MEDIA, 0))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield TlsServer(
        port=server.server_address[1],
        certificate=certificate.public_bytes(serialization.Encoding.PEM),
        server_names=server_names,
    )
    server.shutdown()
    server.server_close()


def test_tls_checks_the_host_name_while_connecting_to_the_checked_address(
    tls_server: TlsServer,
) -> None:
    trust = ssl.create_default_context(cadata=tls_server.certificate.decode())
    guard = GuardedFetcher(
        resolver=Resolver([MEDIA]), permit=media_only, ports={tls_server.port}, verify=trust
    )
    fetched = guard.fetch(f"https://media.test:{tls_server.port}/image.png", max_bytes=10_000)
    fetched.close()
    assert fetched.size == len(PNG)
    assert tls_server.server_names[-1] == "media.test"

    message = refusal(guard, f"https://other.test:{tls_server.port}/image.png")
    assert message == "the TLS certificate of other.test could not be verified"
    assert tls_server.server_names[-1] == "other.test"
