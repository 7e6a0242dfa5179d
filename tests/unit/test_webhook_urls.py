"""Callback URL checks (:mod:`infq.webhooks.urls`): syntax and SSRF, with a fake resolver."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infq.errors import ConfigurationError, InfqError
from infq.webhooks.urls import (
    MAX_URL_LENGTH,
    RefusedCallbackUrl,
    UnresolvedHost,
    check_destination,
    check_syntax,
)

DNS: dict[str, list[str]] = {
    "public.example": ["93.184.215.14"],
    "dual.example": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "internal.example": ["10.0.0.5"],
    "rebind.example": ["8.8.8.8", "127.0.0.1"],
    "metadata.example": ["169.254.169.254"],
    "mapped.example": ["::ffff:10.1.2.3"],
    "localhost": ["127.0.0.1", "::1"],
    "empty.example": [],
    "garbage.example": ["not-an-ip"],
}


class FakeResolver:
    """Answers from :data:`DNS` and records what was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in DNS:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return DNS[host]


def check(url: str, allow: Sequence[str] = ()) -> None:
    check_destination(url, allow=allow, resolve=FakeResolver())


def refusal(url: str, allow: Sequence[str] = ()) -> str:
    with pytest.raises(RefusedCallbackUrl) as caught:
        check(url, allow)
    assert caught.value.url == url
    return caught.value.reason


# --- syntax -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://public.example/hook",
        "https://public.example:8443/hook?x=1#frag",
        "HTTPS://Public.Example/hook",
        "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/",
    ],
)
def test_plain_http_urls_pass_the_syntax_check(url: str) -> None:
    check_syntax(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://public.example/x", "only http and https callbacks are allowed, got 'ftp'"),
        ("file:///etc/passwd", "got 'file'"),
        ("gopher://public.example/", "got 'gopher'"),
        ("public.example/hook", "got 'no scheme'"),
        ("http://user:pass@public.example/", "credentials"),
        ("http://user@public.example/", "credentials"),
        ("http://public.example@127.0.0.1/", "credentials"),
        ("http:///hook", "no host"),
        ("http://", "no host"),
        ("http://public.example:99999/", "cannot be parsed"),
        ("http://public.example:abc/", "cannot be parsed"),
        ("http://public.example:0/", "port 0"),
        ("http://public.example\\@127.0.0.1/", "'\\'"),
        ("http://public.exa\tmple/", "whitespace"),
        ("http://public.example/\r\nX-Evil: 1", "whitespace"),
        ("http://" + "a" * MAX_URL_LENGTH + ".example/", "at most 2048"),
    ],
)
def test_malformed_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(RefusedCallbackUrl) as caught:
        check_syntax(url)

    assert reason in caught.value.reason
    assert caught.value.url == url


def test_url_of_exactly_the_maximum_length_passes() -> None:
    prefix = "http://public.example/"
    check_syntax(prefix + "a" * (MAX_URL_LENGTH - len(prefix)))


def test_refused_callback_url_is_an_infq_error() -> None:
    assert issubclass(RefusedCallbackUrl, InfqError)


# --- destinations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hook",
        "https://8.8.8.8/",
        "https://public.example/hook",
        "https://dual.example/hook",
        "http://[2606:4700:4700::1111]/",
    ],
)
def test_public_destinations_pass(url: str) -> None:
    check(url)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://127.8.9.10:8080/", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://172.31.255.255/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]/", "loopback"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fe80::1%25eth0]/", "link-local"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("http://[64:ff9b::a00:1]/", "private"),  # NAT64 wrapping 10.0.0.1
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://239.1.2.3/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://[fc00::1]/", "private"),
        ("http://100.64.0.1/", "not a globally routable"),  # carrier-grade NAT
        ("http://240.0.0.1/", "reserved"),
    ],
)
def test_non_global_literal_addresses_are_refused(url: str, kind: str) -> None:
    resolver = FakeResolver()
    with pytest.raises(RefusedCallbackUrl) as caught:
        check_destination(url, allow=[], resolve=resolver)

    assert kind in caught.value.reason
    assert "INFQ_WEBHOOK_ALLOW=" in caught.value.reason
    assert resolver.calls == []  # a literal address is never resolved


def test_loopback_reason_is_a_sentence_with_the_fix() -> None:
    assert refusal("http://127.0.0.1/") == (
        "127.0.0.1 is a loopback address; allow it with INFQ_WEBHOOK_ALLOW='[\"127.0.0.0/8\"]'"
    )


def test_mapped_address_reason_says_where_it_leads() -> None:
    reason = refusal("http://[::ffff:127.0.0.1]/")

    assert reason.startswith("::ffff:127.0.0.1 is a loopback address (it leads to 127.0.0.1)")


def test_hostname_resolving_to_a_private_address_is_refused() -> None:
    # DNS-based SSRF: a harmless-looking name that points inside the network.
    reason = refusal("https://internal.example/hook")

    assert reason.startswith("host 'internal.example' resolves to 10.0.0.5, which is a private")
    assert "'[\"internal.example\"]'" in reason
    assert "'[\"10.0.0.5/32\"]'" in reason


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("metadata.example", "link-local"),
        ("mapped.example", "private"),
        ("localhost", "loopback"),
    ],
)
def test_hostnames_are_judged_by_their_addresses(host: str, kind: str) -> None:
    assert kind in refusal(f"http://{host}/")


