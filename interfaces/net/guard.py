"""Fetch user-supplied URLs without letting them reach Kairos's own network (an SSRF guard).

A URL passes only if it uses an allowed scheme (https by default) on the scheme's default
port, carries no user name or password, and names a host whose every address is public.
The connection then goes to an address that was checked: the network backend resolves the
host once, checks every answer and connects to it, so a name that re-binds to a private
address between the check and the connect (DNS rebinding) gains nothing. Redirects are
followed by hand, each hop checked the same way. The body is capped in size, and the whole
fetch, DNS lookups included, is capped in time.

Messages of ``FetchRefused`` reach API users verbatim, after the name of the field.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Collection, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from http import HTTPStatus
from tempfile import SpooledTemporaryFile
from typing import IO, Any

import httpcore
import httpx

log = logging.getLogger("kairos.net")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
Permit = Callable[[IPAddress], bool]
_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_URL_LENGTH = 2048
_SHOWN_URL_LENGTH = 200
_IN_MEMORY_BYTES = 1024 * 1024
# Ask for the body as stored: a compressed body could expand far past the size cap.
_HEADERS = [(b"User-Agent", b"Kairos media fetcher"), (b"Accept-Encoding", b"identity")]

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# A host whose last label is a number is an IPv4 address to URL parsers and inet_aton
# (2130706433, 0x7f.1, 127.1 all mean 127.0.0.1), whatever it looks like.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
# Names that never point at a public host (RFC 6761, RFC 6762, RFC 8375, ICANN's .internal).
_LOCAL_NAMES = ("localhost", "local", "internal", "home.arpa")

_CLOUD_METADATA = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.170.23",  # AWS EKS pod identity
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
        "168.63.129.16",  # Azure WireServer, a public address
        "100.100.100.200",  # Alibaba Cloud
    )
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_PRIVATE = tuple(
    ipaddress.ip_network(network)
    for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class FetchRefused(Exception):
    """The URL may not be fetched, or fetching it failed; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Fetched:
    """A fetched body. ``file`` is positioned at 0 and belongs to the caller, who closes it."""

    url: str
    """The URL the body came from, after redirects."""
    content_type: str | None
    """The media type, lower case and without parameters (``image/png``)."""
    size: int
    file: IO[bytes]

    def close(self) -> None:
        self.file.close()


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public_address(address: IPAddress) -> bool:
    return _refusal_reason(address) is None


