"""When a CRM person and an Exchange contact found on a first sync are the same person.

Pure rules on records (docs/sync.md, "A record not linked yet"); the runner asks them:
- a shared e-mail address links the two only when their names agree as well (compared
  normalized: case, spacing and diacritics; a side without a name agrees with any);
  otherwise they are a duplicate candidate;
- two records without any e-mail address, with the same normalized full name and company,
  are a duplicate candidate: never linked, never copied, until a user decides.
"""

from __future__ import annotations

import unicodedata

from engine.records import ContactRecord

# Marks a match key that is a name, not an e-mail address (no address starts so).
NAME_KEY = "name:"


def normalized(text: str) -> str:
    """`text` as people read it: without diacritics, case and extra spacing."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.casefold().split())


def full_name(first: str, middle: str, last: str) -> str:
    return normalized(" ".join((first, middle, last)))


def record_name(record: ContactRecord) -> str:
    return full_name(record.first_name, record.middle_name, record.last_name)


def names_agree(crm: ContactRecord, remote: ContactRecord) -> bool:
    crm_name, remote_name = record_name(crm), record_name(remote)
    return not crm_name or not remote_name or crm_name == remote_name


def name_key(name: str, company: str) -> str:
    """The key a person without an e-mail address is matched by ("" without a name)."""
    return f"{NAME_KEY}{name}|{normalized(company)}" if name else ""


def record_name_key(record: ContactRecord) -> str:
    """A record's name key, or "" when it has an e-mail address (matched by that) or no
    name."""
    return "" if record.emails else name_key(record_name(record), record.company)


def is_name_key(key: str) -> bool:
    return key.startswith(NAME_KEY)


def doubt(key: str, crm: ContactRecord, remote: ContactRecord) -> str:
    """Why two records matched by `key` may still be different persons ("" if they may
    not)."""
    if is_name_key(key):
        return "the same name and company, and no e-mail address on either side"
    if not names_agree(crm, remote):
        return f"shares {key}, but the names differ"
    return ""
