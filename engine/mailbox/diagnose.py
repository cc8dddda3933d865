"""The "Test connection" check: what stands between this server and a mailbox, in plain words.

Each step proves one thing before the next relies on it, so the first one that fails names the
problem: the host name resolves (DNS), something listens on the port (TCP), the TLS handshake
succeeds (https only, honouring the connection's "verify TLS"), the port speaks HTTP, and
finally the mailbox backend signs in and opens the mailbox (wrong credentials, no impersonation
right, no such mailbox, not an EWS endpoint). Only standard-library sockets are used here: the
backend is reached through its interface, never through exchangelib.

Nothing here touches the database once the `MailboxAccess` is built, so callers build it first
and run the network steps outside any transaction.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.utils.translation import gettext as _

from engine.mailbox import access_for, backend_class
from engine.mailbox.base import MailboxAccess, MailboxError, NetworkRefused, status_words
from security import outbound

if TYPE_CHECKING:
    from profiles.models import MailboxConnection, SyncProfile

# Short enough that an administrator waits for the answer, long enough for a slow VPN.
DEFAULT_TIMEOUT = 8.0


@dataclass(frozen=True)
class Step:
    name: str        # dns, tcp, tls, http, mailbox
    ok: bool
    detail: str


@dataclass
class Report:
    """The outcome of a test: `reason` is "ok" or the failing MailboxError's reason."""

    ok: bool
    reason: str
    message: str
    server_version: str = ""
    mailbox: str = ""
    steps: list[Step] = field(default_factory=list)


class _StepFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def diagnose(access: MailboxAccess, kind: str = "ews",
             timeout: float = DEFAULT_TIMEOUT) -> Report:
    """Run the steps against `access.endpoint`, then open `access.mailbox` with the backend."""
    steps: list[Step] = []
    try:
        backend = backend_class(kind)
    except NotImplementedError:
        return Report(False, "unsupported",
                      _("Testing this kind of connection is not available yet."),
                      mailbox=access.mailbox)
    url = urlsplit(access.endpoint)
    host = url.hostname or ""
    if url.scheme not in ("http", "https") or not host:
        message = _("The Microsoft Graph URL %(url)s is not a web address: leave it blank for "
                    "https://graph.microsoft.com/v1.0.") if kind == "graph" else \
            _("The EWS URL %(url)s is not a web address: it starts with https://.")
        return Report(False, "setup", message % {"url": access.endpoint or "—"},
                      mailbox=access.mailbox)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        _resolve(host, port, steps)
        with _connect(host, port, timeout, steps) as raw:
            sock = _handshake(raw, host, port, access.verify_tls, timeout, steps) \
                if url.scheme == "https" else raw
            with sock:
                _speaks_http(sock, host, port, url.path or "/", timeout, steps)
    except _StepFailed as failure:
        return Report(False, failure.reason, failure.message, mailbox=access.mailbox, steps=steps)

    if not access.mailbox:
        return Report(False, "setup", _("The server answers, but there is no mailbox to open."),
                      steps=steps)
    # A test must answer while the administrator waits: throttling is not waited out for long.
    budget = min(access.throttle_budget_seconds, timeout)
    try:
        with backend(dataclasses.replace(access, throttle_budget_seconds=budget)) as mailbox:
            info = mailbox.check()
    except MailboxError as exc:
        steps.append(Step("mailbox", False, exc.message))
        return Report(False, exc.reason, exc.message, mailbox=access.mailbox, steps=steps)
    steps.append(Step("mailbox", True, info.version))
    return Report(
        True, "ok",
        _("The connection works: signed in and opened the mailbox %(mailbox)s on %(host)s "
          "(server version %(version)s).")
        % {"mailbox": info.mailbox, "host": host, "version": info.version},
        server_version=info.version, mailbox=info.mailbox, steps=steps)


