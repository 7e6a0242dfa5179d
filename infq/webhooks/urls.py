"""Callback URL checks: keep webhooks from reaching the network infq runs in (SSRF).

A callback URL is chosen by a client, but the request is sent from inside infq's
network, where a cloud metadata endpoint (169.254.169.254), the database or an admin
port may answer. So a URL must be plain http(s) and every address its host resolves
to must be globally routable, unless an operator allows the host or network
(``INFQ_WEBHOOK_ALLOW``). Every address is checked because a client controls its DNS and
can return one public and one private address. IPv4 addresses embedded in IPv6 ones
(``::ffff:127.0.0.1``, 6to4, NAT64) are judged as the IPv4 address they reach.

The check resolves the host once and returns the addresses it checked; the delivery
connects to one of them (:mod:`infq.webhooks.transport`), never resolving again, or a
short DNS TTL would let the answer change in between.
:func:`system_resolve` is the only I/O here; tests inject a fake resolver.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable, Sequence
from urllib.parse import SplitResult, urlsplit

from infq.errors import ConfigurationError, InfqError

MAX_URL_LENGTH = 2048
_SCHEMES = {"http": 80, "https": 443}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RefusedCallbackUrl(InfqError):
    """A callback URL is malformed or leads to an address infq must not call."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"refused callback URL {url[:200]!r}: {reason}")
        self.url = url
        self.reason = reason


class UnresolvedHost(RefusedCallbackUrl):
    """The host did not resolve. At submission a refusal; for a delivery a transient
    error, retried like a timeout (a resolver's hiccup must not kill a delivery)."""


def system_resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _split(url: str) -> SplitResult:
    if len(url) > MAX_URL_LENGTH:
        raise RefusedCallbackUrl(
            url, f"URL is {len(url)} characters long; at most {MAX_URL_LENGTH}"
        )
    # urlsplit silently drops tabs and newlines, and clients disagree on backslashes.
    if any(ch.isspace() or not ch.isprintable() or ch == "\\" for ch in url):
        raise RefusedCallbackUrl(url, "URL contains whitespace, control characters or '\\'")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise RefusedCallbackUrl(url, f"URL cannot be parsed: {e}") from e
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise RefusedCallbackUrl(
            url, f"only http and https callbacks are allowed, got {scheme or 'no scheme'!r}"
        )
    if "@" in parts.netloc:
        raise RefusedCallbackUrl(url, "credentials in the URL (user:password@) are not allowed")
    if not parts.hostname:
        raise RefusedCallbackUrl(url, "URL has no host")
    if port == 0:
        raise RefusedCallbackUrl(url, "port 0 cannot be called")
    return parts


def check_syntax(url: str) -> None:
    """Refuse a URL that is not plain http(s) to a host (no credentials, not too long)."""
    _split(url)


def _parse_allow(allow: Sequence[str]) -> tuple[set[str], list[IPNetwork]]:
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in allow:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as e:
            # A hostname never holds "/" or ":", nor only digits and dots: such an entry
            # is a mistyped network, and ignoring it would hide the typo.
            if "/" in entry or ":" in entry or entry.strip().replace(".", "").isdigit():
                raise ConfigurationError(
                    f"INFQ_WEBHOOK_ALLOW entry {entry!r} is neither a hostname nor an "
                    f"IP network: {e}"
                ) from e
            hosts.add(_normalise_host(entry))
    return hosts, networks


def _normalise_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to, where it embeds one."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _refused_kind(ip: IPAddress) -> str | None:
    """What makes ``ip`` unfit for a callback ("a loopback address"), or None if global."""
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives here)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "not a globally routable address"
    return None


def _allow_hint(ip: IPAddress, host: str | None) -> str:
    if ip.is_loopback:
        network = "127.0.0.0/8" if ip.version == 4 else "::1/128"
    else:
        network = str(ipaddress.ip_network(ip.compressed.split("%")[0]))
    entries = [network] if host is None else [host, network]
    return " or ".join(f"INFQ_WEBHOOK_ALLOW='{json.dumps([e])}'" for e in entries)


def _check_address(url: str, address: str, *, host: str | None, networks: list[IPNetwork]) -> None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError as e:
        raise RefusedCallbackUrl(url, f"resolver returned {address!r}, not an address") from e
    embedded = _embedded_ipv4(ip)
    candidates = [ip] if embedded is None else [ip, embedded]
    if any(candidate in net for candidate in candidates for net in networks):
        return
    # Judge the address by where it really leads.
    for judged in reversed(candidates):
        kind = _refused_kind(judged)
        if kind is None:
            continue
        via = "" if judged is ip else f" (it leads to {judged})"
        subject = address if host is None else f"host {host!r} resolves to {address}, which"
        raise RefusedCallbackUrl(
            url, f"{subject} is {kind}{via}; allow it with {_allow_hint(judged, host)}"
        )


def check_destination(
    url: str, *, allow: Sequence[str], resolve: Callable[[str, int], list[str]]
) -> list[str]:
    """Refuse ``url`` unless it is valid and every address of its host may be called;
    returns the addresses checked, to connect to (none for an allowed hostname, which
    is trusted to resolve as it likes).

    ``allow`` holds hostnames (exact, case-insensitive) and IP networks or addresses that
    pass although they are not global. A literal IP host is checked without resolving.
    """
    parts = _split(url)
    host = _normalise_host(parts.hostname or "")
    port = parts.port or _SCHEMES[parts.scheme.lower()]
    allowed_hosts, networks = _parse_allow(allow)
    if host in allowed_hosts:
        return []
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        _check_address(url, host, host=None, networks=networks)
        return [host]
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as e:
        raise UnresolvedHost(url, f"cannot resolve host {host!r}: {e}") from e
    if not addresses:
        raise UnresolvedHost(url, f"cannot resolve host {host!r}: no addresses")
    for address in addresses:
        _check_address(url, address, host=host, networks=networks)
    return addresses
