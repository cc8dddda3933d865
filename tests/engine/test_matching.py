"""The first sync's matching rules on plain records: no database, no Exchange."""

from __future__ import annotations

from engine.matching import doubt, names_agree, normalized, record_name_key
from engine.records import ContactRecord


def test_names_are_compared_without_case_spacing_or_diacritics() -> None:
    assert normalized("  Jan   NOVOTNÝ ") == "jan novotny"
    assert names_agree(ContactRecord(first_name="Jan", last_name="Novotný"),
                       ContactRecord(first_name="JAN ", last_name="novotny"))
    assert not names_agree(ContactRecord(first_name="Jan", last_name="Novotný"),
                           ContactRecord(first_name="Honza", last_name="Novotny"))


def test_a_side_without_a_name_agrees_with_any() -> None:
    assert names_agree(ContactRecord(email1="jan@novotny.cz"),
                       ContactRecord(first_name="Honza", last_name="Novotny"))


def test_only_a_record_without_an_address_has_a_name_key() -> None:
    crm = ContactRecord(first_name="Jan", last_name="Novák", company="Stavby Brno s.r.o.")
    remote = ContactRecord(first_name="jan", last_name=" NOVAK", company="STAVBY  BRNO S.R.O.")
    assert record_name_key(crm) == record_name_key(remote) != ""
    assert record_name_key(ContactRecord(first_name="Jan", last_name="Novák",
                                         company="Stavby Praha a.s.")) != record_name_key(crm)
    assert record_name_key(ContactRecord(first_name="Jan", email2="jan@novak.cz")) == ""
    assert record_name_key(ContactRecord(company="Stavby Brno s.r.o.")) == ""


def test_a_shared_address_is_in_doubt_only_when_the_names_differ() -> None:
    jan = ContactRecord(first_name="Jan", last_name="Novotný", email1="jan@novotny.cz")
    same = ContactRecord(first_name="Jan", last_name="Novotny", email1="jan@novotny.cz")
    honza = ContactRecord(first_name="Honza", last_name="Novotny", email1="jan@novotny.cz")
    assert doubt("jan@novotny.cz", jan, same) == ""
    assert doubt("jan@novotny.cz", jan, honza) == "shares jan@novotny.cz, but the names differ"
    key = record_name_key(ContactRecord(first_name="Jan"))
    assert doubt(key, ContactRecord(first_name="Jan"), ContactRecord(first_name="jan")) == \
        "the same name and company, and no e-mail address on either side"
