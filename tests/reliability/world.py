"""A two-way contacts and calendar world the campaigns change and check.

Every record carries a token of its own that no sync changes (a contact's e-mail address, an
event's number at the head of its subject), so each side's records can be told apart and
counted. Each side edits a field of its own — the CRM a contact's job title and an event's
location, Exchange a contact's department and the tail of an event's subject — so that what
every edit must end as is known without guessing which of two edits is newer: the field is
that side's last value, on both sides.

`check` asserts convergence: every CRM record has exactly one Exchange twin and vice versa
(one active link each, no token twice on a side, no identity stamp twice in Exchange, no
Exchange origin twice in the CRM; each Exchange item either stamped with its twin's key or the
origin of its twin), and every creation and edit made on either side is present on both.
"""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from crm.models import Event, Person
from engine.mailbox.ews import EwsMailbox
from engine.models import Agenda, Link
from engine.records import ContactRecord, EventRecord, Kind
from ewsim.testing import SimHandle
from profiles.models import SyncProfile
from tests.engine.conftest import access_to
from tests.engine.sync_helpers import SERVICE, SERVICE_PASSWORD

PRAGUE = zoneinfo.ZoneInfo("Europe/Prague")
AGENDAS = (str(Agenda.CONTACTS), str(Agenda.CALENDAR))


@dataclass
class Expected:
    """What one record must look like on both sides once synced."""

    agenda: str
    token: str           # contacts: the e-mail address; events: "Event 0042"
    crm_value: str = ""  # the CRM's field: job title / location
    ex_value: str = ""   # Exchange's field: department / subject tail


def contact_email(number: int) -> str:
    return f"c{number:05d}@reliability.example"


def event_subject(token: str, tail: str) -> str:
    return f"{token} {tail}" if tail else token


def event_token(subject: str) -> str:
    return " ".join(subject.split()[:2])


