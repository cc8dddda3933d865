"""Contacts end to end: the runner, the built-in CRM and ewsim over HTTP, on a real database."""

from __future__ import annotations

import pytest

from crm.models import Company, Person
from engine.models import DuplicateCandidate, Link, Run
from ewsim.testing import SimHandle

from .sync_helpers import exchange_contacts, make_profile, persons, run_contacts

pytestmark = pytest.mark.django_db(transaction=True)

CONTACT_XML = (
    "<t:Contact><t:DisplayName>{given} {surname}</t:DisplayName><t:GivenName>{given}"
    "</t:GivenName><t:CompanyName>{company}</t:CompanyName><t:EmailAddresses>"
    '<t:Entry Key="EmailAddress1">{email}</t:Entry></t:EmailAddresses>'
    "<t:Surname>{surname}</t:Surname></t:Contact>")


def add_exchange_contact(sim: SimHandle, given: str, surname: str, email: str,
                         company: str = "") -> str:
    created = sim.control.create_item(sim.user, folder="contacts", xml=CONTACT_XML.format(
        given=given, surname=surname, email=email, company=company), tag="Contact")
    return created["id"]


def test_a_first_two_way_sync_copies_each_side_to_the_other(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz", "Stavby Brno s.r.o.")
    Person.objects.create(organization_id=profile.organization_id, first_name="Eva",
                          last_name="Nová", email1="eva@acme.cz", job_title="Nákup")
    run = run_contacts(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    assert (run.crm_created, run.remote_created) == (1, 1)
    petr = Person.objects.get(email1="petr@stavby.cz")
    assert petr.companies.get().name == "Stavby Brno s.r.o."
    in_exchange = {r.email1: r for r in exchange_contacts(ewsim).values()}
    assert in_exchange["eva@acme.cz"].job_title == "Nákup"
    assert Link.objects.filter(profile=profile).count() == 2

    again = run_contacts(ewsim, profile)
    assert again.status == Run.Status.SUCCESS
    assert again.items.count() == 0
    assert again.requests <= 2


def test_an_edit_on_either_side_reaches_the_other(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    item_id = add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    run_contacts(ewsim, profile)
    ewsim.control.update_item(item_id, JobTitle="Jednatel")
    person = Person.objects.get(email1="petr@stavby.cz")
    person.phone_mobile = "+420 603 111 222"
    person.save()
    run = run_contacts(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    person.refresh_from_db()
    assert person.job_title == "Jednatel"
    (record,) = exchange_contacts(ewsim).values()
    assert record.phone_mobile == "+420 603 111 222" and record.job_title == "Jednatel"


def test_a_shared_address_links_instead_of_doubling(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    add_exchange_contact(ewsim, "Petr", "Svoboda", "Petr@Stavby.cz")
    Person.objects.create(organization_id=profile.organization_id, first_name="Petr",
                          last_name="Svoboda", email1="petr@stavby.cz")
    run = run_contacts(ewsim, profile)
    assert (run.linked, run.crm_created, run.remote_created) == (1, 0, 0)
    assert len(persons(profile)) == 1 and len(exchange_contacts(ewsim)) == 1


def test_an_ambiguous_address_becomes_a_duplicate_candidate(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    add_exchange_contact(ewsim, "Petr", "Svoboda", "info@stavby.cz")
    for first in ("Petr", "Pavel"):
        Person.objects.create(organization_id=profile.organization_id, first_name=first,
                              last_name="Svoboda", email1="info@stavby.cz")
    run = run_contacts(ewsim, profile)
    assert run.duplicates == 2
    assert DuplicateCandidate.objects.filter(profile=profile).count() == 2
    # Neither copied nor linked until a user decides.
    assert len(persons(profile)) == 2 and len(exchange_contacts(ewsim)) == 1
    assert Link.objects.filter(profile=profile).count() == 0


def test_a_dry_run_plans_exactly_what_the_real_run_then_does(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz", "ACME s.r.o.")
    Person.objects.create(organization_id=profile.organization_id, first_name="Eva",
                          last_name="Nová", email1="eva@acme.cz")
    analysis = run_contacts(ewsim, profile, dry_run=True)
    assert analysis.kind == Run.Kind.ANALYSIS and analysis.status == Run.Status.SUCCESS
    assert len(persons(profile)) == 1 and len(exchange_contacts(ewsim)) == 1   # untouched
    assert not Company.objects.exists()
    real = run_contacts(ewsim, profile)

    def summary(run: Run) -> list[tuple[str, str]]:
        return sorted((i.action, i.title) for i in run.items.all())

    assert summary(analysis) == summary(real)
    assert (analysis.crm_created, analysis.remote_created) == (real.crm_created,
                                                               real.remote_created)


def test_a_users_decision_on_a_duplicate_candidate_is_carried_out(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    add_exchange_contact(ewsim, "Petr", "Svoboda", "info@stavby.cz")
    petr, pavel = (Person.objects.create(organization_id=profile.organization_id,
                                         first_name=first, last_name="Svoboda",
                                         email1="info@stavby.cz") for first in ("Petr", "Pavel"))
    run_contacts(ewsim, profile)
    DuplicateCandidate.objects.filter(crm_key=str(petr.pk)).update(
        decision=DuplicateCandidate.Decision.LINKED)
    run = run_contacts(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    petr_link = Link.objects.get(profile=profile, crm_key=str(petr.pk))
    assert exchange_contacts(ewsim)[petr_link.remote_id].first_name == "Petr"
    # Pavel's candidacy is closed: he is a person of his own and goes to Exchange.
    assert DuplicateCandidate.objects.get(crm_key=str(pavel.pk)).decision == "apart"
    assert run.remote_created == 1
    assert len(exchange_contacts(ewsim)) == 2 and len(persons(profile)) == 2
    assert run_contacts(ewsim, profile).items.count() == 0
