"""Delta queries over a folder's change journal (`Folder.log`, written by `Store.record`).

A state token is a position in the mailbox's journal plus what the round asked for
($select, the calendar window); it is opaque to clients. `$skiptoken` (nextLink) and
`$deltatoken` (deltaLink) carry the same kind of position. A token of another folder,
one that does not decode, or one issued before the mailbox's delta generation was bumped
(`POST /_control/graph/expire-delta`) answers 410 SyncStateNotFound, as Exchange does
when its delta token cache no longer has the state.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from ..changelog import net_changes
from ..store import Folder, Item
from .context import GraphContext, GraphResponse
from .errors import GraphError

DEFAULT_PAGE = 10       # Graph's page size for Outlook delta without odata.maxpagesize
MAX_PAGE = 1000


def encode_token(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def expired(initial_link: str) -> GraphError:
    # Location: where a full synchronization starts again (the delta overview's
    # "synchronization reset").
    return GraphError(410, "SyncStateNotFound", headers={"Location": initial_link})


def decode_token(ctx: GraphContext, text: str, scope: str, initial_link: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(data, dict) or data.get("scope") != scope:
            raise ValueError("token of another collection")
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise expired(initial_link) from exc
    if data.get("gen") != ctx.server.graph.generation[ctx.mailbox]:
        raise expired(initial_link)
    return data


def incoming_token(ctx: GraphContext) -> str | None:
    query = ctx.request.query
    return query.get("$skiptoken") or query.get("$deltatoken") or None


Accepts = Callable[[Item, str | None], bool]          # (item, the round's $filter)
Shape = Callable[[GraphContext, Item, str | None, str | None], dict[str, Any]]


def folder_delta(ctx: GraphContext, folder: Folder, path: str, odata_type: str,
                 accepts: Accepts, shape: Shape) -> GraphResponse:
    """One page of `{path}` (e.g. "contactFolders/{id}/contacts/delta").

    $select, $expand and $filter of the round's first request are kept in its tokens,
    as Graph keeps them in the nextLink/deltaLink it returns.
    """
    link = ctx.link(path)
    token = incoming_token(ctx)
    scope = f"folder:{folder.id}"
    if token is None:
        since = 0
        query = ctx.request.query
        select, expand, where = query.get("$select"), query.get("$expand"), query.get("$filter")
    else:
        state = decode_token(ctx, token, scope, link)
        since = int(state["seq"])
        select, expand, where = state.get("sel"), state.get("exp"), state.get("flt")
    def accepted() -> Iterator[tuple[int, str, str, Item | None]]:
        for seq, item_id, kind in net_changes(folder, since):
            item = folder.items.get(item_id)
            if kind == "delete" or (item is not None and accepts(item, where)):
                yield seq, item_id, kind, item

    size = ctx.page_size(DEFAULT_PAGE, MAX_PAGE)
    # One change beyond the page tells whether there is a next one.
    changes = list(islice(accepted(), size + 1))
    page = changes[:size]
    values: list[dict[str, Any]] = []
    for _seq, item_id, kind, item in page:
        if kind == "delete" or item is None:
            values.append({"@odata.type": odata_type, "id": ctx.removed_id(item_id),
                           "@removed": {"reason": "deleted"}})
        else:
            values.append(shape(ctx, item, select, expand))
    gen = ctx.server.graph.generation[ctx.mailbox]
    body: dict[str, Any] = {"@odata.context": ctx.context_url(f"Collection({odata_type[1:]})"),
                            "value": values}
    if len(page) < len(changes):
        state = {"scope": scope, "seq": page[-1][0], "sel": select, "exp": expand,
                 "flt": where, "gen": gen}
        body["@odata.nextLink"] = ctx.link(path, **{"$skiptoken": encode_token(state)})
    else:
        mbx = ctx.store.mailboxes[folder.mailbox]
        state = {"scope": scope, "seq": mbx.seq, "sel": select, "exp": expand,
                 "flt": where, "gen": gen}
        body["@odata.deltaLink"] = ctx.link(path, **{"$deltatoken": encode_token(state)})
    return GraphResponse(200, body)
