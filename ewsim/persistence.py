"""Keeping the simulator's mailboxes across restarts: one JSON file (`--state FILE`).

Without it every start seeds new item ids, and a sync server that synced the old ones sees
every item vanish and a look-alike appear: duplicates in its CRM. With it a restart is like
an Exchange server's: the same folders, items, ids, change keys and change logs, so the sync
states and delta tokens clients hold stay valid.

What is kept: users, OAuth apps and the bearer tokens issued, mailboxes with their folders,
items, attachments and change logs, every store id an item had (Graph delta names removed items
by it) and Graph's delta bookkeeping. What is not: notification subscriptions (clients
subscribe again after `ErrorInvalidSubscription`, as after an Exchange restart), faults,
counters and the sent-mail log — test fixtures, not mailbox content.

The file is written whole to a temporary file beside it, flushed to disk and renamed over the
old one, so a crash mid-write leaves the previous state, never half a file. A file that does
not parse, or was written by another format version, raises `StateFileError` saying so; the
caller then starts afresh (`__main__` moves the file aside, so nothing is lost to
inspection).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import threading
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

from lxml import etree

from .categories import CategoryList, MasterCategory
from .ns import PARSER
from .recurrence import OccurrenceException
from .store import App, Attachment, Folder, Item, Mailbox, Principal, Store, User

log = logging.getLogger("ewsim.persistence")

FORMAT = "ewsim-state"
# Bump when a stored class changes in a way old files cannot be read into.
VERSION = 1
SAVE_INTERVAL_SECONDS = 2.0

# The classes a state file may name; anything else is refused, never constructed.
CLASSES: dict[str, type] = {cls.__name__: cls for cls in (
    User, App, Mailbox, Folder, Item, Attachment, OccurrenceException, CategoryList,
    MasterCategory)}


class StateFileError(Exception):
    """The state file cannot be used; the message says why in words."""


# --- values <-> JSON ------------------------------------------------------------------------
def encode(value: Any) -> Any:
    """A JSON-ready form of `value`; types JSON lacks are tagged (`{"$bytes": …}`)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [encode(v) for v in value]}
    if isinstance(value, set | frozenset):
        # Sorted, so that the same state always gives the same bytes (no needless writes).
        return {"$set": sorted((encode(v) for v in value), key=repr)}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"$dict": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, etree._Element):
        return {"$xml": etree.tostring(value, encoding="unicode", with_tail=False)}
    name = type(value).__name__
    if dataclasses.is_dataclass(value) and CLASSES.get(name) is type(value):
        return {"$class": name, "fields": {f.name: encode(getattr(value, f.name))
                                           for f in dataclasses.fields(value)}}
    raise TypeError(f"ewsim cannot keep a {type(value).__qualname__} in its state file")


