"""Opaque identifiers. exchangelib never parses ids (notes §3.2), so any unique string works;
these mimic Exchange's look so log output reads familiar."""

from __future__ import annotations

import base64
import json
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
