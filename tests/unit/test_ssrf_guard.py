"""The SSRF guard refuses every URL that could reach Kairos's own network (R9, OWASP API7).

These cases need no network: names resolve through a stub, and every refusal happens before
a socket is opened.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time

import pytest

from interfaces.net.guard import (
    FetchRefused,
    GuardedFetcher,
    Permit,
    is_public_address,
    system_resolver,
)

PUBLIC = "93.184.216.34"
NAMES = {
    "media.example.com": [PUBLIC],
    "cdn.example.com": [PUBLIC, "2606:2800:220:1:248:1893:25c8:1946"],
    "internal.example.com": ["10.0.0.1"],
    "loopback.example.com": ["127.0.0.1"],
    "mixed.example.com": [PUBLIC, "192.168.1.10"],
    "metadata.example.com": ["169.254.169.254"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
    "ula.example.com": [PUBLIC, "fd12:3456::1"],
    "empty.example.com": [],
    "garbage.example.com": ["not-an-address"],
}


class StubResolver:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        try:
            return list(NAMES[host.removesuffix(".")])
        except KeyError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


def guard(
    *,
    schemes: tuple[str, ...] = ("https",),
    ports: set[int] | None = None,
    permit: Permit | None = None,
) -> GuardedFetcher:
    return GuardedFetcher(resolver=StubResolver(), schemes=schemes, ports=ports, permit=permit)


def refusal(fetcher: GuardedFetcher, url: str) -> str:
    with pytest.raises(FetchRefused) as refused:
        fetcher.check(url)
    assert str(refused.value) == refused.value.message
    return refused.value.message


# The R9 list and its IPv6 relatives, written as http URLs so that they are refused for the
# address, not for the scheme.
ADDRESSES = [
    ("http://127.0.0.1", "127.0.0.1 is a loopback address"),
    ("http://127.0.0.1:80/admin", "127.0.0.1 is a loopback address"),
    ("http://[::1]", "::1 is a loopback address"),
    ("http://0.0.0.0", "0.0.0.0 is the unspecified address"),
    ("http://[::]", ":: is the unspecified address"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a cloud metadata address"),
    ("http://[fd00:ec2::254]/latest/meta-data", "fd00:ec2::254 is a cloud metadata address"),
    ("http://168.63.129.16/machine", "168.63.129.16 is a cloud metadata address"),
    ("http://100.100.100.200/latest", "100.100.100.200 is a cloud metadata address"),
    ("http://10.0.0.1", "10.0.0.1 is a private address"),
    ("http://172.16.5.4", "172.16.5.4 is a private address"),
    ("http://192.168.1.1", "192.168.1.1 is a private address"),
    ("http://[fd12:3456::1]", "fd12:3456::1 is a private address"),
    ("http://100.64.0.1", "100.64.0.1 is a carrier-grade NAT (shared) address"),
    ("http://224.0.0.1", "224.0.0.1 is a multicast address"),
    ("http://[ff02::1]", "ff02::1 is a multicast address"),
    ("http://169.254.1.1", "169.254.1.1 is a link-local address"),
    ("http://[fe80::1]", "fe80::1 is a link-local address"),
    ("http://[fec0::1]", "fec0::1 is a site-local address"),
    ("http://240.0.0.1", "240.0.0.1 is a reserved or special-purpose address"),
    ("http://255.255.255.255", "255.255.255.255 is a reserved or special-purpose address"),
    ("http://192.0.2.1", "192.0.2.1 is a reserved or special-purpose address"),
    ("http://[2001:db8::1]", "2001:db8::1 is a reserved or special-purpose address"),
    ("http://[::ffff:127.0.0.1]", "an IPv4-mapped form of 127.0.0.1, a loopback address"),
    ("http://[::ffff:7f00:1]", "an IPv4-mapped form of 127.0.0.1, a loopback address"),
    ("http://[::ffff:10.0.0.1]", "an IPv4-mapped form of 10.0.0.1, a private address"),
    (
        "http://[::ffff:169.254.169.254]",
        "an IPv4-mapped form of 169.254.169.254, a cloud metadata address",
    ),
    ("http://[::127.0.0.1]", "an IPv4-compatible form of 127.0.0.1, a loopback address"),
    ("http://[64:ff9b::10.0.0.1]", "a NAT64 form of 10.0.0.1, a private address"),
    ("http://[2002:c0a8:101::]", "a 6to4 form of 192.168.1.1, a private address"),
    ("http://[fe80::1%25eth0]", "zone"),
]

NON_STANDARD_IPV4 = [
    "http://2130706433",
    "http://0x7f.1",
    "http://0x7f000001",
    "http://0x7F.0.0.1",
    "http://127.1",
    "http://0",
    "http://017700000001",
    "http://2130706433./",
]

LOCAL_NAMES = [
    "http://localhost",
    "http://localhost.",
    "http://LOCALHOST/",
    "http://localhost:80/",
    "http://api.localhost",
    "http://api.localhost.",
    "http://printer.local",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://router.home.arpa",
]


@pytest.mark.parametrize(("url", "reason"), ADDRESSES)
def test_non_public_address_literals_are_refused(url: str, reason: str) -> None:
    assert reason in refusal(guard(schemes=("http", "https")), url)
    assert reason in refusal(guard(), url.replace("http://", "https://").replace(":80/", "/"))


@pytest.mark.parametrize("url", NON_STANDARD_IPV4)
def test_ip_addresses_in_non_standard_notation_are_refused(url: str) -> None:
    assert "non-standard notation" in refusal(guard(schemes=("http", "https")), url)


def test_octal_dotted_addresses_are_not_urls_at_all() -> None:
    message = refusal(guard(schemes=("http", "https")), "http://0177.0.0.1")
    assert message.startswith("this is not a valid URL")


@pytest.mark.parametrize("url", LOCAL_NAMES)
def test_local_names_are_refused_without_a_lookup(url: str) -> None:
    resolver = StubResolver()
    fetcher = GuardedFetcher(resolver=resolver, schemes=("http", "https"))
    assert "is a local name, not a public host" in refusal(fetcher, url)
    assert resolver.calls == []


def test_single_label_names_are_refused() -> None:
    assert "not a fully qualified public host name" in refusal(guard(), "https://intranet/a.png")


@pytest.mark.parametrize(
    "url",
    [
        "https://user@media.example.com/a.png",
        "https://user:secret@media.example.com/a.png",
        "https://media.example.com@127.0.0.1/",
        "https://:@media.example.com/",
    ],
)
def test_user_names_and_passwords_are_refused(url: str) -> None:
    assert "user name or password" in refusal(guard(), url)


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("file:///etc/passwd", "file"),
        ("gopher://media.example.com:70/_GET%20/", "gopher"),
        ("ftp://media.example.com/a.png", "ftp"),
        ("dict://media.example.com:11211/stat", "dict"),
        ("http://media.example.com/a.png", "http"),
    ],
)
def test_only_https_is_accepted_by_default(url: str, scheme: str) -> None:
    assert refusal(guard(), url) == f"only https URLs can be fetched, not {scheme}"


def test_other_schemes_stay_refused_when_http_is_allowed() -> None:
    message = refusal(guard(schemes=("http", "https")), "file:///etc/passwd")
    assert message == "only http or https URLs can be fetched, not file"


@pytest.mark.parametrize("url", ["/media/a.png", "media.example.com/a.png", ""])
def test_relative_urls_are_refused(url: str) -> None:
    assert refusal(guard(), url) == "this is not a full https URL"


@pytest.mark.parametrize(
    "url",
    [
        "https://media.example.com:8443/a.png",
        "https://media.example.com:80/a.png",
        "https://media.example.com:22/",
        "https://media.example.com:0/",
    ],
)
def test_only_the_default_port_is_accepted(url: str) -> None:
    assert "https URLs must use port 443" in refusal(guard(), url)


def test_ports_can_be_allowed_explicitly() -> None:
    fetcher = guard(ports={8443})
    fetcher.check("https://media.example.com:8443/a.png")
    assert refusal(fetcher, "https://media.example.com:9000/") == "port 9000 is not allowed"


@pytest.mark.parametrize(
    "url",
    [
        "https://media.example.com/a.png",
        "https://media.example.com:443/a.png",
        "https://MEDIA.example.com./a.png?size=large#top",
        "https://cdn.example.com/a.png",
        f"https://{PUBLIC}/a.png",
        "https://[2606:4700:4700::1111]/a.png",
        f"https://[::ffff:{PUBLIC}]/a.png",
    ],
)
def test_public_urls_pass(url: str) -> None:
    guard().check(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "https://internal.example.com/a.png",
            "internal.example.com resolves to a non-public address; "
            "only public addresses can be fetched",
        ),
        ("https://loopback.example.com/", "loopback.example.com resolves to a non-public"),
        ("https://metadata.example.com/", "metadata.example.com resolves to a non-public"),
        ("https://mapped.example.com/", "mapped.example.com resolves to a non-public"),
        ("https://mixed.example.com/", "mixed.example.com resolves to a non-public"),
        ("https://ula.example.com/", "ula.example.com resolves to a non-public"),
        ("https://nowhere.example.com/", "nowhere.example.com could not be resolved"),
        ("https://empty.example.com/", "empty.example.com could not be resolved"),
        ("https://garbage.example.com/", "resolves to something that is not an address"),
    ],
)
def test_names_are_refused_unless_every_address_is_public(url: str, message: str) -> None:
    assert message in refusal(guard(), url)


@pytest.mark.parametrize(
    ("url", "internal"),
    [
        ("https://internal.example.com/a.png", "10.0.0.1"),
        ("https://metadata.example.com/", "169.254.169.254"),
        ("https://mapped.example.com/", "127.0.0.1"),
        ("https://ula.example.com/", "fd12:3456::1"),
    ],
)
def test_a_refused_name_does_not_tell_what_it_resolves_to(url: str, internal: str) -> None:
    """Whoever sends the URL must not learn Kairos's internal DNS answers from the refusal."""
    message = refusal(guard(), url)

    assert internal not in message
    assert "address" in message


