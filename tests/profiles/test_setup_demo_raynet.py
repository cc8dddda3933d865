"""setup_demo's second organization, "Raynet demo": its CRM connection names the Raynet kind
at the demo's raynetsim instance, its profile syncs Petra's demo mailbox; with the demo
instance as raynetsim makes it (`--instance … --seed demo`) and ewsim's demo mailboxes, a
first sync goes both ways."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import override_settings

from crm.models import CrmUser
from engine.mailbox.ews import EwsMailbox
from engine.models import Run
from engine.records import ContactRecord, Kind
from engine.sync import sync
from ewsim.seed import PETRA
from ewsim.seed import seed_demo as seed_ewsim_demo
from ewsim.testing import SimHandle, ewsim, ewsim_server  # noqa: F401
from profiles import demo_raynet
from profiles.models import CrmConnection, Organization, SyncProfile
from raynetsim.seed import PERSONS
from raynetsim.seed import seed_demo as seed_raynet_demo
from raynetsim.testing import RaynetHandle, raynetsim, raynetsim_server  # noqa: F401
from tests.engine.conftest import access_to
from tests.engine.sync_helpers import exchange_events

pytestmark = pytest.mark.django_db(transaction=True)


def demo_instance(sim: RaynetHandle) -> None:
    """The instance as `raynetsim --instance … --user … --api-key … --seed demo` makes it."""
    server = sim.server
    instance = server.store.add_instance(demo_raynet.INSTANCE)
    user = server.store.add_user(instance, demo_raynet.API_USER, demo_raynet.API_KEY,
                                 "Petra Králová", server.clock.now())
    seed_raynet_demo(server.store, instance, user, server.clock.now())


def petras_contacts(sim: SimHandle) -> dict[str, ContactRecord]:
    with EwsMailbox(access_to(sim, username="svc@example.com", secret="svc-secret",
                              impersonate=True, mailbox=PETRA)) as mailbox:
        folder = mailbox.get_folder("contacts", Kind.CONTACTS)
        return {change.record.email1: change.record
                for page in mailbox.read_changes(folder, None) for change in page.changes
                if isinstance(change.record, ContactRecord)}


def test_the_raynet_demo_organization_is_made_once(raynetsim: RaynetHandle) -> None:  # noqa: F811
    out = io.StringIO()
    call_command("setup_demo", raynet_url=raynetsim.url, stdout=out)
    organization = Organization.objects.get(name=demo_raynet.ORGANIZATION)
    crm = CrmConnection.objects.get(organization=organization)
    crm.full_clean()
    assert (crm.kind, crm.settings) == ("raynet", {
        "base_url": raynetsim.url, "instance": demo_raynet.INSTANCE,
        "user": demo_raynet.API_USER})
    assert crm.get_secret("api_key") == demo_raynet.API_KEY
    (profile,) = SyncProfile.objects.filter(organization=organization)
    profile.full_clean()
    assert (profile.mailbox, profile.import_mail) == (PETRA, False)
    assert profile.crm_user.login == demo_raynet.API_USER   # her person owns what is made
    assert profile.connection.organization_id == organization.pk
    petra_password = out.getvalue().split("petra")[-1].split()[0]
    assert profile.user.check_password(petra_password)

    again = io.StringIO()
    call_command("setup_demo", raynet_url=raynetsim.url, stdout=again)
    assert "exists already" in again.getvalue()
    assert petra_password not in again.getvalue()
    assert Organization.objects.filter(name=demo_raynet.ORGANIZATION).count() == 1
    assert CrmUser.objects.filter(organization=organization).count() == 1


def test_without_the_raynet_kind_offered_the_demo_says_so() -> None:
    with override_settings(SYNC_CRM_KINDS={"builtin": "engine.crmstore.builtin.BuiltinCrm"}):
        out = io.StringIO()
        call_command("setup_demo", stdout=out)
    assert "does not offer the Raynet kind" in out.getvalue()
    assert not Organization.objects.filter(name=demo_raynet.ORGANIZATION).exists()
    assert Organization.objects.filter(name="Demo s.r.o.").exists()


def test_the_raynet_demo_syncs_both_ways(ewsim: SimHandle,  # noqa: F811
                                         raynetsim: RaynetHandle) -> None:  # noqa: F811
    seed_ewsim_demo(ewsim.server)
    demo_instance(raynetsim)
    call_command("setup_demo", ews_url=ewsim.url, raynet_url=raynetsim.url,
                 stdout=io.StringIO())
    profile = SyncProfile.objects.get(mailbox=PETRA)
    for agenda in ("contacts", "calendar"):
        done = sync(SyncProfile.objects.get(pk=profile.pk), agenda)
        assert (done.status, done.errors) == (Run.Status.SUCCESS, 0), done.message
    # Raynet's persons reached Petra's contacts, hers reached Raynet; Karel, in both by
    # the same address, is one person linked, not two.
    in_exchange = petras_contacts(ewsim)
    assert {fields["contactInfo"]["email"] for fields, _ in PERSONS} <= in_exchange.keys()
    assert in_exchange["jitka.svobodova@elektro-horak.cz"].company == "Elektro Horák s.r.o."
    crm = CrmConnection.objects.get(organization=profile.organization).backend_class
    backend = crm.for_profile(profile, CrmConnection.objects.get(
        organization=profile.organization))
    persons = [r.record for r in backend.fetch(Kind.CONTACTS, [
        c.key for c in backend.changes_since(Kind.CONTACTS, "")]).values()]
    addresses = sorted(p.email1 for p in persons if isinstance(p, ContactRecord))
    assert addresses == sorted({*in_exchange, *(f["contactInfo"]["email"]
                                                for f, _ in PERSONS)})
    assert addresses.count("karel.horak@elektro-horak.cz") == 1
    events = {r.subject for r in exchange_events(ewsim, PETRA).values()}
    assert "Raynet: předvedení novinek" in events
    meetings = {r.record.subject for r in backend.fetch(Kind.CALENDAR, [
        c.key for c in backend.changes_since(Kind.CALENDAR, "")]).values()}
    assert "Telefonát s Agro Beneš" in meetings