def event_start(number: int) -> dt.datetime:
    """Inside every run's calendar window (14 days back, 31 ahead), from the real date as
    the worker computes it: days 1–28 ahead, 08:00–17:00 Prague time."""
    today = timezone.now().astimezone(PRAGUE).date()
    day = today + dt.timedelta(days=1 + number % 28)
    return dt.datetime.combine(day, dt.time(8 + number // 28 % 10), PRAGUE)


def _utc(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TwoWayWorld:
    def __init__(self, sim: SimHandle, profile: SyncProfile, rng: random.Random) -> None:
        self.sim = sim
        self.profile = profile
        self.rng = rng
        self.expected: dict[tuple[str, str], Expected] = {}
        self.numbers = 0
        self.edits = 0
        self.changes: Counter[str] = Counter()   # what was done, for the report
        self.exchange: dict[str, dict[str, str]] = {agenda: {} for agenda in AGENDAS}

    # --- creating records -----------------------------------------------------------------
    def seed(self, items: int) -> None:
        """`items` records: half contacts, half events, each half made in the CRM and half
        in Exchange."""
        contacts = items // 2
        with transaction.atomic():
            for i in range(contacts):
                self.create(Agenda.CONTACTS, crm_side=i % 2 == 0)
            for i in range(items - contacts):
                self.create(Agenda.CALENDAR, crm_side=i % 2 == 0)

    def create(self, agenda: str, *, crm_side: bool) -> None:
        self.numbers += 1
        number = self.numbers
        side = "crm" if crm_side else "exchange"
        if agenda == Agenda.CONTACTS:
            token = contact_email(number)
            if crm_side:
                Person.objects.create(organization=self.profile.organization,
                                      first_name="Reliability", last_name=f"R{number:05d}",
                                      email1=token)
            else:
                self.sim.control.create_item(
                    self.profile.mailbox, folder="contacts", tag="Contact",
                    xml=("<t:Contact><t:GivenName>Reliability</t:GivenName><t:EmailAddresses>"
                         f"<t:Entry Key=\"EmailAddress1\">{token}</t:Entry></t:EmailAddresses>"
                         f"<t:Surname>R{number:05d}</t:Surname></t:Contact>"))
        else:
            token = f"Event {number:05d}"
            start = event_start(number)
            if crm_side:
                Event.objects.create(organization=self.profile.organization,
                                     owner=self.profile.crm_user, subject=token, start=start,
                                     end=start + dt.timedelta(hours=1),
                                     time_zone="Europe/Prague")
            else:
                self.sim.control.create_item(
                    self.profile.mailbox, folder="calendar", tag="CalendarItem",
                    xml=(f"<t:CalendarItem><t:Subject>{token}</t:Subject>"
                         f"<t:Start>{_utc(start)}</t:Start>"
                         f"<t:End>{_utc(start + dt.timedelta(hours=1))}</t:End>"
                         "<t:StartTimeZone Id=\"Central Europe Standard Time\"/>"
                         "<t:EndTimeZone Id=\"Central Europe Standard Time\"/>"
                         "</t:CalendarItem>"))
        self.expected[(str(agenda), token)] = Expected(str(agenda), token)
        self.changes[f"{agenda} created in {side}"] += 1

    # --- changing them between and during runs ------------------------------------------
    def look_up_exchange(self) -> None:
        """Note every Exchange item's id by token, for the edits that follow (read through
        EWS: call it while no worker runs, so the kill switch counts only the worker's)."""
        self.exchange = {agenda: self.exchange_ids(agenda) for agenda in AGENDAS}

    def step(self, changes: int, pause: Callable[[], None] = lambda: None) -> None:
        """`changes` random creations and edits, on both sides, as users would make them —
        between runs, or while one runs (`pause` spreads them over its time). Exchange items
        are found by the ids `look_up_exchange` noted (an item made since is not edited)."""
        for _ in range(changes):
            pause()
            agenda = self.rng.choice(AGENDAS)
            crm_side = self.rng.random() < 0.5
            if self.rng.random() < 0.2:
                self.create(agenda, crm_side=crm_side)
                continue
            token = self.rng.choice(sorted(t for a, t in self.expected if a == agenda))
            self.edits += 1
            value = f"{'crm' if crm_side else 'ex'}-{self.edits}"
            if crm_side:
                if self.edit_crm(agenda, token, value):
                    self.expected[(agenda, token)].crm_value = value
                    self.changes[f"{agenda} edited in crm"] += 1
            elif token in self.exchange[agenda]:
                self.edit_exchange(agenda, self.exchange[agenda][token], token, value)
                self.expected[(agenda, token)].ex_value = value
                self.changes[f"{agenda} edited in exchange"] += 1

    def edit_crm(self, agenda: str, token: str, value: str) -> bool:
        """Edit the CRM record with this token, as a CRM user would; False if it has none
        yet (made in Exchange, not synced yet)."""
        if agenda == Agenda.CONTACTS:
            person = Person.objects.filter(organization=self.profile.organization,
                                           email1=token).first()
            if person is None:
                return False
            person.job_title = value
            # Only the field edited, as a CRM form saving its changed fields does: a
            # whole-row save from a stale read would undo what a run wrote meanwhile.
            person.save(update_fields=["job_title"])
            return True
        event = Event.objects.filter(owner=self.profile.crm_user,
                                     subject__startswith=token).first()
        if event is None or event_token(event.subject) != token:
            return False
        event.location = value
        event.save(update_fields=["location"])
        return True

    def edit_exchange(self, agenda: str, item_id: str, token: str, value: str) -> None:
        """Edit the Exchange item, as Outlook would."""
        if agenda == Agenda.CONTACTS:
            xml = f"<t:Contact><t:Department>{value}</t:Department></t:Contact>"
        else:
            xml = (f"<t:CalendarItem><t:Subject>{event_subject(token, value)}</t:Subject>"
                   "</t:CalendarItem>")
        self.sim.control.update_item(item_id, xml=xml)

    # --- reading both sides ---------------------------------------------------------------
    def exchange_records(self, agenda: str) -> list[tuple[str, ContactRecord | EventRecord]]:
        access = access_to(self.sim, username=SERVICE, secret=SERVICE_PASSWORD,
                           impersonate=True, mailbox=self.profile.mailbox)
        kind = Kind.CONTACTS if agenda == Agenda.CONTACTS else Kind.CALENDAR
        wanted = ContactRecord if agenda == Agenda.CONTACTS else EventRecord
        with EwsMailbox(access) as backend:
            folder = backend.get_folder("contacts" if kind == Kind.CONTACTS else "calendar",
                                        kind)
            return [(change.ref.id, change.record)
                    for page in backend.read_changes(folder, None)
                    for change in page.changes if isinstance(change.record, wanted)]

    @staticmethod
    def token_of(record: ContactRecord | EventRecord) -> str:
        if isinstance(record, ContactRecord):
            return record.email1
        return event_token(record.subject)

    def exchange_ids(self, agenda: str) -> dict[str, str]:
        """token → Exchange item id (the last one, should a token be there twice)."""
        return {self.token_of(record): item_id
                for item_id, record in self.exchange_records(agenda)}

    # --- the check ------------------------------------------------------------------------
    def check(self) -> None:
        for agenda in AGENDAS:
            self._check(agenda)

    def _check(self, agenda: str) -> None:
        expected = {e.token: e for e in self.expected.values() if e.agenda == agenda}
        remote = self.exchange_records(agenda)
        remote_tokens = Counter(self.token_of(record) for _, record in remote)
        twice = sorted(t for t, n in remote_tokens.items() if n > 1)
        assert not twice, f"{agenda}: in Exchange more than once: {twice[:20]}"
        stamps = Counter(record.stamp for _, record in remote if record.stamp)
        assert not [s for s, n in stamps.items() if n > 1], f"{agenda}: a stamp twice"
        if agenda == Agenda.CONTACTS:
            crm = {p.email1: (str(p.pk), p.origin_item_id, p.job_title)
                   for p in Person.objects.filter(organization=self.profile.organization)}
            crm_count = Person.objects.filter(organization=self.profile.organization).count()
        else:
            events = list(Event.objects.filter(owner=self.profile.crm_user))
            crm = {event_token(e.subject): (str(e.pk), e.origin_item_id, e.location)
                   for e in events}
            crm_count = len(events)
        assert crm_count == len(crm), f"{agenda}: a token twice in the CRM"
        origins = Counter(origin for _, origin, _ in crm.values() if origin)
        assert not [o for o, n in origins.items() if n > 1], f"{agenda}: an origin twice"

        # Nothing lost, nothing extra: both sides hold exactly the records made.
        missing_remote = sorted(set(expected) - set(remote_tokens))
        missing_crm = sorted(set(expected) - set(crm))
        assert not missing_remote, f"{agenda}: missing in Exchange: {missing_remote[:20]}"
        assert not missing_crm, f"{agenda}: missing in the CRM: {missing_crm[:20]}"
        assert set(remote_tokens) == set(crm) == set(expected)

        # One active link per pair, joining the two records of one token.
        links = Link.objects.filter(profile=self.profile, agenda=agenda)
        assert not links.exclude(state=Link.State.ACTIVE).exists(), \
            f"{agenda}: links not active: {list(links.exclude(state=Link.State.ACTIVE))[:5]}"
        by_crm_key = {key: token for token, (key, _, _) in crm.items()}
        by_remote = {item_id: self.token_of(record) for item_id, record in remote}
        pairs = list(links.values_list("crm_key", "remote_id"))
        assert len(pairs) == len(expected), f"{agenda}: {len(pairs)} links, {len(expected)} made"
        wrong = [(k, r) for k, r in pairs if by_crm_key.get(k) != by_remote.get(r)
                 or by_crm_key.get(k) is None]
        assert not wrong, f"{agenda}: links joining records of different tokens: {wrong[:5]}"
        # Identity: an item written by the sync carries its CRM record's key (stamp); an item
        # made in Exchange is the origin of the CRM record made from it.
        for item_id, record in remote:
            key, origin, _ = crm[self.token_of(record)]
            assert record.stamp.rsplit(":", 1)[-1] == key if record.stamp else origin == item_id, \
                f"{agenda}: {self.token_of(record)}: stamp {record.stamp!r}, origin {origin!r}"

        # Every edit, on both sides.
        for token, want in expected.items():
            record = next(r for _, r in remote if self.token_of(r) == token)
            crm_field = crm[token][2]
            if isinstance(record, ContactRecord):
                ex_crm_field, ex_ex_field = record.job_title, record.department
                person = Person.objects.get(pk=crm[token][0])
                crm_ex_field = person.department
            else:
                ex_crm_field, ex_ex_field = record.location, record.subject
                want_subject = event_subject(token, want.ex_value)
                crm_ex_field = Event.objects.get(pk=crm[token][0]).subject
                assert (ex_ex_field, crm_ex_field) == (want_subject, want_subject), \
                    f"{token}: subject {ex_ex_field!r} / {crm_ex_field!r}, not {want_subject!r}"
                ex_ex_field = crm_ex_field = want.ex_value
            assert (crm_field, ex_crm_field) == (want.crm_value, want.crm_value), \
                f"{token}: the CRM's edit {want.crm_value!r}: CRM {crm_field!r}, " \
                f"Exchange {ex_crm_field!r}"
            assert (ex_ex_field, crm_ex_field) == (want.ex_value, want.ex_value), \
                f"{token}: Exchange's edit {want.ex_value!r}: Exchange {ex_ex_field!r}, " \
                f"CRM {crm_ex_field!r}"
