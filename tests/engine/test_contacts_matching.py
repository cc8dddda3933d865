"""The first sync's matching of contacts, end to end on EWS and on Graph: a CRM person and an
Exchange contact are linked only when they are surely the same person; when they may be, they
wait on the duplicates report; and a link never overwrites the CRM's values unasked."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.utils import timezone

from crm.models import Company, Person, PersonCompany
from crm.tracking import Change
from engine.models import DuplicateCandidate, Link, Run, RunItem
from ewsim.testing import SimHandle
from profiles.models import SyncProfile
from tests.engine.graph_sync_helpers import make_graph_profile, run_graph
from tests.engine.sync_helpers import (
    add_contact,
    exchange_contacts,
    make_profile,
    persons,
    run_contacts,
)

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Backend:
    make_profile: Callable[[SimHandle], SyncProfile]
    run: Callable[..., Run]


def run_through_graph(sim: SimHandle, profile: SyncProfile, **options: Any) -> Run:
    return run_graph(profile, "contacts", **options)


BACKENDS = {"ews": Backend(make_profile, run_contacts),
            "graph": Backend(make_graph_profile, run_through_graph)}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[request.param]


def add_person(profile: SyncProfile, first: str, last: str, company: str = "",
               **fields: str) -> Person:
    person = Person.objects.create(organization_id=profile.organization_id, first_name=first,
                                   last_name=last, **fields)
    if company:
        PersonCompany.objects.create(person=person, company=Company.find_or_create_by_name(
            profile.organization_id, company))
    return person


def test_the_same_person_without_an_address_waits_for_a_decision_instead_of_doubling(
        ewsim: SimHandle, backend: Backend) -> None:
    profile = backend.make_profile(ewsim)
    jan = add_person(profile, "Jan", "Novák", "Stavby Brno s.r.o.")
    # The same name and company, told apart only by case, spacing and diacritics.
    add_contact(ewsim, "jan", " NOVAK ", company="Stavby  Brno S.R.O.")
    # Another person of that company: a different name is no match, and is copied over.
    add_person(profile, "Eva", "Nováková", "Stavby Brno s.r.o.")

    analysis = backend.run(ewsim, profile, dry_run=True)
    run = backend.run(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    assert sorted(analysis.items.values_list("action", "title")) == \
        sorted(run.items.values_list("action", "title"))
    (pair,) = DuplicateCandidate.objects.filter(profile=profile)
    assert (pair.crm_key, pair.decision, pair.address) == (str(jan.pk), "open", "")
    assert (run.duplicates, run.crm_created, run.remote_created, run.linked) == (1, 0, 1, 0)
    assert run.items.get(action=RunItem.Action.DUPLICATE).detail == \
        "the same name and company, and no e-mail address on either side"
    # Neither copied nor linked: one Jan in each place.
    assert len(persons(profile)) == 2 and len(exchange_contacts(ewsim)) == 2
    assert not Link.objects.filter(profile=profile, crm_key=str(jan.pk)).exists()

    # Held until a user decides, run after run.
    again = backend.run(ewsim, profile)
    assert again.status == Run.Status.SUCCESS, again.message
    assert (again.crm_created, again.remote_created) == (0, 0)
    assert len(persons(profile)) == 2 and len(exchange_contacts(ewsim)) == 2

    DuplicateCandidate.objects.filter(pk=pair.pk).update(
        decision=DuplicateCandidate.Decision.LINKED)
    decided = backend.run(ewsim, profile)
    assert decided.status == Run.Status.SUCCESS, decided.message
    assert Link.objects.filter(profile=profile, crm_key=str(jan.pk)).exists()
    # Linked as the user said; the CRM's spelling stays and reaches Exchange.
    assert sorted(c.last_name for c in exchange_contacts(ewsim).values()) == \
        ["Novák", "Nováková"]
    jan.refresh_from_db()
    assert jan.last_name == "Novák"
    assert len(persons(profile)) == 2 and len(exchange_contacts(ewsim)) == 2


def test_a_shared_address_with_a_different_name_is_a_candidate_not_a_link(
        ewsim: SimHandle, backend: Backend) -> None:
    profile = backend.make_profile(ewsim)
    jan = add_person(profile, "Jan", "Novotný", email1="jan@novotny.cz", job_title="Ředitel")
    add_contact(ewsim, "Honza", "Novotny", email="jan@novotny.cz", job_title="Director")

    run = backend.run(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    (pair,) = DuplicateCandidate.objects.filter(profile=profile)
    assert (pair.crm_key, pair.address, pair.remote_title) == (str(jan.pk), "jan@novotny.cz",
                                                               "Honza Novotny")
    assert (run.duplicates, run.linked, run.crm_created, run.remote_created) == (1, 0, 0, 0)
    assert run.items.get(action=RunItem.Action.DUPLICATE).detail == \
        "shares jan@novotny.cz, but the names differ"
    # Nothing overwritten on either side.
    jan.refresh_from_db()
    assert (jan.first_name, jan.last_name, jan.job_title) == ("Jan", "Novotný", "Ředitel")
    (honza,) = exchange_contacts(ewsim).values()
    assert (honza.first_name, honza.last_name, honza.job_title) == \
        ("Honza", "Novotny", "Director")
    assert not Link.objects.filter(profile=profile).exists()


@pytest.mark.parametrize("policy", ["newest", "crm"])
def test_a_certain_match_fills_empty_fields_and_keeps_the_crms_values(
        ewsim: SimHandle, backend: Backend, policy: str) -> None:
    profile = backend.make_profile(ewsim)
    SyncProfile.objects.filter(pk=profile.pk).update(conflict_policy=policy)
    jan = add_person(profile, "Jan", "Novotný", email1="jan@novotny.cz", job_title="Ředitel",
                     phone_mobile="+420 603 111 222")
    # A day older than the Exchange contact: were there a history, "newest wins" would
    # keep Exchange's values.
    Change.objects.filter(kind=Change.Kind.PERSON, object_id=jan.pk).update(
        changed_at=timezone.now() - dt.timedelta(days=1))
    add_contact(ewsim, "JAN", "Novotny", email="jan@novotny.cz", job_title="Director",
                department="Prodej")

    run = backend.run(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    assert (run.linked, run.crm_created, run.remote_created) == (1, 0, 0)
    assert Link.objects.get(profile=profile).crm_key == str(jan.pk)
    jan.refresh_from_db()
    assert (jan.first_name, jan.last_name, jan.job_title) == ("Jan", "Novotný", "Ředitel")
    assert jan.department == "Prodej"   # empty in the CRM: filled from Exchange
    (contact,) = exchange_contacts(ewsim).values()
    assert (contact.first_name, contact.last_name, contact.job_title) == \
        ("Jan", "Novotný", "Ředitel")
    assert (contact.phone_mobile, contact.department) == ("+420 603 111 222", "Prodej")
    (conflict,) = run.items.filter(action=RunItem.Action.CONFLICT)
    assert conflict.detail == ("different on the two sides when first linked: first_name, "
                               "job_title, last_name; kept the values from the CRM")
    assert DuplicateCandidate.objects.count() == 0
    assert backend.run(ewsim, profile).items.count() == 0


def test_exchange_wins_a_first_link_when_the_policy_says_so(
        ewsim: SimHandle, backend: Backend) -> None:
    profile = backend.make_profile(ewsim)
    SyncProfile.objects.filter(pk=profile.pk).update(conflict_policy="exchange")
    jan = add_person(profile, "Jan", "Novotný", email1="jan@novotny.cz", job_title="Ředitel")
    add_contact(ewsim, "Jan", "Novotny", email="jan@novotny.cz", job_title="Director")

    run = backend.run(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    jan.refresh_from_db()
    assert (jan.last_name, jan.job_title) == ("Novotny", "Director")
    (contact,) = exchange_contacts(ewsim).values()
    assert (contact.last_name, contact.job_title) == ("Novotny", "Director")
    assert run.items.get(action=RunItem.Action.CONFLICT).detail.endswith(
        "kept the values from Exchange")
