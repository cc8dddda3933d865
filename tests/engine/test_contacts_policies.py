"""Contacts end to end under each direction and policy, with bad input and crashes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from crm.models import ClassificationNode, Person
from engine.models import Lease, Link, Run, RunItem
from engine.run.journal import Killed
from ewsim.testing import SimHandle

from .sync_helpers import exchange_contacts, make_profile, persons, run_contacts
from .test_contacts_sync import add_exchange_contact

pytestmark = pytest.mark.django_db(transaction=True)

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\x00" * 200 + b"\xff\xd9"


def person(profile, **fields: object) -> Person:  # type: ignore[no-untyped-def]
    return Person.objects.create(organization_id=profile.organization_id, **fields)


def test_import_copies_exchange_to_the_crm_and_never_writes_to_exchange(
        ewsim: SimHandle) -> None:
    profile = make_profile(ewsim, direction="import")
    add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    person(profile, first_name="Eva", email1="eva@acme.cz")
    run = run_contacts(ewsim, profile)
    assert (run.crm_created, run.remote_created, run.skipped) == (1, 0, 1)
    assert len(exchange_contacts(ewsim)) == 1
    assert "import only" in run.items.get(action=RunItem.Action.SKIP).detail


def test_export_copies_the_crm_to_exchange_and_never_writes_to_the_crm(
        ewsim: SimHandle) -> None:
    profile = make_profile(ewsim, direction="export")
    add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    person(profile, first_name="Eva", email1="eva@acme.cz")
    run = run_contacts(ewsim, profile)
    assert (run.crm_created, run.remote_created) == (0, 1)
    assert [p.first_name for p in persons(profile)] == ["Eva"]


def test_deleting_a_contact_by_default_only_stops_syncing_it(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    item_id = add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    run_contacts(ewsim, profile)
    ewsim.control.delete_item(item_id)
    run = run_contacts(ewsim, profile)
    assert run.items.get().action == RunItem.Action.UNLINK
    assert len(persons(profile)) == 1
    assert Link.objects.get().state == Link.State.UNLINKED
    # The survivor stays out of sync: editing it does not send it back to Exchange.
    petr = Person.objects.get()
    petr.job_title = "CEO"
    petr.save()
    assert run_contacts(ewsim, profile).items.count() == 0
    assert exchange_contacts(ewsim) == {}


def test_propagated_deletions_go_both_ways(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim, deletion_policy="propagate")
    item_id = add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    eva = person(profile, first_name="Eva", email1="eva@acme.cz")
    run_contacts(ewsim, profile)
    ewsim.control.delete_item(item_id)
    eva.delete()
    run = run_contacts(ewsim, profile)
    assert (run.crm_deleted, run.remote_deleted) == (1, 1), run.message
    assert persons(profile) == [] and exchange_contacts(ewsim) == {}
    # Deleted in Exchange means moved to Deleted Items: recoverable.
    folders = ewsim.control.call("GET", "folders", {"mailbox": ewsim.user})
    assert {f["name"]: f["total"] for f in folders}["Deleted Items"] == 1


def test_the_mass_deletion_guard_waits_for_approval(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim, deletion_policy="propagate")
    profile.mass_delete_min_items = 2
    profile.save()
    for i in range(5):
        person(profile, first_name=f"P{i}", email1=f"p{i}@acme.cz")
    run_contacts(ewsim, profile)
    Person.objects.filter(organization_id=profile.organization_id).delete()
    run = run_contacts(ewsim, profile)
    assert run.status == Run.Status.WAITING
    assert run.items.filter(action=RunItem.Action.PENDING_DELETE).count() == 5
    assert len(exchange_contacts(ewsim)) == 5      # nothing deleted yet
    assert run_contacts(ewsim, profile).status == Run.Status.WAITING   # still waiting
    Run.objects.filter(pk=run.pk).update(approved_at=timezone.now())
    approved = run_contacts(ewsim, profile)
    assert approved.status == Run.Status.SUCCESS and approved.remote_deleted == 5
    assert exchange_contacts(ewsim) == {}


def test_a_contact_outside_the_chosen_categories_is_left_alone(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim, only_categories=["Hotline"])
    item_id = add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    run_contacts(ewsim, profile)
    assert persons(profile) == []
    ewsim.control.update_item(item_id, Categories=["Hotline"])
    run_contacts(ewsim, profile)
    assert len(persons(profile)) == 1
    # Leaving the scope is not a deletion.
    ewsim.control.update_item(item_id, Categories=["Other"])
    run = run_contacts(ewsim, profile)
    assert run.items.get().action == RunItem.Action.UNLINK
    assert len(persons(profile)) == 1


def test_exported_contacts_get_the_chosen_category_so_they_stay_in_scope(
        ewsim: SimHandle) -> None:
    profile = make_profile(ewsim, only_categories=["Hotline"])
    person(profile, first_name="Eva", email1="eva@acme.cz")
    run_contacts(ewsim, profile)
    (record,) = exchange_contacts(ewsim).values()
    assert record.categories == ("Hotline",)
    assert run_contacts(ewsim, profile).items.count() == 0


def test_only_the_classification_branch_is_synced(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    customers = ClassificationNode.objects.create(organization_id=profile.organization_id,
                                                  name="Zákazníci")
    moravia = ClassificationNode.objects.create(organization_id=profile.organization_id,
                                                name="Morava", parent=customers)
    settings = profile.contactsettings
    settings.classification_node = customers
    settings.save()
    inside = person(profile, first_name="In", email1="in@acme.cz")
    inside.classification_nodes.add(moravia)
    person(profile, first_name="Out", email1="out@acme.cz")
    add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    run = run_contacts(ewsim, profile)
    assert run.remote_created == 1 and run.crm_created == 1
    petr = Person.objects.get(first_name="Petr")
    assert list(petr.classification_nodes.all()) == [customers]   # kept in scope


def test_photos_travel_both_ways(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    eva = person(profile, first_name="Eva", email1="eva@acme.cz", photo=JPEG)
    run_contacts(ewsim, profile)
    link = Link.objects.get(crm_key=str(eva.pk))
    from engine.mailbox.base import ItemRef
    from engine.mailbox.ews import EwsMailbox

    from .conftest import access_to

    with EwsMailbox(access_to(ewsim)) as mailbox:
        assert mailbox.read_photo(ItemRef(link.remote_id)) == JPEG
        mailbox.set_photo(ItemRef(link.remote_id), JPEG + b"v2")
    run = run_contacts(ewsim, profile)
    assert run.crm_updated == 1, list(run.items.values_list("action", "detail"))
    eva.refresh_from_db()
    assert bytes(eva.photo) == JPEG + b"v2" and eva.photo_content_type == "image/jpeg"
    assert run_contacts(ewsim, profile).items.count() == 0


def test_bad_input_is_recorded_per_item_and_the_run_goes_on(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    huge = "x" * 5000
    ewsim.control.create_item(ewsim.user, folder="contacts", tag="Contact", xml=(
        f"<t:Contact><t:DisplayName>Long</t:DisplayName><t:JobTitle>{huge}</t:JobTitle>"
        "<t:EmailAddresses><t:Entry Key=\"EmailAddress1\">long@x.cz</t:Entry>"
        "</t:EmailAddresses></t:Contact>"))
    ewsim.control.create_item(ewsim.user, folder="contacts", tag="Contact",
                              xml="<t:Contact><t:CompanyName>No Name Ltd</t:CompanyName>"
                                  "</t:Contact>")
    add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    run = run_contacts(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    assert run.crm_created == 3
    long = Person.objects.get(email1="long@x.cz")
    assert len(long.job_title) == 200
    warned = run.items.get(crm_key=str(long.pk))
    assert "job title was 5000 characters long" in warned.detail


def test_a_stale_change_key_is_a_conflict_tried_again_next_run(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    item_id = add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    run_contacts(ewsim, profile)
    petr = Person.objects.get()
    petr.job_title = "CEO"
    petr.save()
    ewsim.control.fault("irresolvable_conflict", "UpdateItem")
    run = run_contacts(ewsim, profile)
    assert run.status == Run.Status.SUCCESS and run.conflicts == 1 and run.errors == 0
    assert "tried again" in run.items.get().detail
    again = run_contacts(ewsim, profile)
    assert again.remote_updated == 1
    assert exchange_contacts(ewsim)[item_id].job_title == "CEO"


def test_a_second_run_of_the_same_agenda_refuses_to_start(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    Lease.objects.create(profile=profile, agenda="contacts", holder="another worker",
                         expires_at=timezone.now() + dt.timedelta(minutes=5))
    assert run_contacts(ewsim, profile).status == Run.Status.REFUSED
    Lease.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert run_contacts(ewsim, profile).status == Run.Status.SUCCESS   # an abandoned lease


def test_a_dead_server_fails_the_run_in_plain_words(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    ewsim.control.fault("http_500_plain", "*", count=-1)
    run = run_contacts(ewsim, profile)
    assert run.status == Run.Status.FAILED
    assert "does not answer as an Exchange Web Services endpoint" in run.message


@pytest.mark.parametrize("crash_at", ["crm write", "remote writes", "link recorded",
                                      "remote page checkpointed"])
def test_a_crash_anywhere_then_another_run_leaves_no_duplicate(ewsim: SimHandle,
                                                                crash_at: str) -> None:
    profile = make_profile(ewsim)
    for i in range(3):
        add_exchange_contact(ewsim, f"Ex{i}", "Contact", f"ex{i}@x.cz")
        person(profile, first_name=f"Crm{i}", email1=f"crm{i}@x.cz")

    def kill(label: str) -> None:
        if label == crash_at:
            raise Killed(label)

    with pytest.raises(Killed):
        run_contacts(ewsim, profile, checkpoint=kill)
    Lease.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))  # worker died
    run = run_contacts(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    assert len(persons(profile)) == 6 and len(exchange_contacts(ewsim)) == 6
    assert Link.objects.filter(profile=profile).count() == 6
    assert run_contacts(ewsim, profile).items.count() == 0


def test_a_crash_then_a_deletion_in_the_crm_does_not_bring_the_record_back(
        ewsim: SimHandle) -> None:
    profile = make_profile(ewsim, deletion_policy="propagate")
    eva = person(profile, first_name="Eva", email1="eva@acme.cz")

    def kill(label: str) -> None:
        if label == "remote writes":
            raise Killed(label)

    with pytest.raises(Killed):
        run_contacts(ewsim, profile, checkpoint=kill)    # Eva copied, link not saved
    Lease.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    eva.delete()
    run = run_contacts(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    assert persons(profile) == []                        # not brought back
    assert "deleted meanwhile" in run.items.get(action=RunItem.Action.SKIP).detail
