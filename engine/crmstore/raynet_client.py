"""Raynet's REST API v2 over HTTP: one instance, signed in with HTTP Basic (the API user's
e-mail and key) and the header X-Instance-Name.

Every request goes through the outbound address policy (security/outbound.py), as the Graph
backend's do. What Raynet refuses comes back as a `RaynetError` whose text an administrator
can act on: a wrong key, an unknown instance, a blocked address, an exhausted daily budget.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import requests
from django.utils.translation import gettext

from engine.crmstore.base import CrmError
from engine.crmstore.raynet_budget import renewal_words, renews_at
from engine.crmstore.raynet_upload import MultipartFile, file_size
from security.outbound import checked_session

DEFAULT_BASE_URL = "https://app.raynet.cz/api/v2/"
TIMEOUT = 60                  # seconds per request
PAGE = 1000                   # the longest page Raynet lists
# A 5xx or a dropped connection is tried again this often, after these pauses (seconds):
# Raynet's own hiccups pass quickly, and a run that gives up loses only this page.
RETRY_PAUSES = (0.5, 2.0)


class RaynetError(CrmError):
    """Raynet refused or could not be reached; `str()` says it in plain words."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def item_level(self) -> bool:
        """Whether it concerns the record at hand (refused as invalid, a server error on
        it), not the connection (unreachable, signed out, blocked, out of budget): the
        former is recorded against the record and the run goes on; the latter ends it."""
        return self.status >= 500 or (400 <= self.status < 500
                                      and self.status not in (401, 403, 429))


class NotFound(RaynetError):
    pass


@dataclass
class Budget:
    """The instance's daily request budget as Raynet's last answer told it."""

    limit: int | None = None
    remaining: int | None = None
    reset: str = ""


class RaynetClient:
    def __init__(self, base_url: str, instance: str, user: str, api_key: str) -> None:
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/") + "/"
        self.instance = instance
        self._auth = (user, api_key)
        # A session (its connection pool) per thread: writes are sent several at a time
        # (raynet_parallel.py), and a requests.Session is not safe to share across threads.
        self._local = threading.local()
        self.budget = Budget()
        # Told every answer's budget (raynet_budget.py keeps it for the whole instance).
        self.on_budget: Callable[[Budget], None] | None = None

    @property
    def session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = checked_session(requests.Session())
            session.auth = self._auth
            session.headers["X-Instance-Name"] = self.instance
        return session

    # --- requests ---------------------------------------------------------------------------
    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
             body: Any = None) -> Any:
        """The answer's JSON (None for an answer without a body)."""
        return self._send(method, path, lambda: contextlib.nullcontext(
            {"params": params, "json": body}))

    def upload(self, path: str, open_file: Callable[[], BinaryIO], file_name: str,
               content_type: str) -> Any:
        """POST the file `open_file()` gives as `multipart/form-data` (the part `file`),
        read as it is sent; opened again for each attempt."""
        @contextlib.contextmanager
        def attempt() -> Iterator[dict[str, Any]]:
            with open_file() as stream:
                body = MultipartFile(stream, file_size(stream), file_name, content_type)
                yield {"data": body, "headers": {"Content-Type": body.content_type}}
        return self._send("POST", path, attempt)

    def _send(self, method: str, path: str,
              request: Callable[[], contextlib.AbstractContextManager[dict[str, Any]]]
              ) -> Any:
        url = self.base_url + path.lstrip("/")
        pauses = list(RETRY_PAUSES)
        while True:
            try:
                with request() as arguments:
                    response = self.session.request(method, url, timeout=TIMEOUT,
                                                    allow_redirects=False, **arguments)
            except requests.ConnectionError as exc:
                if not (pauses and _repeatable(method, 0)):
                    raise RaynetError(gettext(
                        "Raynet could not be reached at %(url)s: %(reason)s")
                        % {"url": self.base_url, "reason": exc}) from exc
            except requests.RequestException as exc:
                raise RaynetError(gettext("Raynet could not be reached at %(url)s: %(reason)s")
                                  % {"url": self.base_url, "reason": exc}) from exc
            else:
                self._read_budget(response)
                if not (response.status_code >= 500 and pauses
                        and _repeatable(method, response.status_code)):
                    return self._answer(response)
            time.sleep(pauses.pop(0))

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params or None)

    def pages(self, entity: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every row of a list, a page of 1,000 at a time, sorted by id so that paging
        neither skips nor repeats a row."""
        offset = 0
        while True:
            answer = self.get(f"{entity}/", **params, offset=offset, limit=PAGE,
                              sortColumn="id", sortDirection="ASC")
            rows = answer.get("data") or []
            yield from rows
            offset += len(rows)
            if len(rows) < PAGE or offset >= int(answer.get("totalCount") or 0):
                return

    # --- answers ----------------------------------------------------------------------------
    def _read_budget(self, response: requests.Response) -> None:
        headers = response.headers
        if "X-Ratelimit-Limit" in headers:
            self.budget = Budget(_int(headers.get("X-Ratelimit-Limit")),
                                 _int(headers.get("X-Ratelimit-Remaining")),
                                 headers.get("X-Ratelimit-Reset", ""))
            if self.on_budget is not None:
                self.on_budget(self.budget)

    def _answer(self, response: requests.Response) -> Any:
        status = response.status_code
        try:
            data = response.json() if response.content else None
        except ValueError:
            data = None
        if status < 300:
            return data
        message = _message(data) or response.reason or ""
        if status == 401 and "instance" in message.lower():
            raise RaynetError(gettext(
                "Raynet knows no instance named %(instance)s: check the instance name (the "
                "first part of your Raynet address).") % {"instance": self.instance}, status)
        if status == 401:
            raise RaynetError(gettext(
                "Raynet refused the sign-in: check the API user's e-mail and the API key "
                "(Raynet › Settings › API)."), status)
        if status == 403 and "TooManyBadLogins" in message:
            raise RaynetError(gettext(
                "Raynet blocks this server's address after too many failed sign-ins; it is "
                "let in again after 60 minutes. Correct the API key meanwhile."), status)
        if status == 429:
            raise RaynetError(gettext(
                "The Raynet instance has used up its daily request budget (%(limit)s "
                "requests); syncing goes on when it renews at %(at)s.")
                % {"limit": self.budget.limit or "?",
                   "at": renewal_words(renews_at(self.budget.reset))}, status)
        if status == 404:
            raise NotFound(message, status)
        if 300 <= status < 400:
            raise RaynetError(gettext(
                "Raynet's address answered with a redirect (%(status)s): check the base URL.")
                % {"status": status}, status)
        raise RaynetError(gettext("Raynet answered %(status)s: %(message)s")
                          % {"status": status, "message": message}, status)


def _repeatable(method: str, status: int) -> bool:
    """Whether a failed request may be sent again: reads, edits and deletes come to the same
    whatever happened to the first; a create (PUT) only after a 503, which Raynet answers
    before doing anything, since another failure may have come after the record was made
    (a create from Exchange would then be refused for its external id, and linked next run;
    a company has none)."""
    return method != "PUT" or status == 503


def _message(data: Any) -> str:
    if isinstance(data, dict):
        return str(data.get("message") or data.get("translatedMessage") or "")
    return ""


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