def _refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not public, as a noun phrase; None when it is public."""
    if address in _CLOUD_METADATA:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            form, ipv4 = embedded
            inner = _refusal_reason(ipv4)
            return None if inner is None else f"{form} form of {ipv4}, {inner}"
        if address.is_site_local:
            return "a site-local address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _CGNAT:
        return "a carrier-grade NAT (shared) address"
    if any(address in network for network in _PRIVATE):
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved or special-purpose address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if address.ipv4_mapped is not None:
        return "an IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "a 6to4", address.sixtofour
    if address in _NAT64:
        return "a NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_COMPATIBLE:
        return "an IPv4-compatible", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


class GuardedFetcher:
    def __init__(
        self,
        *,
        resolver: Resolver | None = None,
        permit: Permit | None = None,
        schemes: tuple[str, ...] = ("https",),
        ports: Collection[int] | None = None,
        timeout: float = 5.0,
        max_redirects: int = 3,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """``resolver`` maps (host, port) to IP address strings; ``permit`` says whether an
        address may be connected to (default: public and not cloud metadata); ``ports`` are
        the ports a URL may name (default: only its scheme's default port); ``timeout`` caps a
        whole fetch or check, DNS and redirects included."""
        if not schemes or not set(schemes) <= _DEFAULT_PORTS.keys():
            raise ValueError(f"schemes must be http and/or https, not {schemes!r}")
        self._resolver = resolver or system_resolver
        self._permit = permit or is_public_address
        self._schemes = schemes
        self._ports = None if ports is None else frozenset(ports)
        self._timeout = timeout
        self._max_redirects = max_redirects
        self._ssl_context = httpx.create_ssl_context(verify=verify)

    def check(self, url: str) -> None:
        """Refuse ``url`` unless it is well formed and its host resolves to permitted addresses."""
        parsed = self._parse(url)
        self._addresses(_host(parsed), _port(parsed), _Deadline(self._timeout))

    def fetch(
        self, url: str, *, max_bytes: int, accept: Callable[[str | None], bool] | None = None
    ) -> Fetched:
        """Download ``url``; ``accept`` judges the media type before the body is read."""
        deadline = _Deadline(self._timeout)
        with ExitStack() as on_failure:
            body = on_failure.enter_context(SpooledTemporaryFile(max_size=_IN_MEMORY_BYTES))
            final_url, content_type, size = self._download(url, body, max_bytes, accept, deadline)
            on_failure.pop_all()  # the body now belongs to the caller
        body.seek(0)
        return Fetched(url=final_url, content_type=content_type, size=size, file=body)

    def _download(
        self,
        url: str,
        body: IO[bytes],
        max_bytes: int,
        accept: Callable[[str | None], bool] | None,
        deadline: _Deadline,
    ) -> tuple[str, str | None, int]:
        current = self._parse(url)
        backend = _PinnedBackend(lambda host, port: self._addresses(host, port, deadline), deadline)
        try:
            with httpcore.ConnectionPool(
                ssl_context=self._ssl_context, network_backend=backend
            ) as pool:
                for hop in range(self._max_redirects + 1):
                    with ExitStack() as stack:
                        response = _send(stack, pool, current, deadline, redirected=hop > 0)
                        if response.status in _REDIRECTS:
                            current = self._redirect_target(current, response)
                            continue
                        if not 200 <= response.status < 300:
                            raise FetchRefused(f"the server answered {_status(response.status)}")
                        content_type, size = _read_body(response, body, max_bytes, accept)
                        return str(current), content_type, size
        except httpcore.TimeoutException:
            raise FetchRefused(
                f"the download did not finish within {_seconds(self._timeout)}"
            ) from None
        except httpcore.ConnectError as failure:
            raise FetchRefused(_unreachable(_host(current), failure)) from failure
        except (httpcore.NetworkError, httpcore.ProtocolError) as failure:
            raise FetchRefused("the server broke off or garbled its response") from failure
        raise FetchRefused(f"the URL redirects more than {self._max_redirects} times")

    def _redirect_target(self, current: httpx.URL, response: httpcore.Response) -> httpx.URL:
        location = _header(response, b"location")
        if not location:
            raise FetchRefused(f"the server answered {_status(response.status)} with no Location")
        try:
            target = current.join(location)
        except httpx.InvalidURL:
            raise FetchRefused(f"it redirects to an invalid URL ({_shown(location)})") from None
        try:
            return self._parse(str(target))
        except FetchRefused as refused:
            raise FetchRefused(
                f"it redirects to {_shown(str(target))}, but {refused.message}"
            ) from None

    def _parse(self, url: str) -> httpx.URL:
        if len(url) > _MAX_URL_LENGTH:
            raise FetchRefused(f"the URL is longer than {_MAX_URL_LENGTH} characters")
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as invalid:
            raise FetchRefused(f"this is not a valid URL ({invalid})") from None
        if parsed.scheme not in self._schemes:
            allowed = " or ".join(self._schemes)
            if not parsed.scheme:
                raise FetchRefused(f"this is not a full {allowed} URL")
            raise FetchRefused(f"only {allowed} URLs can be fetched, not {parsed.scheme}")
        if parsed.userinfo:
            raise FetchRefused("URLs with a user name or password (user@host) cannot be fetched")
        if not parsed.raw_host:
            raise FetchRefused("the URL names no host")
        self._check_port(parsed)
        self._check_host(_host(parsed))
        return parsed

    def _check_port(self, url: httpx.URL) -> None:
        if url.port is None or (self._ports is not None and url.port in self._ports):
            return
        if self._ports is None:
            default = _DEFAULT_PORTS[url.scheme]
            raise FetchRefused(
                f"port {url.port} is not allowed; {url.scheme} URLs must use port {default}"
            )
        raise FetchRefused(f"port {url.port} is not allowed")

    def _check_host(self, host: str) -> None:
        literal = _ip_literal(host)
        if literal is not None:
            self._require_permitted(literal, host=None)
            return
        name = host.removesuffix(".")
        labels = name.split(".")
        if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
            raise FetchRefused(f"{host} is not a valid host name")
        if _NUMERIC_LABEL.fullmatch(labels[-1]):
            raise FetchRefused(
                f"{host} reads as an IP address in a non-standard notation; "
                "write addresses as four decimal numbers, like 93.184.216.34"
            )
        if any(name == local or name.endswith("." + local) for local in _LOCAL_NAMES):
            raise FetchRefused(f"{host} is a local name, not a public host")
        if len(labels) < 2:
            raise FetchRefused(f"{host} is not a fully qualified public host name")

    def _addresses(self, host: str, port: int, deadline: _Deadline) -> list[IPAddress]:
        """Resolve ``host`` once and return its addresses, refusing it unless all are permitted."""
        literal = _ip_literal(host)
        if literal is not None:
            self._require_permitted(literal, host=None)
            return [literal]
        answers = _lookup(self._resolver, host, port, deadline)
        if not answers:
            raise FetchRefused(f"{host} could not be resolved")
        addresses = []
        for answer in answers:
            try:
                address = ipaddress.ip_address(answer)
            except ValueError:
                raise FetchRefused(f"{host} resolves to something that is not an address") from None
            self._require_permitted(address, host=host)
            addresses.append(address)
        return addresses

    def _require_permitted(self, address: IPAddress, *, host: str | None) -> None:
        if self._permit(address):
            return
        reason = _refusal_reason(address) or "an address that is not allowed"
        if host is None:
            raise FetchRefused(f"{address} is {reason}; only public addresses can be fetched")
        # What a name resolves to inside Kairos's network is no business of whoever sent the
        # URL (it maps the internal network for them); operators find it in the log.
        log.info("refused %s: it resolves to %s, which is %s", host, address, reason)
        raise FetchRefused(
            f"{host} resolves to a non-public address; only public addresses can be fetched"
        )


def _lookup(resolver: Resolver, host: str, port: int, deadline: _Deadline) -> list[str]:
    """Run ``resolver`` on a daemon thread: getaddrinfo has no timeout of its own."""
    outcome: list[list[str] | Exception] = []

    def resolve() -> None:
        try:
            outcome.append(resolver(host, port))
        except Exception as failure:  # re-raised on the calling thread below
            outcome.append(failure)

    worker = threading.Thread(target=resolve, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(max(deadline.remaining(), 0.0))
    if not outcome:
        raise FetchRefused(f"looking up {host} took longer than {_seconds(deadline.seconds)}")
    result = outcome[0]
    if isinstance(result, OSError):
        raise FetchRefused(f"{host} could not be resolved")
    if isinstance(result, Exception):
        raise result
    return result


def _send(
    stack: ExitStack,
    pool: httpcore.ConnectionPool,
    url: httpx.URL,
    deadline: _Deadline,
    *,
    redirected: bool,
) -> httpcore.Response:
    target = httpcore.URL(
        scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
    )
    left = deadline.bound(None, httpcore.PoolTimeout)
    timeouts = {"connect": left, "read": left, "write": left, "pool": left}
    try:
        return stack.enter_context(
            pool.stream(
                "GET",
                target,
                headers=[(b"Host", url.netloc), *_HEADERS],
                extensions={"timeout": timeouts},
            )
        )
    except FetchRefused as refused:
        if not redirected:
            raise
        raise FetchRefused(f"it redirects to {_shown(str(url))}, but {refused.message}") from None


def _read_body(
    response: httpcore.Response,
    body: IO[bytes],
    max_bytes: int,
    accept: Callable[[str | None], bool] | None,
) -> tuple[str | None, int]:
    content_type = _media_type(_header(response, b"content-type"))
    if accept is not None and not accept(content_type):
        raise FetchRefused(f"content of type {content_type or '(none given)'} is not accepted")
    encoding = _header(response, b"content-encoding")
    if encoding and encoding.lower() != "identity":
        raise FetchRefused(
            f"the server sent the body {encoding}-encoded; only unencoded files can be fetched"
        )
    too_large = FetchRefused(f"the file is larger than the {max_bytes:,}-byte limit")
    declared = _header(response, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    size = 0
    for chunk in response.iter_stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        body.write(chunk)
    return content_type, size


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._ends - time.monotonic()

    def bound(self, timeout: float | None, expired: type[Exception]) -> float:
        """``timeout`` shortened to the time left; ``expired`` is raised when none is left."""
        left = self.remaining()
        if left <= 0:
            raise expired(f"the {self.seconds:g}-second limit has passed")
        return left if timeout is None else min(timeout, left)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects only to addresses that ``addresses`` resolved and permitted, never re-resolving.

    httpcore passes the URL's host here and, separately, to ``start_tls`` as the server name,
    so SNI and certificate checks still use the host name while the socket uses the address.
    """

    def __init__(
        self, addresses: Callable[[str, int], list[IPAddress]], deadline: _Deadline
    ) -> None:
        self._addresses = addresses
        self._deadline = deadline
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        failure: httpcore.ConnectError | None = None
        for address in self._addresses(host, port):
            try:
                stream = self._sockets.connect_tcp(
                    str(address),
                    port,
                    timeout=self._deadline.bound(timeout, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as error:
                failure = error
                continue
            return _DeadlineStream(stream, self._deadline)
        raise failure or httpcore.ConnectError(f"{host} has no addresses")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _DeadlineStream(httpcore.NetworkStream):
    """Bounds every read, write and handshake by the time left for the whole fetch."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.bound(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.bound(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = self._deadline.bound(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._stream.start_tls(ssl_context, server_hostname, bounded), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


def _ip_literal(host: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise FetchRefused(f"{host} carries an IPv6 zone, which public addresses never need")
    return address


def _host(url: httpx.URL) -> str:
    return url.raw_host.decode("ascii")


def _port(url: httpx.URL) -> int:
    return url.port or _DEFAULT_PORTS[url.scheme]


def _header(response: httpcore.Response, name: bytes) -> str | None:
    for key, value in response.headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _media_type(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def _status(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def _unreachable(host: str, failure: httpcore.ConnectError) -> str:
    # httpcore wraps the socket's error as the first argument; it is not always the __cause__.
    cause = failure.args[0] if failure.args else None
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"the TLS certificate of {host} could not be verified"
    if isinstance(cause, ssl.SSLError):
        return f"the TLS handshake with {host} failed"
    return f"{host} could not be reached"


def _seconds(seconds: float) -> str:
    return "1 second" if seconds == 1 else f"{seconds:g} seconds"


def _shown(url: str) -> str:
    return url if len(url) <= _SHOWN_URL_LENGTH else url[:_SHOWN_URL_LENGTH] + "…"
