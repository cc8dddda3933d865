"""Which network addresses the server may connect to on behalf of an organization.

An organization administrator types the URLs the server connects to (an EWS URL, a token
endpoint, a Graph root). On a hosted server that must not open the operator's own network to
them: the database, Redis, the cloud's metadata service or a neighbour's intranet. So every
outbound connection made for a connection goes through `open_connection`, which resolves the
name, checks **each address it would connect to** and connects only to allowed ones. Checking
the address actually connected to (not the name, not the URL) also holds against a name that
resolves to a refused address, against DNS answers that change between a check and the
connect, and against redirects, whose new connections come through here too.

- Link-local (the cloud metadata address 169.254.169.254 included), unspecified, multicast
  and reserved addresses are always refused.
- Loopback and private ranges (on-premises Exchange lives in the latter) are refused unless
  the operator lists them in `MAILBOX_ALLOWED_NETWORKS` (CIDR notation, from the
  environment). No user, a superuser neither, can change that from the web.
- Every other (public) address is allowed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import requests
import requests.adapters
import requests.utils
import urllib3.connection
import urllib3.connectionpool
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection
from urllib3.util import parse_url
from urllib3.util.timeout import _DEFAULT_TIMEOUT

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Shared address space (RFC 6598, carrier-grade NAT) is not "private" to Python, but it is
# nobody's public server either: it is treated as a private range.
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


class AddressRefused(Exception):
    """The server may not connect to any address `host` resolves to.

    Deliberately not an OSError: the HTTP libraries retry and wrap OSErrors as network
    trouble; a refusal by policy is final and must reach the caller as it is."""

    def __init__(self, host: str, address: str, always: bool) -> None:
        self.host, self.address, self.always = host, address, always
        literal = host.strip("[]") == address
        if always and literal:
            message = gettext_noop(
                "%(address)s is an address this server never connects to (a link-local, "
                "multicast or reserved address).")
        elif always:
            message = gettext_noop(
                "%(host)s resolves to %(address)s, which this server never connects to (a "
                "link-local, multicast or reserved address).")
        elif literal:
            message = gettext_noop(
                "%(address)s is an address this server may not reach: ask the server's "
                "operator to allow that network.")
        else:
            message = gettext_noop(
                "%(host)s resolves to %(address)s, which this server may not reach: ask the "
                "server's operator to allow that network.")
        if settings.configured:   # in words of the active language; plain without Django
            message = _(message)
        self.message = message % {"host": host, "address": address}
        super().__init__(self.message)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    always_refused: bool = False


def _plain(address: Address) -> Address:
    """An IPv4 address written as IPv6 (::ffff:127.0.0.1) is judged as the IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def judge(address: Address, allowed_networks: Iterable[Network]) -> Verdict:
    """Whether the server may connect to `address`, given the operator's allowed networks."""
    address = _plain(address)
    # ::1 lies in IPv6's reserved ::/8: loopback is judged before the reserved ranges.
    if not address.is_loopback and (
            address.is_link_local or address.is_unspecified or address.is_multicast
            or address.is_reserved or address in _THIS_NETWORK
            or (isinstance(address, ipaddress.IPv4Address)
                and address == ipaddress.IPv4Address("255.255.255.255"))):
        return Verdict(False, always_refused=True)
    internal = (address.is_loopback or address.is_private or address in _SHARED_ADDRESS_SPACE
                or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local))
    if not internal:
        return Verdict(True)
    return Verdict(any(address.version == network.version and address in network
                       for network in allowed_networks))


