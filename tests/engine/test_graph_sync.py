"""Contacts end to end on Exchange Online: the runner, the built-in CRM and ewsim's Graph
front door over HTTP, on a real database; the connection's kind picks the Graph backend."""

from __future__ import annotations

import pytest

from crm.models import Person
from engine.models import Link, Run
from ewsim.testing import SimHandle
from tests.engine.graph_sync_helpers import make_graph_profile, run_graph
from tests.engine.sync_helpers import exchange_contacts
from tests.engine.test_contacts_sync import add_exchange_contact

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_first_two_way_sync_through_graph_copies_each_side_to_the_other(
        ewsim: SimHandle) -> None:
    profile = make_graph_profile(ewsim)
    add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz", "Stavby Brno s.r.o.")
    Person.objects.create(organization_id=profile.organization_id, title="Ing.",
                          first_name="Eva", last_name="Nová", email1="eva@acme.cz",
                          job_title="Nákup", phone_business_fax="+420 541 000 111")
    run = run_graph(profile, "contacts")
    assert run.status == Run.Status.SUCCESS, run.message
    assert (run.crm_created, run.remote_created) == (1, 1)
    petr = Person.objects.get(email1="petr@stavby.cz")
    assert petr.companies.get().name == "Stavby Brno s.r.o."
    # Read back through EWS: both backends see the same mailbox, stamps and MAPI fields.
    in_exchange = {r.email1: r for r in exchange_contacts(ewsim).values()}
    eva = in_exchange["eva@acme.cz"]
    assert (eva.title, eva.job_title, eva.phone_business_fax) == \
        ("Ing.", "Nákup", "+420 541 000 111")
    assert eva.stamp
    assert Link.objects.filter(profile=profile).count() == 2

    again = run_graph(profile, "contacts")
    assert again.status == Run.Status.SUCCESS, again.message
    assert again.items.count() == 0
    assert again.requests <= 2      # a token may be fetched, then one delta request


def test_an_edit_on_either_side_reaches_the_other_through_graph(ewsim: SimHandle) -> None:
    profile = make_graph_profile(ewsim)
    item_id = add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    assert run_graph(profile, "contacts").status == Run.Status.SUCCESS
    ewsim.control.update_item(item_id, JobTitle="Jednatel")
    person = Person.objects.get(email1="petr@stavby.cz")
    person.phone_mobile = "+420 603 111 222"
    person.save()
    run = run_graph(profile, "contacts")
    assert run.status == Run.Status.SUCCESS, run.message
    person.refresh_from_db()
    assert person.job_title == "Jednatel"
    (petr,) = exchange_contacts(ewsim).values()
    assert (petr.job_title, petr.phone_mobile) == ("Jednatel", "+420 603 111 222")


def test_an_expired_delta_link_reads_again_without_duplicates(ewsim: SimHandle) -> None:
    profile = make_graph_profile(ewsim)
    add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    Person.objects.create(organization_id=profile.organization_id, first_name="Eva",
                          last_name="Nová", email1="eva@acme.cz")
    assert run_graph(profile, "contacts").status == Run.Status.SUCCESS
    ewsim.control.expire_delta(ewsim.user)
    add_exchange_contact(ewsim, "Jan", "Král", "jan@kral.cz")
    run = run_graph(profile, "contacts")
    assert run.status == Run.Status.SUCCESS, run.message
    assert (run.crm_created, run.remote_created) == (1, 0)
    assert sorted(p.email1 for p in Person.objects.all()) == \
        ["eva@acme.cz", "jan@kral.cz", "petr@stavby.cz"]
    assert len(exchange_contacts(ewsim)) == 3
    assert Link.objects.filter(profile=profile).count() == 3


def test_throttling_is_waited_out_and_the_run_succeeds(ewsim: SimHandle) -> None:
    profile = make_graph_profile(ewsim)
    add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    ewsim.control.fault("http_429", operation="contacts.delta", count=2, retry_after=0)
    ewsim.control.fault("http_503", operation="batch", count=1, retry_after=0)
    run = run_graph(profile, "contacts")
    assert run.status == Run.Status.SUCCESS, run.message
    assert Person.objects.get().email1 == "petr@stavby.cz"
    stats = ewsim.control.graph_stats()
    assert max(stats["peak_concurrency"].values()) <= 4
