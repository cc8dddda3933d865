"""The benchmarks' temporary folders, removed when the benchmark ends however it ends.

A first sync of 10,000 contacts leaves a database of hundreds of MB in its VAR_DIR, and an
e-mail import its saved attachments: folders left behind by every run (and by every failed or
interrupted one) filled the temporary directory. `directory()` hands out a folder that is
removed when this process exits: normally, by an exception, by Ctrl-C (KeyboardInterrupt), or
by SIGTERM once `exit_on_sigterm()` is in force. `BENCH_KEEP_TMP=1` keeps them, to read a
failed run's logs.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

_made: list[Path] = []


def keep_requested() -> bool:
    return os.environ.get("BENCH_KEEP_TMP", "") not in ("", "0")


def remove_all() -> None:
    """Remove every folder `directory()` made in this process (idempotent)."""
    while _made:
        path = _made.pop()
        if not keep_requested():
            shutil.rmtree(path, ignore_errors=True)


def directory(prefix: str) -> Path:
    """A new temporary folder that lives until this process exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _made.append(path)
    return path


@contextmanager
def scoped_directory(prefix: str) -> Iterator[Path]:
    """A temporary folder removed when the block ends, whatever ends it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if not keep_requested():
            shutil.rmtree(path, ignore_errors=True)


atexit.register(remove_all)


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """SIGTERM (a `kill`, a CI runner's cancel) ends the process as an exception would, so
    `finally` blocks and exit handlers run: the simulator child stops, the folders go."""
    signal.signal(signal.SIGTERM, _raise_exit)
