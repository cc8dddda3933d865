"""`/outlook/masterCategories`: the mailbox's master category list (../categories.py), the
same one EWS reads from the calendar folder's CategoryList configuration."""

from __future__ import annotations

from ..categories import graph_json
from .context import GraphContext, GraphResponse
from .errors import GraphError
from .folders import collection, entity
from .router import route


@route("GET", "outlook/masterCategories", "outlook.masterCategories")
def list_master_categories(ctx: GraphContext) -> GraphResponse:
    category_list = ctx.store.mailboxes[ctx.mailbox].category_list
    values = [graph_json(c) for c in category_list.categories] if category_list else []
    return collection(ctx, f"users('{ctx.mailbox}')/outlook/masterCategories", values)


@route("GET", "outlook/masterCategories/{category}", "outlook.masterCategory")
def get_master_category(ctx: GraphContext, category: str) -> GraphResponse:
    category_list = ctx.store.mailboxes[ctx.mailbox].category_list
    for candidate in category_list.categories if category_list else []:
        if candidate.guid == category.lower():
            return entity(ctx, f"users('{ctx.mailbox}')/outlook/masterCategories/$entity",
                          graph_json(candidate))
    raise GraphError(404, "ErrorItemNotFound")
