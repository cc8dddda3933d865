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
    from . import (  # noqa: F401
        attachments,
        configuration,
        copy_item,
        find,
        folder_edits,
        folders,
        items,
        misc,
        notifications,
        sync,
    )
    return OPERATIONS
