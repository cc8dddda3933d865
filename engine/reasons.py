"""Why a run did what it did, told in the reader's language.

The engine writes each run item's reason (RunItem.detail) in English, built from the
templates below; the history, its CSV export and the admin show it through `describe()`,
which recognises the template, translates it and puts the parameters back in. Details are
stored as English text, not as codes, so the engine stays free of Django's translation, an
item reads the same in a log or a database shell, and details stored before this module
existed are translated too. A text no template matches (an error message from Exchange or
the CRM) is shown as it was written.

A new reason: add its English template here (gettext_noop; one with a count as a function
using ngettext, like `_received`), with the parameters named as below, and build the text in
the engine with the same words (tests/engine/test_reasons.py finds reasons written by the
engine that no template matches).

Parameters are translated by their name:
- `where`, `winner`: a side ("the CRM", "Exchange");
- `fields`: record field names ("first_name, job_title"), shown as the fields' labels;
- `reason`: another reason, one the registry knows;
- `more`, `problem`: notes or an error message, described in turn if known, else kept;
- `label`: a field's English label (a verbose name), translated by the catalogue;
- any other: a value (a name, a folder, a number), kept as it is unless it is one of the
  engine's fixed English phrases (VALUES: "its organizer", "nobody in the CRM", …).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache

from django.utils import translation
from django.utils.text import capfirst
from django.utils.translation import gettext, gettext_noop, ngettext

# The engine's fixed phrases that stand in a template's parameter.
VALUES = {
    "the CRM": gettext_noop("the CRM"),
    "Exchange": gettext_noop("Exchange"),
    "its organizer": gettext_noop("its organizer"),
    "nobody in the CRM": gettext_noop("nobody in the CRM"),
    "import only": gettext_noop("import only"),
    "export only": gettext_noop("export only"),
    "a contact": gettext_noop("a contact"),
    "a calendar item": gettext_noop("a calendar item"),
    "the same meeting UID": gettext_noop("the same meeting UID"),
    "the same subject and start": gettext_noop("the same subject and start"),
    # Agendas by their codes, named as the pages name them.
    "contacts": gettext_noop("Contacts"),
    "calendar": gettext_noop("Calendar"),
    "mail": gettext_noop("E-mail import"),
}

# The synced fields of the records (engine/records.py) by the labels the CRM gives them.
FIELD_LABELS = {
    "title": gettext_noop("title"),
    "first_name": gettext_noop("first name"),
    "middle_name": gettext_noop("middle name"),
    "last_name": gettext_noop("last name"),
    "suffix": gettext_noop("suffix"),
    "display_name": gettext_noop("display name"),
    "company": gettext_noop("company"),
    "job_title": gettext_noop("job title"),
    "department": gettext_noop("department"),
    "web_page": gettext_noop("web page"),
    "email1": gettext_noop("e-mail 1"),
    "email2": gettext_noop("e-mail 2"),
    "email3": gettext_noop("e-mail 3"),
    "business_address": gettext_noop("business address"),
    "home_address": gettext_noop("home address"),
    "other_address": gettext_noop("other address"),
    "phone_business": gettext_noop("business phone"),
    "phone_business2": gettext_noop("business phone 2"),
    "phone_home": gettext_noop("home phone"),
    "phone_mobile": gettext_noop("mobile phone"),
    "phone_business_fax": gettext_noop("business fax"),
    "phone_other": gettext_noop("other phone"),
    "note": gettext_noop("note"),
    "categories": gettext_noop("categories"),
    "photo_token": gettext_noop("photo"),
    "subject": gettext_noop("subject"),
    "start": gettext_noop("start"),
    "end": gettext_noop("end"),
    "time_zone": gettext_noop("time zone"),
    "all_day": gettext_noop("all day"),
    "location": gettext_noop("location"),
    "body": gettext_noop("description"),
    "private": gettext_noop("private"),
    "attendees": gettext_noop("attendees"),
    "uid": gettext_noop("meeting UID"),
    "recurrence": gettext_noop("recurrence"),
    "exceptions": gettext_noop("changed occurrences"),
    "deleted_occurrences": gettext_noop("deleted occurrences"),
}

# A template with a count: the words that follow the number, in its language's plural forms.
# Stored in its English plural form, which is what the template matches.
CountedWords = tuple[str, Callable[[int], str]]


def _received(days: int) -> str:
    return ngettext("received %(date)s, before the import window (the last %(days)s day)",
                    "received %(date)s, before the import window (the last %(days)s days)",
                    days)


def _crm_changes(count: int) -> str:
    return ngettext("%(count)s CRM change to look at", "%(count)s CRM changes to look at",
                    count)


def _deletions_wait(count: int) -> str:
    return ngettext("%(count)s deletion waits for an administrator's approval",
                    "%(count)s deletions wait for an administrator's approval", count)


def _creations_wait(count: int) -> str:
    return ngettext("%(count)s creation in %(where)s waits for an administrator's approval",
                    "%(count)s creations in %(where)s wait for an administrator's approval",
                    count)


TEMPLATES: list[str | CountedWords] = [
    # The planner (engine/planner.py).
    gettext_noop("new in %(where)s"),
    gettext_noop("new in %(where)s, but this profile syncs %(direction)s"),
    gettext_noop("changed in %(where)s"),
    gettext_noop("changed on both sides: %(fields)s"),
    gettext_noop("different on the two sides when first linked: %(fields)s"),
    gettext_noop("changed on one side since this server's own write, whose link was not "
                 "recorded: %(fields)s"),
    gettext_noop("moved to %(folder)s in %(where)s; no longer synced, nothing deleted"),
    gettext_noop("left the synced scope in %(where)s; nothing deleted"),
    gettext_noop("deleted on both sides"),
    gettext_noop("deleted on one side after the pair left the synced scope; the other side "
                  "is left alone"),
    gettext_noop("deleted in %(where)s"),
    gettext_noop("deleted in %(where)s; kept on the other side"),
    gettext_noop("deleted in %(where)s but changed on the other side: the change wins"),
    gettext_noop("deleted in %(where)s: %(problem)s"),
    gettext_noop("deleted on the other side"),
    gettext_noop("You deleted this meeting as its organizer: the CRM event is deleted, and "
                  "the other synced attendees' copies with it, under their deletion policy"),
    gettext_noop("You deleted your copy of a meeting you attend but do not organize, and "
                  "other synced users still have it: only your link and your participation "
                  "were removed; the CRM event and the other attendees' copies stay"),
    gettext_noop("You deleted your copy of a meeting other synced users still have, and it "
                  "is not known whether you organize it: only your link and your "
                  "participation were removed; the CRM event and the other attendees' copies "
                  "stay"),
    gettext_noop("%(organizer)s cancelled this meeting; the CRM event is kept (changed in the "
                  "CRM since, or deletions are not carried over) and no longer synced; this "
                  "cancelled copy is left in your calendar for you to remove"),
    gettext_noop("%(organizer)s cancelled this meeting: the CRM event is deleted, and the "
                  "other synced attendees' copies with it, under their deletion policy; this "
                  "cancelled copy is left in your calendar for you to remove"),
    gettext_noop("You declined a meeting that %(organizer)s organizes and other synced users "
                  "still attend: only your link and your participation were removed; the CRM "
                  "event and the other attendees' copies stay; your declined copy is left as "
                  "it is"),
    gettext_noop("You declined this meeting; the CRM event is kept (changed in the CRM since, "
                  "or deletions are not carried over) and no longer synced"),
    gettext_noop("You declined this meeting and no other synced user attends it: the CRM "
                  "event is deleted; your declined copy is left as it is"),
    # The runner (engine/run/) and the matching rules (engine/matching.py).
    gettext_noop("%(reason)s; kept the values from %(winner)s"),
    gettext_noop("%(problem)s (tried again next run)"),
    gettext_noop("%(reason)s: %(fields)s"),
    gettext_noop("%(reason)s: %(problem)s"),
    gettext_noop("%(reason)s — %(more)s"),
    # The built-in CRM (engine/crmstore/builtin.py): a value cut to the CRM's column.
    gettext_noop("%(label)s was %(length)s characters long; the CRM keeps %(limit)s."),
    # A CRM value longer than Exchange keeps, written cut (engine/mailbox/limits.py).
    gettext_noop("Shortened to fit Exchange: %(fields)s; the CRM keeps the full text."),
    gettext_noop("Time zone: %(problem)s."),
    gettext_noop("The photo was not written: %(problem)s"),
    gettext_noop("the same record on both sides"),
    gettext_noop("shares %(address)s"),
    gettext_noop("shares %(address)s, but the names differ"),
    gettext_noop("the same name and company, and no e-mail address on either side"),
    gettext_noop("a copy of a CRM record that was deleted meanwhile; left alone"),
    gettext_noop("more deletions than the mass-deletion guard allows"),
    gettext_noop("more creations than the mass-creation guard allows"),
    # A run's message and what it is doing now (Run.message, Run.progress_note).
    ("count", _crm_changes),
    ("count", _deletions_wait),
    ("count", _creations_wait),
    gettext_noop("Reading %(folder)s"),
    gettext_noop("Another run of this profile's %(agenda)s agenda is in progress."),
    gettext_noop("The database failed during the run (%(problem)s); what was recorded before "
                 "stays, and the next run goes on from there."),
    gettext_noop("Internal error (%(name)s); the server's log has the details."),
    gettext_noop("The worker running this stopped before it finished (killed, crashed or its "
                 "machine lost); its lease expired and a later run took over."),
    gettext_noop("The run lost its lease (it took too long without progress)."),
    # A mailbox that failed a run (engine/mailbox/ews_errors.py, graph_errors.py).
    gettext_noop("Authentication failed: the server refused the user name or password of "
                 "%(account)s."),
    gettext_noop("The service account %(account)s may not impersonate %(mailbox)s: grant it "
                 "the ApplicationImpersonation role."),
    gettext_noop("There is no mailbox %(mailbox)s on %(host)s."),
    gettext_noop("The folder no longer exists in the mailbox: choose it again."),
    gettext_noop("%(host)s kept asking to slow down for longer than this run may wait "
                 "(%(seconds)s s); the next run goes on."),
    gettext_noop("%(host)s is busy and asked to slow down; the next run goes on."),
    gettext_noop("%(host)s does not answer as an Exchange Web Services endpoint (it answered "
                 "%(answer)s; EWS disabled, or a wrong URL?)."),
    gettext_noop("%(host)s does not answer as an Exchange Web Services endpoint (EWS disabled, "
                 "or a wrong URL?)."),
    gettext_noop("Exchange answered with the error %(name)s."),
    gettext_noop("Microsoft Graph answered with an error (%(status)s)."),
    gettext_noop("The TLS connection to %(host)s failed%(code)s. Check the certificate, or "
                 "turn TLS verification off for this connection."),
    gettext_noop("The server name %(host)s cannot be resolved (DNS)."),
    gettext_noop("%(host)s refused the connection: nothing listens on port %(port)s."),
    gettext_noop("%(host)s did not answer in time."),
    gettext_noop("The connection to %(host)s broke off before an answer came."),
    gettext_noop("The connection to %(host)s failed (%(name)s)."),
    gettext_noop("There is no application %(application)s in the tenant %(tenant)s: check the "
                 "client id, and that the app is registered in this tenant."),
    gettext_noop("The tenant %(tenant)s does not exist: check the tenant id (a GUID, or a "
                 "domain such as contoso.onmicrosoft.com)."),
    gettext_noop("The client secret of the application %(application)s is wrong or has "
                 "expired: create a new secret in Entra ID and store it here."),
    gettext_noop("The certificate of the application %(application)s was refused: upload its "
                 "public certificate to the app registration in Entra ID."),
    gettext_noop("Signing in as the application %(application)s failed (%(name)s)."),
    gettext_noop("The application %(application)s may not open %(mailbox)s: an administrator "
                 "must grant it admin consent for the application permissions Mail.ReadWrite, "
                 "Calendars.ReadWrite and Contacts.ReadWrite (and no application access "
                 "policy may exclude this mailbox)."),
    gettext_noop("Microsoft Graph refused the token of the application %(application)s (HTTP "
                 "401 Unauthorized)."),
    gettext_noop("The mailbox %(mailbox)s cannot be reached through Microsoft Graph: it has no "
                 "Exchange Online licence, is inactive, or is hosted on-premises (sync it "
                 "through an Exchange Server connection)."),
    gettext_noop("There is no mailbox %(mailbox)s in this tenant."),
    gettext_noop("Microsoft Graph answered %(status)s; the next run tries again."),
    # The e-mail import (mailimport/importer.py).
    gettext_noop("no longer in the mailbox (deleted or moved) when it was to be filed "
                  "again"),
    ("days", _received),
    gettext_noop("filed already"),
    gettext_noop("filed already as e-mail #%(number)s"),
    gettext_noop("not an e-mail (%(what)s): only e-mails are imported"),
    gettext_noop("no CRM person among its sender and recipients"),
    gettext_noop("duplicate of e-mail #%(number)s, filed already"),
    gettext_noop("linked to %(names)s"),
    gettext_noop("linked to %(names)s; %(more)s"),
    gettext_noop("Message-ID collision: e-mail #%(number)s has the same Message-ID but "
                  "another sender, date or subject, so this message is filed as an e-mail of "
                  "its own"),
    gettext_noop("%(name)s not saved (type not allowed)"),
    gettext_noop("%(name)s not saved: %(size)s MB is over the %(limit)s MB limit"),
    gettext_noop("%(name)s not saved: %(problem)s"),
    gettext_noop("saved %(path)s"),
    gettext_noop("saved %(path)s (%(name)s has the same content: stored once)"),
]

# What each kind of parameter may look like in a stored detail.
_PATTERNS = {
    "where": "the CRM|Exchange",
    "winner": "the CRM|Exchange",
    "fields": r"[a-z0-9_]+(?:, [a-z0-9_]+)*",
    "number": r"\d+",
    "days": r"\d+",
    "size": r"\d+",
    "limit": r"\d+",
    "length": r"\d+",
    "count": r"\d+",
    "seconds": r"\d+",
    "port": r"\d+",
    "code": r"(?: \([A-Z0-9_]+\))?",   # OpenSSL's reason, when it gave one
    "agenda": "contacts|calendar|mail",
    "reason": ".+?",
    "more": ".+?",
    "problem": ".+?",
}
# Any other parameter is one value: it does not run on into the next of a list of notes.
_VALUE = "(?:(?!; ).)+?"
_PARAMETER = re.compile(r"%\((\w+)\)s")
# Notes joined into one detail ("saved a.pdf; b.exe not saved (type not allowed)").
_NOTES = "; "


@dataclass(frozen=True)
class _Template:
    english: str
    counted: CountedWords | None
    pattern: re.Pattern[str]

    def translate(self, params: dict[str, str]) -> str:
        values = {name: _value(name, value) for name, value in params.items()}
        if self.counted is None:
            return gettext(self.english) % values
        counter, words = self.counted
        return words(int(params[counter])) % values


def _compile(english: str) -> re.Pattern[str]:
    parts, start = [], 0
    for found in _PARAMETER.finditer(english):
        name = found.group(1)
        parts += [re.escape(english[start:found.start()]),
                  f"(?P<{name}>{_PATTERNS.get(name, _VALUE)})"]
        start = found.end()
    return re.compile("".join([*parts, re.escape(english[start:])]) + r"\Z", re.DOTALL)


@cache
def _templates() -> list[_Template]:
    templates = []
    for entry in TEMPLATES:
        if isinstance(entry, str):
            templates.append(_Template(entry, None, _compile(entry)))
        else:
            with translation.override(None):   # the English plural form, as stored
                english = entry[1](2)
            templates.append(_Template(english, entry, _compile(english)))
    # The most literal text first: "deleted in the CRM; kept on the other side" is that
    # template's, not "deleted in %(where)s" with an odd place.
    return sorted(templates, key=lambda t: -len(_PARAMETER.sub("", t.english)))


def _value(name: str, value: str) -> str:
    if name in ("reason", "more", "problem"):
        return describe(value)
    if name == "label":
        return gettext(value)
    if name == "fields":
        return ", ".join(field_label(field) for field in value.split(", "))
    return gettext(VALUES[value]) if value in VALUES else value


def field_label(name: str) -> str:
    """A record field as the reader knows it ("job_title": "Job title")."""
    return capfirst(gettext(FIELD_LABELS[name])) if name in FIELD_LABELS else name


def known(detail: str) -> bool:
    """Whether a template (or a list of notes made of them) matches the detail."""
    return _match(detail) is not None or (
        _NOTES in detail and all(known(note) for note in detail.split(_NOTES)))


def _match(detail: str) -> tuple[_Template, dict[str, str]] | None:
    for template in _templates():
        found = template.pattern.match(detail)
        if found is None:
            continue
        params = found.groupdict()
        # A reason inside a reason is one the registry knows, or this is not the template
        # ("changed in the CRM: …" is a reason with a problem; "Error: …" is not).
        if "reason" not in params or known(params["reason"]):
            return template, params
    return None


def describe(detail: str) -> str:
    """A run item's stored detail in the active language (unknown text as it is)."""
    return _described(detail, translation.get_language()) if detail else detail


# A run's items repeat a few reasons thousands of times (a CSV export reads them all).
@lru_cache(maxsize=2048)
def _described(detail: str, language: str | None) -> str:
    found = _match(detail)
    if found is not None:
        template, params = found
        return template.translate(params)
    if _NOTES in detail:
        return _NOTES.join(describe(note) for note in detail.split(_NOTES))
    return gettext(VALUES[detail]) if detail in VALUES else detail
