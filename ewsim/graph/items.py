"""What every item kind shares: one entity with $select/$expand, lists with the stamp
$filter and paging, and the body of writes (extended properties, changeKey checks)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..store import Item
from . import extprops
from .context import GraphContext, GraphResponse
from .errors import GraphError
from .odata import parse_expand, parse_select, project

Render = Callable[[GraphContext, Item], dict[str, Any]]
DEFAULT_TOP = 10     # Graph's default page for message/contact/event lists
MAX_TOP = 1000


def expansions(ctx: GraphContext, item: Item, expand: dict[str, dict[str, str]],
               extra: Callable[[GraphContext, Item, str, dict[str, str]], Any] | None = None,
               ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, options in expand.items():
        if name == "singlevalueextendedproperties":
            out["singleValueExtendedProperties"] = extprops.render(
                item, extprops.expand_ids(options))
            out["singleValueExtendedProperties@odata.context"] = ctx.context_url(
                "singleValueExtendedProperties")
        elif extra is not None:
            key, value = extra(ctx, item, name, options)
            out[key] = value
        else:
            raise GraphError(400, "BadRequest",
                             f"Parsing OData Select and Expand failed: Could not find a "
                             f"property named '{name}'.")
    return out


def shaped(ctx: GraphContext, item: Item, render: Render,
           extra: Callable[..., Any] | None = None, select: str | None = None,
           expand: str | None = None, from_query: bool = True) -> dict[str, Any]:
    """The item as $select and $expand ask for it (the request's, or a delta token's)."""
    if from_query:
        select = ctx.request.query.get("$select")
        expand = ctx.request.query.get("$expand")
    data = project(render(ctx, item), parse_select(select))
    data.update(expansions(ctx, item, parse_expand(expand), extra))
    return data


def soft_delete(ctx: GraphContext, item: Item) -> None:
    """DELETE moves an item to Deleted Items (deleting it there removes it for good)."""
    trash = ctx.store.folder_by_distinguished(item.mailbox, "deleteditems")
    if trash is None or item.folder_id == trash.id:
        ctx.store.remove_item(item)
    else:
        ctx.store.move_item(item, trash)


def entity(ctx: GraphContext, item: Item, render: Render, fragment: str,
           extra: Callable[..., Any] | None = None, status: int = 200) -> GraphResponse:
    return GraphResponse(status, {"@odata.context": ctx.context_url(fragment),
                                  **shaped(ctx, item, render, extra)})


def listing(ctx: GraphContext, items: Iterable[Item], render: Render, path: str,
            fragment: str, extra: Callable[..., Any] | None = None,
            apply_filter: bool = True) -> GraphResponse:
    """GET of a collection: optional stamp $filter, $top/$skip paging with a nextLink.

    `apply_filter=False`: the caller already applied a $filter of its own kind.
    """
    query = ctx.request.query
    chosen = list(items)
    if apply_filter and query.get("$filter"):
        prop, value = extprops.parse_filter(query["$filter"])
        chosen = [i for i in chosen if extprops.stored_value(i, prop) == value]
    try:
        skip = int(query.get("$skip") or 0)
        top = min(int(query.get("$top") or DEFAULT_TOP), MAX_TOP)
    except ValueError as exc:
        raise GraphError(400, "ErrorInvalidUrlQuery", "Invalid $top or $skip.") from exc
    page = chosen[skip:skip + top]
    body: dict[str, Any] = {"@odata.context": ctx.context_url(fragment),
                            "value": [shaped(ctx, i, render, extra) for i in page]}
    if skip + top < len(chosen):
        params = {k: v for k, v in query.items() if k != "$skip"}
        params["$skip"] = str(skip + top)
        body["@odata.nextLink"] = ctx.link(path, **params)
    return GraphResponse(200, body)


def check_if_match(ctx: GraphContext, item: Item) -> None:
    """If-Match with a stale etag: 412 like Graph (Exchange's ErrorIrresolvableConflict)."""
    wanted = ctx.request.headers.get("if-match")
    if not wanted or wanted.strip() == "*":
        return
    if wanted.strip().removeprefix("W/").strip('"') != item.changekey:
        raise GraphError(412, "ErrorIrresolvableConflict")


def apply_extended(item: Item, data: dict[str, Any]) -> None:
    if "singleValueExtendedProperties" in data:
        extprops.set_values(item, data["singleValueExtendedProperties"])
