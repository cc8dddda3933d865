"""An organization's CRM connection switched to another CRM: before each agenda's next run, its
links, cursors and duplicate candidates of the old CRM are forgotten (engine/crm_switch.py),
so the run matches both sides anew and nothing is lost or deleted on either side."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crm.models import Person
from engine import crm_switch, leases
from engine.models import CrmBinding, DuplicateCandidate, FolderState, Link, Run
from engine.sync import sync
from ewsim.testing import SimHandle
from profiles.models import SyncProfile
from tests.engine.crmstore import memory_store
from tests.engine.sync_helpers import (
    add_contact,
    crm_of,
    exchange_contacts,
    make_profile,
    persons_by_address,
    run,
    use_kind,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def profile(ewsim: SimHandle) -> Iterator[SyncProfile]:
    """Alice's profile, its organization on the built-in store to begin with."""
    profile = make_profile(ewsim)
    use_kind(profile, "builtin")
    memory_store.forget(str(profile.organization_id))
    yield profile
    memory_store.forget(str(profile.organization_id))


def test_a_switch_forgets_the_old_crms_state_and_the_next_run_matches_anew(
        ewsim: SimHandle, profile: SyncProfile) -> None:
    add_contact(ewsim, "Petr", "Svoboda", email="petr@stavby.cz")
    Person.objects.create(organization_id=profile.organization_id, first_name="Eva",
                          last_name="Nová", email1="eva@acme.cz", owner_id=profile.crm_user_id)
    run(profile, "contacts")
    assert Link.objects.filter(profile=profile, agenda="contacts").count() == 2
    DuplicateCandidate.objects.create(profile=profile, agenda="contacts", crm_key="1",
                                      remote_id="x", address="petr@stavby.cz")

    use_kind(profile, "memory")
    switched = run(profile, "contacts")

    # Both Exchange contacts (Petr, and Eva exported by the built-in store) are now persons
    # of the new CRM, linked anew; nothing was deleted in Exchange or in the built-in store.
    assert set(persons_by_address(crm_of(profile))) == {"petr@stavby.cz", "eva@acme.cz"}
    assert switched.crm_created == 2 and switched.remote_deleted == 0
    assert {r.email1 for r in exchange_contacts(ewsim).values()} \
        == {"petr@stavby.cz", "eva@acme.cz"}
    assert Person.objects.filter(organization_id=profile.organization_id).count() == 2
    memory_keys = {key for key, _record in persons_by_address(crm_of(profile)).values()}
    assert set(Link.objects.filter(profile=profile, agenda="contacts")
               .values_list("crm_key", flat=True)) == memory_keys
    assert not DuplicateCandidate.objects.filter(profile=profile).exists()
    # The next run has nothing to do: the state is the new CRM's now.
    again = run(profile, "contacts")
    assert (again.crm_created, again.remote_created, again.errors) == (0, 0, 0)


def test_nothing_is_forgotten_while_the_crm_stays_the_same(
        ewsim: SimHandle, profile: SyncProfile) -> None:
    add_contact(ewsim, "Petr", "Svoboda", email="petr@stavby.cz")
    run(profile, "contacts")
    links = set(Link.objects.filter(profile=profile).values_list("pk", flat=True))
    assert CrmBinding.objects.get(profile=profile, agenda="contacts").crm == "builtin"
    assert crm_switch.bind(profile, "contacts") is False
    run(profile, "contacts")
    assert set(Link.objects.filter(profile=profile).values_list("pk", flat=True)) == links


def test_an_agenda_synced_before_bindings_existed_keeps_its_state(
        ewsim: SimHandle, profile: SyncProfile) -> None:
    """An upgraded installation: links made with the built-in store, no binding yet."""
    add_contact(ewsim, "Petr", "Svoboda", email="petr@stavby.cz")
    run(profile, "contacts")
    CrmBinding.objects.all().delete()
    assert crm_switch.bind(profile, "contacts") is False
    assert Link.objects.filter(profile=profile).count() == 1
    assert CrmBinding.objects.get(profile=profile, agenda="contacts").crm == "builtin"


