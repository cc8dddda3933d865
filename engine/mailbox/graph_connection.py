"""The Graph backend's plumbing: the client, errors in words, `$batch`es, item addresses."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote

from engine.mailbox.background import BackgroundWorker, Pending
from engine.mailbox.base import MailboxAccess, MailboxBackend
from engine.mailbox.graph_errors import translate
from engine.mailbox.graph_http import (
    CONCURRENCY,
    IMMUTABLE_IDS,
    BatchRequest,
    BatchResult,
    Budget,
    GraphClient,
    chunked,
)
from engine.mailbox.wording import translated
from engine.records import Kind

EVENTS_PREFER = f'{IMMUTABLE_IDS}, outlook.timezone="UTC", outlook.body-content-type="text"'
ITEM_PATHS = {Kind.CONTACTS: "contacts", Kind.CALENDAR: "events", Kind.MAIL: "messages"}


def quoted(value: str) -> str:
    return quote(value, safe="")


class GraphConnection(MailboxBackend):
    """What every part of GraphMailbox stands on: the client, the translation of errors,
    `$batch`es, the background writer."""

    ids_survive_moves = True   # immutable ids (Prefer: IdType="ImmutableId")

    def __init__(self, access: MailboxAccess) -> None:
        super().__init__(access)
        self.budget = Budget(access.throttle_budget_seconds)
        self._client: GraphClient | None = None
        self._client_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._writer: BackgroundWorker | None = None
        self._folder_cache: dict[tuple[Kind, str], dict[str, Any]] = {}
        self._places: dict[str, tuple[str, bool]] = {}   # _where
        # Small attachments read with their messages (GraphReading), by (message id,
        # attachment id), until `read_attachments` hands them out: one page's at most.
        self._read_ahead: dict[tuple[str, str], bytes] = {}

    @property
    def client(self) -> GraphClient:
        with self._client_lock:
            if self._client is None:
                self._client = GraphClient(self.access, self.budget)
            return self._client

    @property
    def requests_made(self) -> int:
        return self._client.requests if self._client is not None else 0

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def start(self, call: Callable[[], Any]) -> Pending[Any]:
        if self._writer is None:
            self._writer = BackgroundWorker("graph-behind")
        return self._writer.submit(call)

    def _errors(self) -> AbstractContextManager[None]:
        return translated(translate, self.access)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._errors():
            return self.client.call(method, self.client.user + path, **kwargs)

    def _batch(self, requests: Sequence[BatchRequest], prefer: str = IMMUTABLE_IDS
               ) -> list[BatchResult]:
        """`$batch`es of 20, up to four of them under way at once (the mailbox's limit)."""
        chunks = list(chunked(requests))
        with self._errors():
            if len(chunks) <= 1:
                return self.client.batch(requests, prefer) if requests else []
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=CONCURRENCY,
                                                thread_name_prefix="graph-batch")
            futures = [self._pool.submit(self.client.batch, chunk, prefer) for chunk in chunks]
            return [result for future in futures for result in future.result()]

    def _item_url(self, kind: Kind, item_id: str, suffix: str = "") -> str:
        return f"{self.client.user}/{ITEM_PATHS[kind]}/{quoted(item_id)}{suffix}"