def parse_networks(entries: Sequence[str]) -> tuple[Network, ...]:
    """The operator's CIDR list; a bare address means that one address."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False)
                 for entry in entries if entry.strip())


@lru_cache(maxsize=8)
def _allowed_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_networks(entries)


def allowed_networks() -> tuple[Network, ...]:
    if settings.configured:
        return _allowed_networks(tuple(getattr(settings, "MAILBOX_ALLOWED_NETWORKS", ())))
    # A mailbox backend used without Django (a benchmark, a script): the same switch, read
    # from the environment as the settings read it.
    return _allowed_networks(tuple(os.environ.get("MAILBOX_ALLOWED_NETWORKS", "").split(",")))


def check_address(host: str, address: str) -> None:
    """Raise AddressRefused unless the server may connect to `address` (which `host` named)."""
    verdict = judge(ipaddress.ip_address(address.split("%", 1)[0]), allowed_networks())
    if not verdict.allowed:
        raise AddressRefused(host, address, verdict.always_refused)


def resolve(host: str, port: int) -> list[tuple[Any, ...]]:
    """getaddrinfo's answers for a TCP connection (raises socket.gaierror)."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def allowed_addresses(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to that the server may connect to, in getaddrinfo's
    order; AddressRefused (naming the first address) when there is none."""
    answers = resolve(host, port)
    addresses = list(dict.fromkeys(str(entry[4][0]) for entry in answers))
    allowed: list[str] = []
    first_refusal: AddressRefused | None = None
    for address in addresses:
        try:
            check_address(host, address)
        except AddressRefused as refusal:
            first_refusal = first_refusal or refusal
            continue
        allowed.append(address)
    if not allowed:
        assert first_refusal is not None   # getaddrinfo never answers an empty list
        raise first_refusal
    return allowed


def open_connection(host: str, port: int, timeout: Any = _DEFAULT_TIMEOUT,
                    source_address: tuple[str, int] | None = None,
                    socket_options: Any = None) -> socket.socket:
    """A TCP connection to `host`, made only to addresses the policy allows (tried in turn,
    as socket.create_connection does); AddressRefused when it allows none."""
    last_error: OSError | None = None
    for address in allowed_addresses(host, port):
        try:
            # A numeric host: urllib3 connects to exactly this address, with no second lookup.
            return urllib3_connection.create_connection(
                (address, port), timeout, source_address=source_address,
                socket_options=socket_options)
        except OSError as exc:
            last_error = exc
    assert last_error is not None
    raise last_error


# --- requests / urllib3: every connection of a session through the policy --------------------
class _CheckedConnectionMixin:
    """urllib3's connection with its socket opened by `open_connection`. The errors are
    translated exactly as urllib3 does, so callers see the usual exceptions."""

    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any
    _dns_host: str

    def _new_conn(self) -> socket.socket:
        try:
            return open_connection(self._dns_host, self.port, self.timeout,
                                   source_address=self.source_address,
                                   socket_options=self.socket_options)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from exc
        except OSError as exc:
            raise NewConnectionError(
                self, f"Failed to establish a new connection: {exc}") from exc  # type: ignore[arg-type]


class _CheckedHTTPConnection(_CheckedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _CheckedHTTPSConnection(_CheckedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _CheckedHTTPConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSConnectionPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class CheckedAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter whose every connection goes through the address policy.

    Through a proxy from the environment (HTTPS_PROXY) the connection is the proxy's, which
    the operator chose; the target's own name is then checked before the request is handed to
    the proxy, so a proxy is no way around the policy."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _CheckedHTTPConnectionPool, "https": _CheckedHTTPSConnectionPool}

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        proxies = kwargs.get("proxies") or {}
        if proxies and requests.utils.select_proxy(request.url, proxies):
            target = parse_url(request.url)
            if target.host:
                # A name only the proxy can resolve is left to the proxy's own rules.
                with contextlib.suppress(socket.gaierror):
                    allowed_addresses(target.host.strip("[]"),
                                      target.port or (443 if target.scheme == "https" else 80))
        return super().send(request, *args, **kwargs)


def checked_session(session: requests.Session, **adapter_options: Any) -> requests.Session:
    """`session` with every http and https connection through the address policy."""
    adapter = CheckedAdapter(**adapter_options)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
