"""EWS operations: each module registers handlers `op(ctx, request_element) -> payload`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxml import etree

from ..context import Context

Handler = Callable[[Context, etree._Element], Any]
OPERATIONS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        OPERATIONS[name] = fn
        return fn
    return register


def load_all() -> dict[str, Handler]:
    # Imported for their registration side effect.
    from . import attachments, find, folders, items, misc, notifications, sync  # noqa: F401
    return OPERATIONS