def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    assert "127.0.0.1" in refusal("http://rebind.example/")


def test_resolution_failure_is_refused() -> None:
    assert refusal("http://nowhere.example/").startswith("cannot resolve host 'nowhere.example'")
    assert refusal("http://empty.example/") == "cannot resolve host 'empty.example': no addresses"
    assert "not an address" in refusal("http://garbage.example/")


def test_resolver_gets_the_host_and_the_effective_port() -> None:
    resolver = FakeResolver()
    for url in ("http://Public.Example./", "https://public.example/", "http://public.example:81/"):
        check_destination(url, allow=[], resolve=resolver)

    assert resolver.calls == [
        ("public.example", 80),
        ("public.example", 443),
        ("public.example", 81),
    ]


def test_destination_check_includes_the_syntax_check() -> None:
    assert "got 'ftp'" in refusal("ftp://public.example/")


# --- allow-list -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://127.0.0.1:8000/hook", ["127.0.0.0/8"]),
        ("http://127.0.0.1:8000/hook", ["127.0.0.1"]),
        ("http://[::ffff:127.0.0.1]/", ["127.0.0.0/8"]),
        ("http://[::1]/", ["::1"]),
        ("http://localhost:8000/hook", ["127.0.0.0/8", "::1/128"]),
        ("http://localhost:8000/hook", ["localhost"]),
        ("http://LOCALHOST:8000/hook", ["LocalHost"]),
        ("http://internal.example/", ["10.0.0.0/8"]),
        ("http://internal.example/", ["10.0.0.5/8"]),  # not strict: host bits are fine
        ("http://internal.example/", ["other.example", "internal.example"]),
    ],
)
def test_allow_list_lets_chosen_hosts_and_networks_through(url: str, allow: list[str]) -> None:
    check(url, allow)


def test_allowed_hostname_is_not_resolved() -> None:
    resolver = FakeResolver()
    check_destination("http://unlisted.internal/", allow=["unlisted.internal"], resolve=resolver)

    assert resolver.calls == []


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://127.0.0.1/", ["10.0.0.0/8"]),
        ("http://localhost/", ["127.0.0.0/8"]),  # ::1 is not allowed
        ("http://internal.example/", ["internal"]),  # hostnames match exactly
        ("http://internal.example/", ["example"]),
        ("http://rebind.example/", ["rebind.example.evil"]),
        ("http://169.254.169.254/", ["127.0.0.0/8", "localhost"]),
    ],
)
def test_allow_list_lets_nothing_else_through(url: str, allow: list[str]) -> None:
    refusal(url, allow)


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "10.0.0.300", "fe80::1::2", "host:8080"])
def test_mistyped_allow_entries_fail_loudly(entry: str) -> None:
    with pytest.raises(ConfigurationError, match="INFQ_WEBHOOK_ALLOW"):
        check("http://public.example/", [entry])


# --- properties -----------------------------------------------------------------------

private_v4 = st.one_of(
    st.ip_addresses(network="10.0.0.0/8"),
    st.ip_addresses(network="172.16.0.0/12"),
    st.ip_addresses(network="192.168.0.0/16"),
    st.ip_addresses(network="127.0.0.0/8"),
    st.ip_addresses(network="169.254.0.0/16"),
)


@given(address=private_v4)
def test_every_private_ipv4_address_is_refused_literal_mapped_and_resolved(address: object) -> None:
    dns = {"evil.example": ["93.184.215.14", str(address)]}
    for url in (f"http://{address}/", f"http://[::ffff:{address}]/", "http://evil.example/"):
        with pytest.raises(RefusedCallbackUrl):
            check_destination(url, allow=[], resolve=lambda host, port: dns[host])


@given(address=private_v4)
def test_an_allowed_network_admits_all_of_its_addresses(address: object) -> None:
    allow = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16"]
    check(f"http://{address}/", allow)


def test_the_check_returns_the_addresses_to_connect_to() -> None:
    resolver = FakeResolver()
    dual = check_destination("https://dual.example/h", allow=[], resolve=resolver)
    assert dual == DNS["dual.example"]
    assert check_destination("http://93.184.215.14:8080/h", allow=[], resolve=resolver) == [
        "93.184.215.14"
    ]
    # An allowed hostname is trusted to resolve as it likes: nothing to pin
    assert check_destination("http://internal.example/h", allow=["internal.example"],
                             resolve=resolver) == []  # fmt: skip
    assert resolver.calls == [("dual.example", 443)]


def test_a_name_that_does_not_resolve_is_unresolved_not_refused_for_good() -> None:
    with pytest.raises(UnresolvedHost) as caught:
        check("https://nowhere.example/h")
    assert "cannot resolve host 'nowhere.example'" in caught.value.reason
    with pytest.raises(UnresolvedHost):
        check("https://empty.example/h")
