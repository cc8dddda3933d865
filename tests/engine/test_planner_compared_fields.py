"""The planner when the fields compared change under a link (a CRM's declared unheld fields,
engine/crmstore/unheld.py, differ from those the link was saved with): a field no longer
compared is not read as blanked, one newly compared is not read as changed."""

from __future__ import annotations

import dataclasses

from engine.agendas.contacts import CONTACT_SYNCED
from engine.plan_actions import Link, Side
from engine.planner import Known, Policy, plan_linked, side_hash, snapshot
from engine.records import ContactRecord, PostalAddress
from profiles.choices import ConflictPolicy, DeletionPolicy, Direction
from tests.engine.test_planner import crm, remote

EXCHANGE = ContactRecord(first_name="Petr", middle_name="Jan", last_name="Svoboda",
                         department="Obchod", email1="petr@stavby.cz",
                         phone_mobile="+420 603 000 111",
                         home_address=PostalAddress("Lipová 5", "Brno"))
# What a CRM without a middle name or a department reads back.
IN_CRM = dataclasses.replace(EXCHANGE, middle_name="", department="")


def policy(fields: frozenset[str]) -> Policy:
    return Policy(Direction.TWO_WAY, ConflictPolicy.CRM, DeletionPolicy.PROPAGATE, fields)


# Saved while the middle name and the department were compared, the home address not.
BEFORE = policy(CONTACT_SYNCED - {"home_address", "other_address", "photo_token"})
NOW = policy(CONTACT_SYNCED - {"middle_name", "department", "business_address",
                               "other_address", "photo_token"})


def saved_link() -> Known:
    snap = snapshot(EXCHANGE, BEFORE)
    return Known("1", "10", side_hash(EXCHANGE, BEFORE), snap, "X", "ck1",
                 side_hash(EXCHANGE, BEFORE), snap)


def test_a_crm_edit_writes_only_what_it_changed_not_what_is_compared_no_more() -> None:
    edited = dataclasses.replace(IN_CRM, phone_mobile="+420 777 123 456")
    plan = plan_linked(saved_link(), crm(edited), None, NOW)
    assert [(w.side, w.fields) for w in plan.writes] == [(Side.REMOTE,
                                                          frozenset({"phone_mobile"}))]
    (link,) = plan.of(Link)
    assert "middle_name" not in link.crm_snapshot and "middle_name" not in link.remote_snapshot


def test_reading_both_sides_again_changes_nothing() -> None:
    plan = plan_linked(saved_link(), crm(IN_CRM), remote(EXCHANGE), NOW)
    assert plan.writes == []


def test_a_field_compared_now_is_carried_once_the_link_knows_it() -> None:
    # No past for it: what either side holds counts as unchanged, and the link learns it.
    (first,) = plan_linked(saved_link(), crm(IN_CRM), remote(EXCHANGE), NOW).of(Link)
    assert first.remote_snapshot["home_address"]["city"] == "Brno"
    healed = Known("1", "11", side_hash(IN_CRM, NOW), first.crm_snapshot, "X", "ck2",
                   side_hash(EXCHANGE, NOW), first.remote_snapshot)
    moved = dataclasses.replace(EXCHANGE, home_address=PostalAddress("Nová 1", "Praha"))
    plan = plan_linked(healed, None, remote(moved), NOW)
    assert [(w.side, w.fields) for w in plan.writes] == [(Side.CRM,
                                                          frozenset({"home_address"}))]