def test_the_lookup_names_the_port_it_will_connect_to() -> None:
    resolver = StubResolver()
    GuardedFetcher(resolver=resolver, schemes=("http", "https")).check("http://media.example.com/")
    GuardedFetcher(resolver=resolver).check("https://media.example.com/")
    assert resolver.calls == [("media.example.com", 80), ("media.example.com", 443)]


def test_a_slow_lookup_is_refused_within_the_timeout() -> None:
    def hanging(host: str, port: int) -> list[str]:
        time.sleep(2)
        return [PUBLIC]

    fetcher = GuardedFetcher(resolver=hanging, timeout=0.2)
    started = time.monotonic()
    assert refusal(fetcher, "https://media.example.com/") == (
        "looking up media.example.com took longer than 0.2 seconds"
    )
    assert time.monotonic() - started < 1


def test_a_custom_permit_replaces_the_default() -> None:
    fetcher = guard(permit=lambda address: address.is_private)
    fetcher.check("https://internal.example.com/")
    assert refusal(fetcher, f"https://{PUBLIC}/") == (
        f"{PUBLIC} is an address that is not allowed; only public addresses can be fetched"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "https://127.0.0.1/",
        "https://[::ffff:127.0.0.1]/",
        "https://localhost./",
        "https://2130706433/",
        "https://loopback.example.com/",
        "https://mixed.example.com/",
    ],
)
def test_fetch_refuses_what_check_refuses_before_connecting(url: str) -> None:
    fetcher = guard()
    with pytest.raises(FetchRefused) as refused:
        fetcher.fetch(url, max_bytes=1024)
    assert refused.value.message == refusal(fetcher, url)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        (PUBLIC, True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.53", False),
        ("100.127.255.255", False),
        ("198.18.0.1", False),
        ("169.254.170.2", False),
        ("ff0e::1", False),
        ("2001::1", False),
    ],
)
def test_default_permit(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_system_resolver_returns_address_strings() -> None:
    assert system_resolver("127.0.0.1", 443) == ["127.0.0.1"]


def test_only_http_and_https_can_be_allowed() -> None:
    with pytest.raises(ValueError, match=re.escape("('https', 'ftp')")):
        GuardedFetcher(schemes=("https", "ftp"))
