"""Talking to Microsoft Graph: the client, throttling, `$batch`.

- Tokens (graph_tokens.py): a token Graph refuses (401) is dropped and fetched once again.
- Throttling: 429 and 503 are waited out as `Retry-After` says, within the run's budget
  (`MailboxAccess.throttle_budget_seconds`), then `Throttled`; at most 4 requests per mailbox
  are under way at once (Graph's limit for Outlook resources), however many threads ask.
- `$batch`: up to 20 requests in one, a result per request in the order given; requests
  throttled inside a batch are sent again after their wait.
"""

from __future__ import annotations

import contextlib
import email.utils
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from engine.mailbox import GRAPH_ROOT, wording
from engine.mailbox.base import MailboxAccess
from engine.mailbox.graph_errors import GraphError, error_from, translate
from engine.mailbox.graph_session import TIMEOUT, Session
from engine.mailbox.graph_tokens import forget_tokens, token
from security.outbound import checked_session

BATCH_LIMIT = 20              # requests per $batch (Graph's limit)
CONCURRENCY = 4               # requests under way per mailbox (Graph's limit for Outlook)
DEFAULT_RETRY_AFTER = 2.0     # when a 429/503 names no wait
IMMUTABLE_IDS = 'IdType="ImmutableId"'
CHUNK = 256 * 1024


# --- Retry-After ------------------------------------------------------------------------------
def retry_after(value: str | None, default: float = DEFAULT_RETRY_AFTER,
                now: float | None = None) -> float:
    """Seconds to wait, from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None or not str(value).strip():
        return default
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return default
    if when is None:
        return default
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Budget:
    """The waiting for throttling a run may spend, shared by its threads."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds

    def wait(self, seconds: float, host: str) -> None:
        if time.monotonic() + seconds > self.deadline:
            raise wording.budget_used_up(host, self.seconds)
        time.sleep(seconds)


# --- the client ---------------------------------------------------------------------------
_slots: dict[tuple[str, str], threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def _slot(access: MailboxAccess) -> threading.BoundedSemaphore:
    """The mailbox's concurrency limit, shared by every object and thread of this process."""
    key = (access.endpoint, access.mailbox.lower())
    with _slots_lock:
        if key not in _slots:
            _slots[key] = threading.BoundedSemaphore(CONCURRENCY)
        return _slots[key]


@dataclass
class BatchResult:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self) -> GraphError:
        return error_from(self.status, self.body)

    @property
    def missing(self) -> bool:
        """The item named is not in the mailbox: 404, or an id Graph cannot parse (400
        ErrorInvalidIdMalformed, e.g. one stored from another source), which names none."""
        return self.status == 404 or (
            self.status == 400 and self.error().code == "ErrorInvalidIdMalformed")


@dataclass(frozen=True)
class BatchRequest:
    method: str
    url: str              # relative to the API root: "/users/a@b/contacts/ID"
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def chunked(items: Sequence[Any], size: int = BATCH_LIMIT) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def batch_payload(requests_: Sequence[BatchRequest], prefer: str) -> dict[str, Any]:
    """The JSON of one `$batch` (ids are the positions, so answers map back in order)."""
    payload = []
    for index, request in enumerate(requests_):
        entry: dict[str, Any] = {"id": str(index), "method": request.method, "url": request.url,
                                 "headers": {"Prefer": prefer, **request.headers}}
        if request.body is not None:
            entry["body"] = request.body
            entry["headers"].setdefault("Content-Type", "application/json")
        payload.append(entry)
    return {"requests": payload}


def batch_results(answer: dict[str, Any], count: int) -> list[BatchResult]:
    """The answers of a `$batch`, in the order of its requests (Graph answers in any order);
    a request Graph did not answer comes back as a 500 of its own."""
    results = [BatchResult(500, {"error": {"code": "NoAnswer",
                                           "message": "The batch held no answer for it."}})
               for _ in range(count)]
    for response in answer.get("responses") or []:
        try:
            index = int(response.get("id"))
        except (TypeError, ValueError):
            continue
        if 0 <= index < count:
            headers = {str(k).lower(): str(v) for k, v in (response.get("headers") or {}).items()}
            results[index] = BatchResult(int(response.get("status") or 500),
                                         response.get("body"), headers)
    return results