# --- the steps ---------------------------------------------------------------------------------
def _resolve(host: str, port: int, steps: list[Step]) -> None:
    """The name resolves, to at least one address this server may connect to."""
    try:
        allowed = outbound.allowed_addresses(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        steps.append(Step("dns", False, str(exc)))
        raise _StepFailed("dns", _(
            "The server name %(host)s cannot be resolved (DNS failure): check the EWS URL, or "
            "this server's DNS settings.") % {"host": host}) from exc
    except outbound.AddressRefused as refusal:
        # Said before anything is sent, and the same for every port: a refused network is
        # not probed for which ports answer.
        steps.append(Step("dns", False, refusal.address))
        raise _StepFailed(NetworkRefused.reason, refusal.message) from refusal
    steps.append(Step("dns", True, ", ".join(allowed)))


def _connect(host: str, port: int, timeout: float, steps: list[Step]) -> socket.socket:
    started = time.monotonic()
    try:
        # By name again, through the policy: it tries every allowed address in turn.
        sock = outbound.open_connection(host, port, timeout)
    except outbound.AddressRefused as refusal:   # the name now resolves elsewhere
        steps.append(Step("tcp", False, refusal.address))
        raise _StepFailed(NetworkRefused.reason, refusal.message) from refusal
    except ConnectionRefusedError as exc:
        steps.append(Step("tcp", False, str(exc)))
        raise _StepFailed("refused", _(
            "%(host)s refused the connection on port %(port)s: nothing listens there (a wrong "
            "port in the EWS URL, or the web service is stopped).")
            % {"host": host, "port": port}) from exc
    except TimeoutError as exc:
        steps.append(Step("tcp", False, str(exc)))
        raise _timed_out(host, timeout, _("opening the connection")) from exc
    except OSError as exc:
        steps.append(Step("tcp", False, str(exc)))
        raise _StepFailed("unreachable", _(
            "%(host)s cannot be reached on port %(port)s (%(error)s): check the network and "
            "firewalls between this server and Exchange.")
            % {"host": host, "port": port, "error": exc.strerror or exc}) from exc
    steps.append(Step("tcp", True, f"{time.monotonic() - started:.2f} s"))
    return sock


def _handshake(sock: socket.socket, host: str, port: int, verify: bool, timeout: float,
               steps: list[Step]) -> ssl.SSLSocket:
    context = ssl.create_default_context()
    if not verify:
        # The administrator turned verification off for this connection (an internal CA).
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    sock.settimeout(timeout)
    try:
        tls = context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        steps.append(Step("tls", False, str(exc)))
        raise _StepFailed("tls", _(
            "The TLS certificate of %(host)s is not trusted (%(error)s): install the issuing "
            "certificate authority on this server, or turn off “verify TLS certificates” for "
            "this connection.") % {"host": host, "error": exc.verify_message or exc}) from exc
    except TimeoutError as exc:
        sock.close()
        steps.append(Step("tls", False, str(exc)))
        raise _timed_out(host, timeout, _("the TLS handshake")) from exc
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        steps.append(Step("tls", False, str(exc)))
        raise _StepFailed("tls", _(
            "The TLS handshake with %(host)s on port %(port)s failed (%(error)s): does this port "
            "speak https? If the server only speaks http, write the EWS URL with http://.")
            % {"host": host, "port": port, "error": getattr(exc, "reason", None) or exc}) from exc
    steps.append(Step("tls", True, f"{tls.version()}"))
    return tls


def _speaks_http(sock: socket.socket, host: str, port: int, path: str, timeout: float,
                 steps: list[Step]) -> None:
    """Send one unauthenticated request and read the status line.

    The answer's code is not judged here (EWS answers 401 without credentials); this step only
    proves that the server answers in time and in HTTP, so that a silent server is reported
    after `timeout` instead of after the backend's much longer request timeout.
    """
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: text/xml\r\n"
               "Content-Length: 0\r\nConnection: close\r\n\r\n")
    sock.settimeout(timeout)
    try:
        sock.sendall(request.encode("ascii", "replace"))
        status_line = sock.makefile("rb").readline(200)
    except TimeoutError as exc:
        steps.append(Step("http", False, str(exc)))
        raise _timed_out(host, timeout, _("waiting for the first answer")) from exc
    except OSError as exc:
        steps.append(Step("http", False, str(exc)))
        raise _StepFailed("service", _(
            "%(host)s accepted the connection on port %(port)s but broke it off without an "
            "answer (%(error)s).") % {"host": host, "port": port, "error": exc}) from exc
    status = re.match(rb"HTTP/\d(?:\.\d)? (\d{3})", status_line)
    if status is None:
        steps.append(Step("http", False, _("no HTTP status line")))
        raise _StepFailed("service", _(
            "%(host)s answers on port %(port)s, but not in HTTP: is the port in the EWS URL "
            "right?") % {"host": host, "port": port})
    # The code only: the reason phrase and everything after it are the server's own words.
    steps.append(Step("http", True, status_words(int(status.group(1)))))


def _timed_out(host: str, timeout: float, stage: str) -> _StepFailed:
    return _StepFailed("timeout", _(
        "%(host)s did not answer within %(seconds)s seconds (%(stage)s): a firewall may be "
        "dropping the traffic, or the server is overloaded.")
        % {"host": host, "seconds": f"{timeout:g}", "stage": stage})


# --- which mailbox a test opens ---------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """What a test opens, read from the configuration before any network work starts."""

    access: MailboxAccess | None
    kind: str = "ews"
    problem: str = ""        # why there is nothing to open, in words (access is None)


def connection_target(connection: MailboxConnection) -> Target:
    """A connection is tested on its service account's own mailbox (when its user name is an
    e-mail address), else on the first profile's mailbox using it; a connection with
    per-profile credentials signs in as that profile."""
    profile = connection.profiles.order_by("mailbox").first()
    if connection.uses_own_credentials and "@" in connection.username:
        mailbox = connection.username.strip().lower()
    elif profile is not None:
        mailbox = profile.mailbox
    elif connection.uses_own_credentials and connection.kind == connection.Kind.GRAPH:
        return Target(None, connection.kind, _(
            "There is no mailbox to test with: fill in “Mailbox to test with” "
            "(someone@example.com), or add a sync profile that uses this connection."))
    elif connection.uses_own_credentials:
        return Target(None, connection.kind, _(
            "There is no mailbox to test with: write the service account's user name as an "
            "e-mail address (svc@example.com), or add a sync profile that uses this connection."))
    else:
        return Target(None, connection.kind, _(
            "This connection signs in with each profile's own credentials: add a sync profile "
            "that uses it, then test that profile."))
    signs_in_as = None if connection.uses_own_credentials else profile
    return Target(access_for(connection, mailbox, signs_in_as), connection.kind)


def profile_target(profile: SyncProfile) -> Target:
    """A profile is tested on its mailbox, with its own credentials if the connection has none."""
    connection = profile.connection
    return Target(access_for(connection, profile.mailbox, profile), connection.kind)


def run(target: Target, timeout: float = DEFAULT_TIMEOUT) -> Report:
    """Test a target; touches no database, so several may run side by side in threads."""
    if target.access is None:
        return Report(False, "setup", target.problem)
    return diagnose(target.access, target.kind, timeout)
