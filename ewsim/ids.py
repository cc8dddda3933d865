"""Identifiers. exchangelib never parses ids (notes §3.2), so any unique string would work;
these mimic Exchange's look so log output reads familiar, and, as Exchange does, ewsim tells an
id it cannot parse (`id_problem`) from one that names nothing."""

from __future__ import annotations

import base64
import json
import re
import secrets


def item_id() -> str:
    return "AAMkA" + secrets.token_urlsafe(30)


def immutable_id() -> str:
    # Graph's immutable ids (Prefer: IdType="ImmutableId") stay the same when an item moves.
    return "AAkALg" + secrets.token_urlsafe(30)


def folder_id() -> str:
    return "AAMkF" + secrets.token_urlsafe(24)


def attachment_id() -> str:
    return "AAMkAt" + secrets.token_urlsafe(30)


def change_key() -> str:
    # A new ChangeKey on every modification (notes §3.2).
    return "CQAAAB" + secrets.token_hex(8)


def subscription_id() -> str:
    return "SUB" + secrets.token_hex(16)


def token() -> str:
    return "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(40)


def occurrence_id(master_id: str, index: int) -> str:
    raw = json.dumps({"m": master_id, "i": index}).encode()
    return "AAMkO" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_occurrence_id(value: str) -> tuple[str, int] | None:
    if not value.startswith("AAMkO"):
        return None
    body = value[5:]
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return str(data["m"]), int(data["i"])
    except (ValueError, KeyError, TypeError):
        return None


# Exchange's ids and change keys are base64 (either alphabet: EWS uses the standard one, Graph
# and ewsim's own ids the URL-safe one); anything else cannot be parsed.
_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")
ID_PREFIXES = ("AAMk", "AAkALg")   # what the item, folder and attachment ids above start with
MIN_ID_LENGTH = 12
MIN_CHANGE_KEY_BYTES = 8           # a real ChangeKey holds a type and a length before the data


def id_problem(value: str) -> str | None:
    """The response code Exchange gives an Id attribute it cannot parse, or None if it can.

    An id that parses but names nothing is ErrorItemNotFound / ErrorFolderNotFound, decided
    by the caller; only the shape is judged here.
    """
    if not value:
        return "ErrorInvalidIdEmpty"
    if (not value.startswith(ID_PREFIXES) or len(value) < MIN_ID_LENGTH
            or not _BASE64.match(value)):
        return "ErrorInvalidIdMalformed"
    if value.startswith("AAMkO") and parse_occurrence_id(value) is None:
        return "ErrorInvalidIdMalformed"
    return None


def change_key_parses(value: str) -> bool:
    """Whether a ChangeKey is base64 holding at least a type and a length, as Exchange's are.

    ewsim's own keys are 22 characters (unpadded), so missing padding is forgiven.
    """
    if not _BASE64.match(value) or len(value.rstrip("=")) % 4 == 1:
        return False
    body = value.rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(body.replace("+", "-").replace("/", "_")
                                       + "=" * (-len(body) % 4))
    except ValueError:
        return False
    return len(raw) >= MIN_CHANGE_KEY_BYTES
