"""Secrets are taken out of every log record before any handler sees it.

Libraries log more than they should at DEBUG level (exchangelib writes each request's
headers, Basic credentials included). Rather than trusting every logger's configuration,
each record is cleaned where it is made (a log record factory): its message, and its
traceback, are formatted at once and what looks like a credential is replaced, as is every
secret this process has decrypted (profiles.secrets remembers them).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

REDACTED = "[redacted]"
# Shorter strings would blot out ordinary words; no real password is this short.
_SHORTEST_REMEMBERED = 6

_PATTERNS = [
    # Authorization and Proxy-Authorization headers in any notation: a header line, a dict.
    (re.compile(r"(?i)(\bauthorization\b['\"]?\s*[:=]\s*['\"]?)[^'\"\r\n]+"), r"\1" + REDACTED),
    # Form fields and JSON members that carry credentials or tokens.
    (re.compile(r"(?i)(\b(?:password|passwd|client_secret|client_assertion|access_token|"
                r"refresh_token|id_token)\b['\"]?\s*[:=]\s*['\"]?)[^'\"&\s,}]+"),
     r"\1" + REDACTED),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
     REDACTED),
]

_known: set[str] = set()
_known_lock = threading.Lock()
_traceback_formatter = logging.Formatter()


def remember(secret: str) -> None:
    """A secret this process holds in plain text: it is cut out of every later record."""
    if len(secret) >= _SHORTEST_REMEMBERED:
        with _known_lock:
            _known.add(secret)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


# exchangelib logs each exchange at DEBUG with these members: what the server answered. Its
# headers and body are the server's words, which this server never repeats (the EWS URL is
# typed by an organization's administrator and may point anywhere).
_REMOTE_ANSWER = frozenset({"response_headers", "xml_response"})
NOT_LOGGED = "[the server's answer is not logged]"


# Messages of other libraries whose arguments are a server's answer (MSAL logs a token
# endpoint's body when it is no JSON).
_REMOTE_ANSWER_MESSAGES = frozenset({"Token response is not in json format: %s"})


def _without_remote_answer(record: logging.LogRecord) -> Any:
    args = record.args
    if isinstance(args, dict) and _REMOTE_ANSWER & args.keys():
        return {key: NOT_LOGGED if key in _REMOTE_ANSWER and value is not None else value
                for key, value in args.items()}
    if args and record.msg in _REMOTE_ANSWER_MESSAGES:
        return tuple(NOT_LOGGED for _ in args) if isinstance(args, tuple) else NOT_LOGGED
    return args


def _cleaned(record: logging.LogRecord) -> logging.LogRecord:
    record.args = _without_remote_answer(record)
    try:
        message = record.getMessage()
    except Exception:   # a malformed call: let logging report it as it always does
        return record
    record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(_traceback_formatter.formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


_installed = False


def install() -> None:
    """Wrap the current record factory (once per process)."""
    global _installed
    if _installed:
        return
    make_record = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return _cleaned(make_record(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    _installed = True
