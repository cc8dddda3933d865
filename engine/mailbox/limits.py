"""The lengths a record's text fields are kept to before they are written to Exchange.

Both backends (EWS, Graph) write to the same Exchange store, so one table serves both. What
Exchange does with longer values:

* a subject: cut to 255 characters ("The subject is limited to 255 characters", EWS reference,
  "Subject"), the item saved;
* a contact's given name, middle name or surname over 255: the item is refused
  (`ErrorPropertyUpdate`; undocumented, observed), so the whole write would fail;
* the other fields written (company, job title, department, title, suffix, web page, e-mail
  addresses, phone numbers, postal address parts, location): Microsoft documents no limit,
  and a live server has been seen to keep 400 characters. They are kept to 255 all the same:
  the one length Exchange is known to hold for a short text field, so a write never depends
  on an undocumented limit of some Exchange version, and Outlook shows what the CRM has up to
  a length nobody reads in an address book anyway. The CRM keeps the full value, and the
  history says what was shortened.

Bodies (a contact's note, an event's description) are not limited here.
"""

from __future__ import annotations

from engine.fitting import Limits
from engine.records import Kind

SHORT_TEXT = 255

CONTACT_LIMITS: Limits = {name: SHORT_TEXT for name in (
    "title", "first_name", "middle_name", "last_name", "suffix", "company", "job_title",
    "department", "web_page", "email1", "email2", "email3", "business_address",
    "home_address", "other_address", "phone_business", "phone_business2", "phone_home",
    "phone_mobile", "phone_business_fax", "phone_other")}
EVENT_LIMITS: Limits = {"subject": SHORT_TEXT, "location": SHORT_TEXT}


def exchange_limits(kind: Kind) -> Limits:
    """What Exchange keeps of each text field of a `kind` record (none for mail: not written)."""
    return {Kind.CONTACTS: CONTACT_LIMITS, Kind.CALENDAR: EVENT_LIMITS}.get(kind, {})
