"""E-mails filed in Raynet: each message an e-mail activity (`PUT /email/`), its persons and
their companies its participants, its attachments uploaded (`POST /fileUpload`) and attached
(`PUT /attachment/email/{id}/`) — the e-mail import's side of `RaynetCrm`.

Identity, as external ids given with the create (so a crash between the create and what
follows is recovered by looking them up, never by creating again):
- `exchange:<item id>`: the mailbox item it was first filed from (`filed_emails`, and the
  identity of a message without a Message-ID); `exchange-hash:<hash>` for an item id that
  cannot stand in a URL path;
- `message:<hash>`: its Message-ID with its fingerprint (sender, date, subject): the same
  message from any mailbox;
- `message-id:<hash>`: its Message-ID alone, held by the first e-mail of that Message-ID, so
  that a different message reusing it is seen to collide (it gets an e-mail of its own).

Who has it: Raynet's users are persons, so a CRM user has an e-mail when its person is a
participant (the first filer's is its owner). The owner is a participant from the create on,
so an e-mail counts as filed only once the linking edit made it COMPLETED: one cut off
between the two is linked by the next run rather than skipped as done.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import mimetypes
import re
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.utils.translation import gettext

from engine.crmstore.base import EmailMatch, FiledEmail, Filing, SavedDocument
from engine.crmstore.raynet_client import NotFound, RaynetClient, RaynetError
from engine.crmstore.raynet_mapping import CONTACTS_ONLY, iso
from engine.records import MessageRecord

ORIGIN = "exchange:"
ORIGIN_HASHED = "exchange-hash:"
PATH_SAFE = re.compile(r"[A-Za-z0-9._=+-]+")
MESSAGE = "message:"
MESSAGE_ID = "message-id:"
EMAIL_COLUMNS = ("contactInfo.email", "contactInfo.email2")
# Addresses looked up at once past which listing every person (a request per thousand) is
# cheaper than two requests per address.
INDEX_FROM = 20
# Failures that concern the whole connection, not one e-mail: they stop the run.
RUN_STOPPERS = frozenset({401, 403, 429})
TITLE_LENGTH = 255
DONE = "COMPLETED"


def _hashed(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:40]


def fingerprint(message: MessageRecord) -> str:
    """What tells a message apart besides its Message-ID: its sender, when it was sent and
    its subject, normalized as the built-in store does (address without case, whole UTC
    seconds, subject NFC with runs of spaces as one), so that every mailbox's copy, read
    through EWS or Graph, gives the same hash."""
    sender = (message.sender.email if message.sender else "").strip().casefold()
    sent = message.sent.astimezone(dt.UTC).replace(microsecond=0).isoformat() \
        if message.sent else ""
    return _hashed(sender, sent, " ".join(unicodedata.normalize("NFC", message.subject).split()))


def origin_id(origin: str) -> str:
    """The external id of the mailbox item an e-mail was first filed from. It is looked up in
    a path (`GET /email/ext/{extId}/`), where a "/" (base64 item ids have them) would not
    pass even encoded (servers refuse %2F): such an id is hashed."""
    if PATH_SAFE.fullmatch(origin):
        return ORIGIN + origin
    return ORIGIN_HASHED + _hashed(origin)


def identity(message: MessageRecord, origin: str) -> str:
    """The external id that finds the message's e-mail."""
    if not message.message_id:
        return origin_id(origin)
    return MESSAGE + _hashed(message.message_id, fingerprint(message))


def description(message: MessageRecord) -> str:
    """Raynet shows an e-mail's content as HTML: the HTML body, else the text one with its
    line breaks kept."""
    if message.body_html:
        return message.body_html
    return html.escape(message.body_text).replace("\n", "<br>\n")