def decode(value: Any) -> Any:
    """The inverse of `encode`; raises ValueError/KeyError/TypeError on a malformed value."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (tag, inner), = value.items()
        if tag == "$tuple":
            return tuple(decode(v) for v in inner)
        if tag == "$set":
            return {decode(v) for v in inner}
        if tag == "$dict":
            return {decode(k): decode(v) for k, v in inner}
        if tag == "$bytes":
            return base64.b64decode(inner, validate=True)
        if tag == "$datetime":
            return dt.datetime.fromisoformat(inner)
        if tag == "$date":
            return dt.date.fromisoformat(inner)
        if tag == "$xml":
            return etree.fromstring(inner.encode("utf-8"), PARSER)
    if set(value) == {"$class", "fields"}:
        return _construct(value["$class"], value["fields"])
    if any(k.startswith("$") for k in value):
        raise ValueError(f"unknown tag in {sorted(value)}")
    return {k: decode(v) for k, v in value.items()}


def _construct(name: str, fields: dict[str, Any]) -> Any:
    cls = CLASSES.get(name)
    if cls is None:
        raise ValueError(f"unknown class {name!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(fields) - known
    if unknown:
        raise ValueError(f"{name} has no field {sorted(unknown)[0]!r}")
    # Fields missing from the file take their defaults (a field added since it was written).
    return cls(**{k: decode(v) for k, v in fields.items()})


# --- the server's state <-> bytes ------------------------------------------------------------
def dump_state(server: Any) -> bytes:
    """The server's mailbox state as the file's bytes (taken under the store's lock)."""
    store: Store = server.store
    with store.lock:
        tokens = {token: _principal_ref(principal) for token, principal in store.tokens.items()}
        body = {
            "users": encode(store.users),
            "apps": encode(store.apps),
            "tokens": tokens,
            "mailboxes": encode(store.mailboxes),
            "immutable_of": store.immutable_of,
        }
        graph = server.graph
        with graph.lock:
            body["graph"] = {"generation": dict(graph.generation),
                             "view_states": encode(dict(graph.view_states))}
    document = {"format": FORMAT, "version": VERSION, "state": body}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def load_state(server: Any, data: bytes) -> dict[str, int]:
    """Replace the server's mailboxes with those in `data`; returns items per mailbox.

    Raises StateFileError (the server is left empty, as after a reset) if the bytes are not
    a state file of this version or do not decode.
    """
    server.reset()
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise StateFileError(f"it is not a readable JSON file ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise StateFileError("it is not an ewsim state file")
    if document.get("version") != VERSION:
        raise StateFileError(f"it was written by another ewsim version (format version "
                             f"{document.get('version')!r}, this one reads {VERSION})")
    store: Store = server.store
    with store.lock:
        try:
            _restore(server, document["state"])
        except (ValueError, KeyError, TypeError, AttributeError, etree.XMLSyntaxError) as exc:
            server.reset()
            raise StateFileError(f"its content is damaged ({type(exc).__name__}: {exc})") from None
        return {address: sum(len(f.items) for f in mailbox.folders.values())
                for address, mailbox in store.mailboxes.items()}


def _principal_ref(principal: Principal) -> dict[str, str]:
    if principal.app is not None:
        return {"app": principal.app.client_id}
    assert principal.user is not None
    return {"user": principal.user.address}


def _restore(server: Any, state: dict[str, Any]) -> None:
    store: Store = server.store
    store.users = _typed(decode(state["users"]), User)
    store.apps = _typed(decode(state["apps"]), App)
    store.mailboxes = _typed(decode(state["mailboxes"]), Mailbox)
    store.immutable_of = {str(k): str(v) for k, v in state["immutable_of"].items()}
    for token, ref in state["tokens"].items():
        # A token of a user or app no longer there is simply dropped (401, as expired).
        if "app" in ref and ref["app"] in store.apps:
            store.tokens[token] = Principal(app=store.apps[ref["app"]])
        elif "user" in ref and ref["user"] in store.users:
            store.tokens[token] = Principal(user=store.users[ref["user"]])
    # The indexes hold the same objects as the mailboxes' folders (one item, many ways in).
    for mailbox in store.mailboxes.values():
        for folder in mailbox.folders.values():
            if not isinstance(folder, Folder):
                raise TypeError("a folder is not a Folder")
            store.folders[folder.id] = folder
            for item in folder.items.values():
                store.items[item.id] = item
                store.by_immutable[item.immutable_id] = item
                for attachment in item.all_attachments():
                    store.attachments[attachment.id] = (item, attachment)
    graph = server.graph
    with graph.lock:
        graph.generation = Counter({str(k): int(v)
                                    for k, v in state["graph"]["generation"].items()})
        graph.view_states = OrderedDict(decode(state["graph"]["view_states"]))


def _typed(value: Any, cls: type) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(v, cls) for v in value.values()):
        raise TypeError(f"expected {cls.__name__} objects")
    return value


# --- the file -------------------------------------------------------------------------------
def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a reader (or a crash) sees the old file or the new,
    never a mixture: a temporary file beside it, synced, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    # The rename itself is durable only once the folder is synced.
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    except OSError:
        pass   # some file systems refuse to sync a folder; the data itself is on disk
    finally:
        os.close(folder)


class StateKeeper:
    """Loads the state file at start and writes it while the server runs.

    Every `interval` seconds the state is serialized; it is written only if it differs from
    what the file holds (most ticks of an idle demo write nothing). `stop()` writes a last
    time, so what changed in the final seconds before a shutdown is kept.
    """

    def __init__(self, server: Any, path: Path | str,
                 interval: float = SAVE_INTERVAL_SECONDS) -> None:
        self.server = server
        self.path = Path(path)
        self.interval = interval
        self._written: str | None = None   # digest of what the file holds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._save_lock = threading.Lock()

    def load(self) -> dict[str, int] | None:
        """The items per mailbox loaded, or None if there is no file yet.

        Raises StateFileError for a file that cannot be used."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateFileError(f"it cannot be read ({exc.strerror})") from None
        counts = load_state(self.server, data)
        self._written = hashlib.sha256(data).hexdigest()
        return counts

    def save(self) -> bool:
        """Write the state if it changed since the last write; True if it wrote."""
        with self._save_lock:   # the ticker and stop() never write at once
            data = dump_state(self.server)
            digest = hashlib.sha256(data).hexdigest()
            if digest == self._written:
                return False
            write_atomically(self.path, data)
            self._written = digest
            return True

    def save_or_log(self) -> bool:
        """`save`, with a failure logged rather than raised (the server keeps serving, and
        the next tick or the last save tries again); False if it failed."""
        try:
            self.save()
        except (OSError, TypeError) as exc:
            log.error("ewsim could not write its state to %s: %s", self.path, exc)
            return False
        return True

    def start(self) -> StateKeeper:
        self._thread = threading.Thread(target=self._run, name="ewsim-state", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> bool:
        """Stop the ticks and write a last time; False if that write failed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.save_or_log()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.save_or_log()
