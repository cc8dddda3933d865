"""Fitting CRM values to Exchange's lengths (engine/fitting.py) and the planner's view of a
cut copy (engine/planner.py): plain records, no database, no Exchange."""

from __future__ import annotations

import dataclasses

from engine.agendas.contacts import CONTACT_SYNCED
from engine.fitting import cut, fit_data, fit_record
from engine.mailbox.limits import CONTACT_LIMITS, EVENT_LIMITS
from engine.plan_actions import Link, Side, Write
from engine.planner import (
    ConflictPolicy,
    DeletionPolicy,
    Direction,
    Policy,
    Seen,
    plan_match,
    plan_new,
    snapshot,
)
from engine.records import ContactRecord, EventRecord, PostalAddress, canonical

POLICY = Policy(Direction.TWO_WAY, ConflictPolicy.CRM, DeletionPolicy.UNLINK, CONTACT_SYNCED,
                remote_limits=CONTACT_LIMITS)
LONG = ContactRecord(first_name="Jana", last_name="N" * 300, job_title="J" * 254 + "  x",
                     email1="jana@acme.cz",
                     business_address=PostalAddress(street="S" * 256, city="Brno"))


def test_a_value_is_cut_by_utf16_units_without_trailing_spaces_or_half_an_emoji() -> None:
    assert cut("a" * 254 + "\U0001F600", 255) == "a" * 254
    assert cut("a" * 250 + "     bcdef", 255) == "a" * 250
    short = "Nováková"
    assert cut(short, 255) is short


def test_a_record_is_fitted_field_by_field_and_says_which_were_cut() -> None:
    fitted, shortened = fit_record(LONG, CONTACT_LIMITS)
    assert shortened == {"last_name", "job_title", "business_address"}
    assert (fitted.last_name, fitted.job_title) == ("N" * 255, "J" * 254)
    assert fitted.business_address == PostalAddress(street="S" * 255, city="Brno")
    assert fit_data(canonical(LONG), CONTACT_LIMITS) == canonical(fitted)
    plain = ContactRecord(first_name="Eva")
    assert fit_record(plain, CONTACT_LIMITS) == (plain, frozenset())


def test_a_series_changed_occurrences_are_fitted_too() -> None:
    series = EventRecord(subject="S" * 300, kind="master",
                         exceptions=[EventRecord(subject="T" * 300, kind="exception")])
    fitted, shortened = fit_record(series, EVENT_LIMITS)
    assert shortened == {"subject", "exceptions"}
    assert fitted.exceptions[0].subject == "T" * 255
    assert fit_data(canonical(series), EVENT_LIMITS) == canonical(fitted)


def test_a_new_crm_record_goes_to_exchange_cut_and_the_link_remembers_both_versions() -> None:
    plan = plan_new(Side.CRM, Seen("1", "7", LONG), POLICY)
    (write,) = plan.of(Write)
    assert write.record.last_name == "N" * 255
    assert write.shortened == {"last_name", "job_title", "business_address"}
    (link,) = plan.of(Link)
    assert link.crm_snapshot["last_name"] == "N" * 300
    assert link.remote_snapshot["last_name"] == "N" * 255


def test_a_cut_copy_found_in_exchange_is_the_same_record_not_a_conflict() -> None:
    copy = fit_record(LONG, CONTACT_LIMITS)[0]
    plan = plan_match(Seen("1", "7", LONG), Seen("X", "ck", copy), POLICY)
    assert plan.writes == []
    (link,) = plan.of(Link)
    assert link.crm_snapshot == snapshot(LONG, POLICY)
    assert link.remote_snapshot == snapshot(copy, POLICY)
    edited = dataclasses.replace(copy, last_name="Nová")     # edited in Outlook: a real change
    (write,) = plan_match(Seen("1", "7", LONG), Seen("X", "ck", edited),
                          dataclasses.replace(POLICY, conflict=ConflictPolicy.EXCHANGE)).writes
    assert (write.side, write.fields) == (Side.CRM, {"last_name"})