class RaynetMail:
    """The e-mail import's calls for one Raynet instance. Persons are looked up once per
    backend (one run): their addresses and details are cached until a person is written."""

    def __init__(self, client: RaynetClient, owner: Callable[[], int | None]) -> None:
        self.client = client
        self._owner = owner
        self._by_address: dict[str, list[str]] = {}
        self._all_listed = False      # `_by_address` holds every person's addresses
        self._persons: dict[str, dict[str, Any] | None] = {}

    def forget_persons(self) -> None:
        """A person was created, changed or deleted: the cached look-ups may be wrong."""
        self._by_address.clear()
        self._all_listed = False
        self._persons.clear()

    # --- persons ----------------------------------------------------------------------------
    def find_persons(self, addresses: Sequence[str]) -> dict[str, list[str]]:
        """Persons having each address as their e-mail or second e-mail, without regard to
        case. Raynet filters those columns by EQ, NE, LIKE and LIKE_NOCASE only (no IN), so
        an address costs two requests, once a run (LIKE's wildcards in an address are
        harmless: each row's address is compared again here). Past `INDEX_FROM` addresses
        at once (a first contacts sync), every person is listed instead, a thousand a
        request, and the run's look-ups are answered from that."""
        wanted = list(dict.fromkeys(a.lower() for a in addresses if a))
        unknown = [a for a in wanted if a not in self._by_address]
        if unknown and not self._all_listed and len(unknown) > INDEX_FROM:
            self._list_all()
        for address in unknown:
            if self._all_listed:
                self._by_address.setdefault(address, [])
                continue
            keys: set[int] = set()
            for column in EMAIL_COLUMNS:
                for row in self.client.pages("person", {
                        f"{column}[LIKE_NOCASE]": address, **CONTACTS_ONLY}):
                    if address in _addresses(row):
                        keys.add(int(row["id"]))
            self._by_address[address] = [str(k) for k in sorted(keys)]
        return {address: list(self._by_address[address]) for address in wanted}

    def _list_all(self) -> None:
        found: dict[str, set[int]] = {}
        for row in self.client.pages("person", dict(CONTACTS_ONLY)):
            for address in _addresses(row):
                found.setdefault(address, set()).add(int(row["id"]))
        self._by_address = {a: [str(k) for k in sorted(keys)] for a, keys in found.items()}
        self._all_listed = True

    def person(self, key: str) -> dict[str, Any] | None:
        if key not in self._persons:
            self._persons[key] = self._detail("person", key)
        return self._persons[key]

    def person_names(self, keys: Sequence[str]) -> dict[str, str]:
        names = {}
        for key in dict.fromkeys(keys):
            data = self.person(key)
            if data is not None:
                parts = (data.get("titleBefore"), data.get("firstName"), data.get("lastName"),
                         data.get("titleAfter"))
                names[key] = " ".join(str(p) for p in parts if p)
        return names

    # --- look-ups ---------------------------------------------------------------------------
    def _detail(self, entity: str, key: str) -> dict[str, Any] | None:
        if not key.isdigit():
            return None
        try:
            return self.client.get(f"{entity}/{key}/", dateFormat="ISO8601")["data"]
        except NotFound:
            return None

    def _by_ext_id(self, ext_id: str) -> dict[str, Any] | None:
        try:
            return self.client.get(f"email/ext/{quote(ext_id, safe=':=+')}/",
                                   dateFormat="ISO8601")["data"]
        except NotFound:
            return None

    @staticmethod
    def _has(data: dict[str, Any], user: str) -> bool:
        """Whether the CRM user (a person's id) has the e-mail: a participant of it, once
        linked (COMPLETED)."""
        if data.get("status") != DONE or not user.isdigit():
            return False
        return int(user) in _participant_persons(data)

    def filed_emails(self, user: str, origins: Sequence[str]) -> dict[str, FiledEmail]:
        """One request per item: Raynet finds records by one external id at a time."""
        found = {}
        for origin in dict.fromkeys(o for o in origins if o):
            data = self._by_ext_id(origin_id(origin))
            if data is not None and self._has(data, user):
                found[origin] = FiledEmail(str(data["id"]), str(data.get("title") or ""))
        return found

    def find_email(self, message: MessageRecord, origin: str, user: str) -> EmailMatch:
        data = self._by_ext_id(identity(message, origin))
        if data is not None:
            return EmailMatch(str(data["id"]), mine=self._has(data, user))
        if message.message_id:
            first = self._by_ext_id(MESSAGE_ID + _hashed(message.message_id))
            if first is not None:
                return EmailMatch(collided=str(first["id"]))
        return EmailMatch()

    def email_documents(self, key: str) -> list[str]:
        data = self._detail("email", key)
        return _attachment_names(data) if data is not None else []

    # --- filing -----------------------------------------------------------------------------
    def file_email(self, message: MessageRecord, origin: str, match: EmailMatch, user: str,
                   persons: Sequence[str], documents: Sequence[SavedDocument]) -> Filing:
        """A failure of Raynet's for this e-mail (a refused create, an upload) is the
        filing's `error`, and the message is filed again next run; one of the connection
        (sign-in, budget) stops the run."""
        key, created = "", False
        try:
            data = self._detail("email", match.key) if match.key else None
            if data is None:
                # Filed meanwhile by another import, or by a run cut off after the create.
                data = self._by_ext_id(identity(message, origin))
            if data is None:
                data, created = self._create(message, origin, user, match)
            key = str(data["id"])
            self._link(data, message, user, persons)
            errors = self._attach(key, _attachment_names(data), documents)
        except RaynetError as exc:
            if exc.status in RUN_STOPPERS:
                raise
            return Filing(key, created, error=gettext(
                "Raynet refused the e-mail: %(reason)s") % {"reason": exc})
        return Filing(key, created, error="; ".join(errors))

    def _create(self, message: MessageRecord, origin: str, user: str,
                match: EmailMatch) -> tuple[dict[str, Any], bool]:
        """The new e-mail as far as this knows it without reading it back (its owner the
        only participant), and True; or the one another import filed meanwhile, and
        False."""
        ext_ids = [origin_id(origin)] if origin else []
        if message.message_id:
            ext_ids.append(identity(message, origin))
            if not match.collided:
                ext_ids.append(MESSAGE_ID + _hashed(message.message_id))
        sent = message.sent or message.received
        body: dict[str, Any] = {
            "title": (message.subject or gettext("(no subject)"))[:TITLE_LENGTH],
            "priority": "DEFAULT", "description": description(message), "extIds": ext_ids}
        owner = int(user) if user.isdigit() else self._owner()
        if owner is not None:
            body["owner"] = owner
        if sent is not None:
            body.update(scheduledFrom=iso(sent), scheduledTill=iso(sent), completed=iso(sent))
        try:
            made = self.client.call("PUT", "email/", body=body)
        except RaynetError as exc:
            if exc.status != 400:
                raise
            # Refused for an external id another e-mail holds: the message filed meanwhile
            # (taken), or its Message-ID first used meanwhile by a different message, or its
            # item filed before as another message (its subject since edited): this one is
            # then filed apart, without the ids the other holds.
            own = identity(message, origin)
            meanwhile = self._by_ext_id(own)
            if meanwhile is not None:
                return meanwhile, False
            held = [e for e in ext_ids if e != own and self._by_ext_id(e) is not None]
            if not held:
                raise
            body["extIds"] = [e for e in ext_ids if e not in held]
            made = self.client.call("PUT", "email/", body=body)
        owner = body.get("owner")
        return {"id": made["data"]["id"], "status": None, "attachments": [],
                "participants": [{"person": owner, "owner": True}] if owner else []}, True

    def _link(self, data: dict[str, Any], message: MessageRecord, user: str,
              persons: Sequence[str]) -> None:
        """One edit adds what is missing among the participants (the persons, sender FROM
        and recipients TO; their companies; the user) and makes the e-mail COMPLETED."""
        have_persons = _participant_persons(data)
        have_companies = {p.get("company") for p in data.get("participants") or ()
                          if p.get("company") and not p.get("person")}
        sender = (message.sender.email if message.sender else "").lower()
        added: list[dict[str, Any]] = []
        for key in dict.fromkeys(persons):
            person = self.person(key)
            if person is None:
                continue     # gone, or another instance's
            if person["id"] not in have_persons:
                role = "FROM" if sender and sender in _addresses(person) else "TO"
                added.append({"person": person["id"], "role": role})
                have_persons.add(person["id"])
            for relationship in person.get("relationships") or ():
                company = (relationship.get("company") or {}).get("id")
                if company and company not in have_companies:
                    added.append({"company": company})
                    have_companies.add(company)
        if user.isdigit() and int(user) not in have_persons:
            added.append({"person": int(user)})
        edit: dict[str, Any] = {}
        if added:
            edit["participants"] = added
        if data.get("status") != DONE:
            edit["status"] = DONE
        if edit:
            self.client.call("POST", f"email/{data['id']}/", body=edit)

    def _attach(self, key: str, names: list[str], documents: Sequence[SavedDocument]
                ) -> list[str]:
        """Each document of a name the e-mail has not got yet, its file streamed from the
        share; what failed, in words (the others are attached all the same)."""
        errors = []
        taken = set(names)
        for document in documents:
            if document.name in taken:
                continue
            try:
                self._upload(key, document)
            except (RaynetError, OSError) as exc:
                if isinstance(exc, RaynetError) and exc.status in RUN_STOPPERS:
                    raise
                errors.append(gettext("%(name)s not attached in Raynet: %(reason)s") % {
                    "name": _shown(document.name), "reason": _reason(exc)})
                continue
            taken.add(document.name)
        return errors

    def _upload(self, key: str, document: SavedDocument) -> None:
        path = Path(document.root, *document.path.split("/"))
        content_type = mimetypes.guess_type(document.name)[0] or "application/octet-stream"
        uploaded = self.client.upload("fileUpload", lambda: path.open("rb"), document.name,
                                      content_type)
        self.client.call("PUT", f"attachment/email/{key}/", body={
            "uuid": uploaded["uuid"], "fileName": document.name, "contentType": content_type,
            "fileSize": uploaded.get("fileSize", document.size)})


def _addresses(person: dict[str, Any]) -> set[str]:
    info = person.get("contactInfo") or {}
    return {str(info[c]).lower() for c in ("email", "email2") if info.get(c)}


def _participant_persons(data: dict[str, Any]) -> set[int]:
    return {p["person"] for p in data.get("participants") or () if p.get("person")}


def _attachment_names(data: dict[str, Any]) -> list[str]:
    return [str(a["file"]["fileName"]) for a in data.get("attachments") or ()
            if isinstance(a.get("file"), dict) and a["file"].get("fileName")]


def _shown(name: str) -> str:
    """A name for a line of the history: no control characters."""
    return "".join(c if c.isprintable() else "_" for c in name)


def _reason(exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError):
        return gettext("its saved file is no longer on the share")
    if isinstance(exc, OSError) and not isinstance(exc, RaynetError):
        return gettext("its saved file could not be read (%(error)s)") % {
            "error": exc.strerror or exc}
    return str(exc)