def test_another_instance_of_the_same_kind_is_another_crm(
        ewsim: SimHandle, profile: SyncProfile) -> None:
    # The in-memory kind keeps the base class's rule: the kind and every setting.
    use_kind(profile, "memory")
    connection = profile.organization.crm_connection
    connection.settings = {"instance": "acme", "user": "sync@acme.cz"}
    connection.save(update_fields=["settings"])
    add_contact(ewsim, "Petr", "Svoboda", email="petr@stavby.cz")
    run(profile, "contacts")
    assert Link.objects.filter(profile=profile).count() == 1

    connection.settings = {"instance": "acme-2", "user": "sync@acme.cz"}
    connection.save(update_fields=["settings"])
    assert crm_switch.bind(profile, "contacts") is True
    assert not Link.objects.filter(profile=profile).exists()
    assert not FolderState.objects.filter(profile=profile).exists()


def test_a_dry_run_forgets_nothing(ewsim: SimHandle, profile: SyncProfile) -> None:
    add_contact(ewsim, "Petr", "Svoboda", email="petr@stavby.cz")
    run(profile, "contacts")
    use_kind(profile, "memory")
    analysis = sync(SyncProfile.objects.get(pk=profile.pk), "contacts", dry_run=True)
    assert analysis.kind == Run.Kind.ANALYSIS
    assert Link.objects.filter(profile=profile).count() == 1
    assert CrmBinding.objects.get(profile=profile, agenda="contacts").crm == "builtin"


def test_while_a_run_holds_the_agenda_the_state_is_kept_for_the_next_run(
        ewsim: SimHandle, profile: SyncProfile) -> None:
    add_contact(ewsim, "Petr", "Svoboda", email="petr@stavby.cz")
    run(profile, "contacts")
    use_kind(profile, "memory")
    assert leases.claim(profile.pk, "contacts", "another-run")
    assert crm_switch.bind(profile, "contacts") is False
    assert Link.objects.filter(profile=profile).count() == 1
    leases.release(profile.pk, "contacts", "another-run")
    assert crm_switch.bind(profile, "contacts") is True
    assert not Link.objects.filter(profile=profile).exists()
    assert CrmBinding.objects.get(profile=profile, agenda="contacts").crm.startswith("memory:")


def test_fields_the_crm_cannot_hold_are_left_out_of_the_sync(
        ewsim: SimHandle, profile: SyncProfile) -> None:
    """A CRM without three addresses (the "limited" kind of tests/crm_kinds.py): an Exchange
    contact's home address is not written to it, and not seen as a difference run after run;
    it stays as it is in Exchange."""
    use_kind(profile, "limited")
    xml = ("<t:Contact><t:DisplayName>Petr Svoboda</t:DisplayName><t:GivenName>Petr"
           "</t:GivenName><t:EmailAddresses><t:Entry Key=\"EmailAddress1\">petr@stavby.cz"
           "</t:Entry></t:EmailAddresses><t:PhysicalAddresses><t:Entry Key=\"Home\">"
           "<t:Street>Lipová 5</t:Street><t:City>Brno</t:City></t:Entry><t:Entry "
           "Key=\"Business\"><t:Street>Nádražní 1</t:Street><t:City>Praha</t:City></t:Entry>"
           "</t:PhysicalAddresses><t:Surname>Svoboda</t:Surname></t:Contact>")
    ewsim.control.create_item(ewsim.user, folder="contacts", xml=xml, tag="Contact")
    first = run(profile, "contacts")
    assert first.crm_created == 1
    person = Person.objects.get(organization_id=profile.organization_id, email1="petr@stavby.cz")
    assert (person.business_street, person.business_city) == ("Nádražní 1", "Praha")
    assert (person.home_street, person.home_city) == ("", "")
    again = run(profile, "contacts")
    assert (again.crm_updated, again.remote_updated, again.errors) == (0, 0, 0)
    [contact] = exchange_contacts(ewsim).values()
    assert contact.home_address.city == "Brno"
