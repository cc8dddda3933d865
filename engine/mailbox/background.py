"""The background writer: one thread per mailbox object that sends calls (the engine's writes,
a read ahead) while the caller goes on, each call's outcome handed back as a `Pending`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Pending(Generic[T]):
    """A backend call started with `MailboxBackend.start`: `result()` waits for it and returns
    its value or raises its exception, in the caller's thread."""

    def __init__(self, value: T | None = None, error: BaseException | None = None) -> None:
        self._value, self._error = value, error

    def result(self) -> T:
        if self._error is not None:
            raise self._error
        return self._value   # type: ignore[return-value]


# What a call run in the worker's thread hands back: its value, what it raised, and what the
# worker carries back to the caller's thread (see BackgroundWorker.carried_back).
Outcome = tuple[Any, BaseException | None, Any]


class Background(Pending[Any]):
    """A call under way in a BackgroundWorker's thread."""

    def __init__(self, worker: BackgroundWorker, future: Future[Outcome]) -> None:
        super().__init__()
        self._worker, self._future, self._done = worker, future, False

    def result(self) -> Any:
        if not self._done:
            self._done = True
            self._value, self._error = self._worker.finish(self, self._future)
        return super().result()


class BackgroundWorker:
    """One background thread for a mailbox's calls. What runs there touches no database
    (Django's connections and transactions are per thread). A backend that keeps state per
    thread (a throttling budget, a request count) carries it over in `in_thread` and back in
    `carried_back`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool: ThreadPoolExecutor | None = None
        self._outstanding: list[Background] = []

    def submit(self, call: Callable[[], Any]) -> Background:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        pending = Background(self, self._pool.submit(self.in_thread(call)))
        self._outstanding.append(pending)
        return pending

    def in_thread(self, call: Callable[[], Any]) -> Callable[[], Outcome]:
        """`call` as the worker's thread runs it (built in the caller's thread)."""
        def run() -> Outcome:
            try:
                return call(), None, None
            except BaseException as exc:   # raised in the caller's thread (Pending.result)
                return None, exc, None
        return run

    def carried_back(self, carried: Any) -> None:
        """What the call's thread handed back, taken over in the caller's thread."""

    def finish(self, pending: Background, future: Future[Outcome]
               ) -> tuple[Any, BaseException | None]:
        self._outstanding.remove(pending)
        value, error, carried = future.result()
        self.carried_back(carried)
        return value, error

    def discard(self) -> None:
        """Waits for what is under way and drops it."""
        for pending in list(self._outstanding):
            with contextlib.suppress(Exception):
                pending.result()

    def close(self) -> None:
        self.discard()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
