"""Sync now, analyze, force resync, pause and resume in the admin; approval queues a sync."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django_q.models import OrmQ

from crm.models import Person
from engine.jobs import run_job
from engine.models import Agenda, DuplicateCandidate, FolderState, Job, Link, Retry, Run
from ewsim.testing import SimHandle
from tests.base import BaseTestCase

from .sync_helpers import exchange_contacts, make_profile, persons
from .test_contacts_sync import add_exchange_contact

CHANGELIST = "admin:profiles_syncprofile_changelist"


def queued() -> list[tuple[Any, ...]]:
    return sorted((*q.args(), q.kwargs()["dry_run"], q.kwargs()["trigger"])
                  for q in OrmQ.objects.all())


class OperationsAdminTests(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.bobs = self.make_profile(self.acme, self.dave, "dave@acme.example",
                                      sync_calendar=False)
        self.charlies = self.make_profile(self.globex, self.charlie, "charlie@globex.example")
        self.client.force_login(self.bob)

    def _action(self, action: str, *profiles: Any, **extra: str) -> Any:
        return self.client.post(reverse(CHANGELIST), {
            "action": action, ACTION_CHECKBOX_NAME: [p.pk for p in profiles], **extra})

    def test_sync_now_and_analyze_queue_runs_of_the_own_organization_only(self) -> None:
        response = self._action("sync_now", self.bobs, self.charlies)
        assert response.status_code == 302
        assert queued() == [(self.bobs.pk, "contacts", False, "manual")]
        OrmQ.objects.all().delete()
        self._action("analyze", self.bobs, self.charlies)
        assert queued() == [(self.bobs.pk, "contacts", True, "manual")]
        assert not Run.objects.exists()     # queued for a worker, not run in the request

    def test_the_change_page_buttons_work_and_hide_other_organizations(self) -> None:
        page = self.client.get(reverse("admin:profiles_syncprofile_change", args=[self.bobs.pk]))
        assert page.status_code == 200
        for label in ("Sync now", "Analyze", "Force resync", "Pause", "Resume",
                      "Schedule (one job per enabled agenda)", "Contacts"):
            self.assertContains(page, label)
        url = reverse("admin:profiles_syncprofile_sync_now", args=[self.bobs.pk])
        assert self.client.get(url).status_code == 405        # a link never starts a sync
        assert self.client.post(url).status_code == 302
        assert queued() == [(self.bobs.pk, "contacts", False, "manual")]
        for name in ("sync_now", "analyze", "pause_jobs", "resume_jobs", "force_resync"):
            url = reverse(f"admin:profiles_syncprofile_{name}", args=[self.charlies.pk])
            assert self.client.post(url, {"confirmed": "yes"}).status_code == 404
        assert len(queued()) == 1
        assert not Job.objects.filter(profile=self.charlies, paused=True).exists()

    def test_pause_and_resume(self) -> None:
        self._action("pause_jobs", self.bobs, self.charlies)
        assert list(Job.objects.filter(paused=True).values_list("profile", flat=True)) == [
            self.bobs.pk]
        self.client.post(reverse("admin:profiles_syncprofile_resume_jobs", args=[self.bobs.pk]))
        assert not Job.objects.filter(paused=True).exists()

    def test_sync_now_and_analyze_of_a_paused_profile_say_so_and_queue_nothing(self) -> None:
        self._action("pause_jobs", self.bobs)
        for action in ("sync_now", "analyze"):
            response = self.client.post(reverse(CHANGELIST), {
                "action": action, ACTION_CHECKBOX_NAME: [self.bobs.pk]}, follow=True)
            self.assertContains(response, "“dave@acme.example” is paused: nothing was queued.")
            self.assertNotContains(response, "Queued")
            self.assertNotContains(response, "has an agenda switched on")
        url = reverse("admin:profiles_syncprofile_sync_now", args=[self.bobs.pk])
        self.assertContains(self.client.post(url, follow=True), "is paused: nothing was queued")
        assert not OrmQ.objects.exists()

    def test_sync_now_queues_the_agendas_that_are_not_paused(self) -> None:
        self.bobs.sync_calendar = True
        self.bobs.save()
        Job.objects.filter(profile=self.bobs, agenda="calendar").update(paused=True)
        response = self._action("sync_now", self.bobs)
        page = self.client.get(response.url)
        self.assertContains(page, "“dave@acme.example”: not queued, paused: Calendar.")
        self.assertContains(page, "Queued 1 sync")
        assert queued() == [(self.bobs.pk, "contacts", False, "manual")]

    def test_force_resync_of_a_paused_profile_forgets_but_queues_nothing(self) -> None:
        Link.objects.create(profile=self.bobs, agenda="contacts", crm_key="1", remote_id="r")
        self._action("pause_jobs", self.bobs)
        url = reverse("admin:profiles_syncprofile_force_resync", args=[self.bobs.pk])
        response = self.client.post(url, {"confirmed": "yes"}, follow=True)
        self.assertContains(response, "its full sync runs once you resume it")
        assert not Link.objects.exists() and not OrmQ.objects.exists()

    def test_force_resync_asks_first_then_forgets_the_state_and_queues_a_sync(self) -> None:
        for profile in (self.bobs, self.charlies):
            FolderState.objects.create(profile=profile, agenda="contacts", folder_id="f")
            Link.objects.create(profile=profile, agenda="contacts", crm_key="1", remote_id="r")
            Retry.objects.create(profile=profile, agenda="contacts", side="crm", key="1")
            DuplicateCandidate.objects.create(profile=profile, crm_key="2", remote_id="x",
                                              address="a@b.c", decision="apart")
        page = self._action("force_resync", self.bobs, self.charlies)
        assert page.status_code == 200
        self.assertContains(page, "Yes, forget the sync state")
        self.assertContains(page, "dave@acme.example")
        self.assertNotContains(page, "charlie@globex.example")
        assert Link.objects.count() == 2 and not OrmQ.objects.exists()

        self._action("force_resync", self.bobs, self.charlies, confirmed="yes")
        for model in (FolderState, Link, Retry):
            assert list(model.objects.values_list("profile", flat=True)) == [self.charlies.pk]
        assert DuplicateCandidate.objects.count() == 2            # decisions are kept
        assert queued() == [(self.bobs.pk, "contacts", False, "resync")]

    def test_force_resync_from_the_change_page(self) -> None:
        Link.objects.create(profile=self.bobs, agenda="contacts", crm_key="1", remote_id="r")
        url = reverse("admin:profiles_syncprofile_force_resync", args=[self.bobs.pk])
        self.assertContains(self.client.get(url), "Links forgotten")
        assert Link.objects.exists()
        assert self.client.post(url, {"confirmed": "yes"}).status_code == 302
        assert not Link.objects.exists()
        assert self.client.get(reverse(
            "admin:profiles_syncprofile_force_resync", args=[self.charlies.pk])).status_code == 404

    def test_force_resync_waits_for_a_run_in_progress(self) -> None:
        from engine import leases

        Link.objects.create(profile=self.bobs, agenda="contacts", crm_key="1", remote_id="r")
        leases.claim(self.bobs.pk, "contacts", "a-running-sync")
        url = reverse("admin:profiles_syncprofile_force_resync", args=[self.bobs.pk])
        response = self.client.post(url, {"confirmed": "yes"}, follow=True)
        self.assertContains(response, "syncing right now")
        assert Link.objects.exists() and not OrmQ.objects.exists()

    def test_approving_a_held_run_queues_its_sync_at_once(self) -> None:
        held = Run.objects.create(profile=self.bobs, agenda="contacts", status="waiting")
        other = Run.objects.create(profile=self.charlies, agenda="contacts", status="waiting")
        self.client.post(reverse("admin:engine_run_changelist"), {
            "action": "approve_deletions", ACTION_CHECKBOX_NAME: [held.pk, other.pk]})
        held.refresh_from_db()
        other.refresh_from_db()
        assert held.approved_by == self.bob and other.approved_at is None
        assert queued() == [(self.bobs.pk, "contacts", False, "approval")]

    def test_approving_a_held_run_of_a_paused_profile_queues_nothing_and_says_so(
            self) -> None:
        held = Run.objects.create(profile=self.bobs, agenda="contacts", status="waiting")
        self._action("pause_jobs", self.bobs)
        response = self.client.post(reverse("admin:engine_run_changelist"), {
            "action": "approve_deletions", ACTION_CHECKBOX_NAME: [held.pk]}, follow=True)
        self.assertContains(response, "“dave@acme.example” (Contacts) is paused: what was "
                                      "approved is carried out by its first run after Resume.")
        held.refresh_from_db()
        assert held.approved_by == self.bob and not OrmQ.objects.exists()

    def test_the_jobs_list_is_scoped(self) -> None:
        page = self.client.get(reverse("admin:engine_job_changelist"))
        self.assertContains(page, "dave@acme.example")
        self.assertNotContains(page, "charlie@globex.example")


# --- force resync against ewsim: no duplicates ------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_force_resync_relinks_everything_and_creates_no_duplicates(ewsim: SimHandle) -> None:
    from engine.resync import force_resync

    profile = make_profile(ewsim)
    org = profile.organization_id
    add_exchange_contact(ewsim, "Jan", "Novák", "jan@stavby.cz")            # → CRM
    Person.objects.create(organization_id=org, first_name="Eva", email1="eva@acme.cz")  # → EX
    add_exchange_contact(ewsim, "Marie", "Malá", "marie@firma.cz")          # on both sides:
    Person.objects.create(organization_id=org, first_name="Marie", last_name="Malá",
                          email1="marie@firma.cz")                          # linked by address
    add_exchange_contact(ewsim, "Petr", "Svoboda", "info@stavby.cz")        # ambiguous:
    petr, pavel = (Person.objects.create(organization_id=org, first_name=first,
                                         last_name="Svoboda", email1="info@stavby.cz")
                   for first in ("Petr", "Pavel"))
    assert run_job(profile.pk, "contacts") == Run.Status.SUCCESS
    DuplicateCandidate.objects.filter(crm_key=str(petr.pk)).update(decision="linked")
    assert run_job(profile.pk, "contacts") == Run.Status.SUCCESS     # Petr linked by hand
    links_before = set(Link.objects.filter(profile=profile).values_list("crm_key", "remote_id"))
    assert len(links_before) == 5
    assert len(persons(profile)) == 5 and len(exchange_contacts(ewsim)) == 5
    decisions_before = set(DuplicateCandidate.objects.values_list("crm_key", "decision"))

    forgotten = force_resync(profile.pk, Agenda.CONTACTS)
    assert forgotten is not None and forgotten.links == 5
    assert not Link.objects.exists() and not FolderState.objects.exists()

    run = Run.objects.get(pk=_status_run(profile.pk))
    assert run.status == Run.Status.SUCCESS, run.message
    assert (run.crm_created, run.remote_created) == (0, 0)
    assert len(persons(profile)) == 5 and len(exchange_contacts(ewsim)) == 5
    assert set(Link.objects.filter(profile=profile).values_list(
        "crm_key", "remote_id")) == links_before
    assert set(DuplicateCandidate.objects.values_list("crm_key", "decision")) == decisions_before
    assert pavel.pk   # Pavel went to Exchange on the first run and is linked by his stamp
    # And the state is whole again: the next run has nothing to do.
    assert run_job(profile.pk, "contacts") == Run.Status.SUCCESS
    assert Run.objects.latest("started").items.count() == 0


def _status_run(profile_id: int) -> int:
    run_job(profile_id, "contacts", trigger="resync")
    return Run.objects.filter(trigger="resync").latest("started").pk
