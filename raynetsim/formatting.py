"""Answers as JSON text: datetimes written in the format the request asked for."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .dates import render


def dates_as_text(value: Any, zone: ZoneInfo, iso: bool) -> Any:
    if isinstance(value, datetime):
        return render(value, zone, iso)
    if isinstance(value, dict):
        return {k: dates_as_text(v, zone, iso) for k, v in value.items()}
    if isinstance(value, list):
        return [dates_as_text(v, zone, iso) for v in value]
    return value


def encode(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")
