"""What both backends say alike: how a network failure, throttling, a conflict or a failed
write is put in plain words, whichever protocol met it.

Only our own words, a status code and local (TLS, socket) errors reach these messages: what a
remote server answered is never echoed (a connection's server may be any server)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

from engine.mailbox.base import (
    ConnectionRefused,
    DnsFailure,
    FolderNotFound,
    MailboxAccess,
    MailboxError,
    Throttled,
    TimedOut,
    TlsFailure,
    tls_reason,
)

# --- a write's result ---------------------------------------------------------------------
CONFLICT = "Changed in Exchange since it was read; it will be merged next time."
GONE = "The item is not in the mailbox any more."
NO_ANSWER = "The server gave no answer for this item."


def unwritable(reason: object) -> str:
    """Why a record was not sent: it cannot be put into an item (the item's own check)."""
    return f"The record cannot be written: {reason}"


def short(text: str, limit: int = 300) -> str:
    """`text` on one line, cut at `limit` characters."""
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[:limit] + "…"


# --- the mailbox or the server --------------------------------------------------------------
def folder_gone() -> FolderNotFound:
    return FolderNotFound("The folder no longer exists in the mailbox: choose it again.")


def busy(host: str) -> Throttled:
    return Throttled(f"{host} is busy and asked to slow down; the next run goes on.")


def budget_used_up(host: str, seconds: float) -> Throttled:
    return Throttled(f"{host} kept asking to slow down for longer than this run may wait "
                     f"({int(seconds)} s); the next run goes on.")


# --- the network ------------------------------------------------------------------------------
def tls_failed(host: str, text: str) -> TlsFailure:
    return TlsFailure(f"The TLS connection to {host} failed{tls_reason(text)}. Check the "
                      "certificate, or turn TLS verification off for this connection.")


def names_no_address(lowered: str) -> bool:
    """Whether a (lower-cased) socket error says the server's name did not resolve."""
    return ("name or service not known" in lowered or "nameresolution" in lowered
            or "getaddrinfo" in lowered or "nodename nor servname" in lowered)


def unresolvable(host: str) -> DnsFailure:
    return DnsFailure(f"The server name {host} cannot be resolved (DNS).")


def refused(host: str, endpoint: str) -> ConnectionRefused:
    return ConnectionRefused(f"{host} refused the connection: nothing listens on port "
                             f"{urlsplit(endpoint).port or 443}.")


def no_answer_in_time(host: str) -> TimedOut:
    return TimedOut(f"{host} did not answer in time.")


def broke_off(host: str) -> str:
    return f"The connection to {host} broke off before an answer came."


def connection_failed(host: str, exc: BaseException) -> MailboxError:
    return MailboxError(f"The connection to {host} failed ({type(exc).__name__}).")


# --- a backend's calls ------------------------------------------------------------------------
Translate = Callable[[BaseException, MailboxAccess], MailboxError]


@contextlib.contextmanager
def translated(translate: Translate, access: MailboxAccess) -> Iterator[None]:
    """What a backend's calls raise, as the MailboxError `translate` makes of it."""
    try:
        yield
    except MailboxError:
        raise
    except Exception as exc:
        raise translate(exc, access) from exc