class GraphClient:
    """Requests to one mailbox's Graph resources (`/users/{mailbox}`)."""

    def __init__(self, access: MailboxAccess, budget: Budget) -> None:
        self.access, self.budget = access, budget
        self.root = (access.endpoint or GRAPH_ROOT).rstrip("/")
        self.user = f"/users/{access.mailbox}"
        self.session = checked_session(Session(), pool_connections=2,
                                       pool_maxsize=CONCURRENCY)
        self.session.verify = access.verify_tls
        self.slot = _slot(access)
        self.host = urlsplit(self.root).hostname or self.root
        self._count_lock = threading.Lock()
        self.requests = 0

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.root + path

    def _send(self, method: str, url: str, *, prefer: str, stream: bool = False,
              **kwargs: Any) -> requests.Response:
        """One request, its token refreshed once if refused, throttling waited out."""
        refreshed = False
        extra = kwargs.pop("headers", None) or {}
        while True:
            headers = {"Authorization": f"Bearer {token(self.access)}", "Prefer": prefer,
                       **extra}
            try:
                with self.slot:
                    response = self.session.request(method, url, headers=headers,
                                                    stream=stream, timeout=TIMEOUT, **kwargs)
                    if not stream:
                        _ = response.content   # read while the slot is held
            except requests.RequestException as exc:
                raise translate(exc, self.access) from exc
            with self._count_lock:
                self.requests += 1
            if response.status_code == 401 and not refreshed:
                response.close()
                forget_tokens(self.access)
                refreshed = True
                continue
            if response.status_code in (429, 503):
                wait = retry_after(response.headers.get("Retry-After"))
                response.close()
                self.budget.wait(wait, self.host)
                continue
            return response

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
             body: Any = None, prefer: str = IMMUTABLE_IDS,
             headers: dict[str, str] | None = None) -> Any:
        """A JSON request; its JSON answer (None for 204), or GraphError."""
        response = self._send(method, self.url(path), prefer=prefer, params=params,
                              json=body, headers=dict(headers or {}))
        return self._json(response)

    def _json(self, response: requests.Response) -> Any:
        try:
            data = response.json() if response.content else None
        except ValueError:
            data = response.text
        if response.status_code >= 300:
            raise error_from(response.status_code, data)
        return data

    @contextlib.contextmanager
    def stream(self, path: str) -> Iterator[requests.Response]:
        """A GET whose body is read in chunks (attachments, MIME): never whole in memory."""
        response = self._send("GET", self.url(path), prefer=IMMUTABLE_IDS, stream=True)
        try:
            if response.status_code >= 300:
                raise error_from(response.status_code, _safe_json(response))
            yield response
        finally:
            response.close()

    def put_bytes(self, path: str, data: bytes, content_type: str) -> Any:
        response = self._send("PUT", self.url(path), prefer=IMMUTABLE_IDS, data=data,
                              headers={"Content-Type": content_type})
        return self._json(response)

    def batch(self, requests_: Sequence[BatchRequest],
              prefer: str = IMMUTABLE_IDS) -> list[BatchResult]:
        """Send `requests_` in `$batch`es of 20; a result per request, in order. Requests
        throttled inside a batch are sent again after the longest wait they were given."""
        results: list[BatchResult | None] = [None] * len(requests_)
        pending = list(range(len(requests_)))
        while pending:
            throttled: list[int] = []
            wait = 0.0
            for chunk in chunked(pending):
                answer = self.call("POST", "/$batch", body=batch_payload(
                    [requests_[i] for i in chunk], prefer))
                for index, result in zip(chunk, batch_results(answer or {}, len(chunk)),
                                         strict=True):
                    if result.status in (429, 503):
                        throttled.append(index)
                        wait = max(wait, retry_after(result.headers.get("retry-after")))
                    else:
                        results[index] = result
            if throttled:
                self.budget.wait(wait, self.host)
            pending = throttled
        return [r for r in results if r is not None]

    def pages(self, path: str, params: dict[str, Any] | None = None,
              prefer: str = IMMUTABLE_IDS) -> Iterator[dict[str, Any]]:
        """A collection, page by page (following @odata.nextLink)."""
        url: str | None = path
        while url:
            data = self.call("GET", url, params=params if url == path else None, prefer=prefer)
            yield data
            url = data.get("@odata.nextLink")


def _safe_json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
