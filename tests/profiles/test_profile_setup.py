"""A new profile does not start before it is set up: the add form leaves "active" unticked,
and an inactive profile is synced by nothing — not the schedule, not Sync now, not a task
queued anyway. Analyze still works: it writes nothing."""

from __future__ import annotations

from django.urls import reverse
from django_q.models import OrmQ

from crm.models import CrmUser, Person
from engine import jobs
from engine.models import Job, Run
from ewsim.testing import ewsim, ewsim_server  # noqa: F401 (fixtures)
from profiles.models import SyncProfile
from tests.profiles.admin_data import profile_form_data
from tests.profiles.ewsim_cases import EwsimAdminTestCase
from tests.profiles.test_folder_picker import _inputs

ADD = "/admin/profiles/syncprofile/add/"


def queued() -> list[tuple[object, ...]]:
    return sorted((*q.args(), q.kwargs()["dry_run"]) for q in OrmQ.objects.all())


class NewProfileSetupTestCase(EwsimAdminTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.connection = self.ews_connection(self.acme)
        self.crm_user = CrmUser.objects.create(organization=self.acme, name="Alice",
                                               login="alice")
        Person.objects.create(organization=self.acme, first_name="Eva", last_name="Nová",
                              email1="eva@acme.cz")
        self.client.force_login(self.bob)

    def _add(self, **fields: object) -> SyncProfile:
        data = profile_form_data(organization_id=None, user_id=self.dave.id,
                                 crm_user_id=self.crm_user.pk, connection_id=self.connection.pk,
                                 mailbox="alice@example.com",
                                 contacts={"scope": "organization"})
        del data["active"]   # as the add form comes: unticked
        data.update(fields)
        response = self.client.post(ADD, data)
        self.assertEqual(response.status_code, 302, response.content[:3000])
        return SyncProfile.objects.get(mailbox="alice@example.com")

    def test_the_add_form_leaves_active_unticked_and_says_why(self) -> None:
        page = self.client.get(ADD).content.decode()
        active = _inputs(page)["active"]
        self.assertEqual(active["type"], "checkbox")
        self.assertNotIn("checked", active)
        self.assertIn("Left unticked, the new profile is saved but not synced", page)

    def test_a_profile_saved_from_the_add_form_is_inactive_with_no_schedule(self) -> None:
        profile = self._add()
        self.assertFalse(profile.active)
        jobs.reconcile_jobs()
        self.assertFalse(Job.objects.filter(profile=profile).exists())
        self.assertEqual(jobs.dispatch(), 0)
        self.assertEqual(queued(), [])
        self.assertEqual(self.requests_to_exchange(), 0)

    def test_sync_now_of_an_inactive_profile_says_so_and_queues_nothing(self) -> None:
        profile = self._add()
        response = self.client.post(
            reverse("admin:profiles_syncprofile_sync_now", args=[profile.pk]), follow=True)
        self.assertEqual(queued(), [])
        self.assertIn(("warning", "“alice@example.com” is inactive, so it is not synced: tick "
                       "“active” on its page and save when it is set up. (Analyze works "
                       "without it.)"), self.messages_of(response))

    def test_the_users_sync_now_of_an_inactive_profile_says_so_and_queues_nothing(
            self) -> None:
        profile = self._add()
        self.client.force_login(self.dave)
        response = self.client.post(reverse("portal:sync_now", args=[profile.pk]), follow=True)
        self.assertEqual(queued(), [])
        self.assertIn(("warning", "alice@example.com is not being synced yet: an "
                       "administrator starts it once it is set up."),
                      self.messages_of(response))

    def test_analyze_of_an_inactive_profile_is_queued_and_writes_nothing(self) -> None:
        profile = self._add()
        self.client.post(reverse("admin:profiles_syncprofile_analyze", args=[profile.pk]))
        self.assertEqual(queued(), [(profile.pk, "calendar", True), (profile.pk, "contacts", True)])
        self.assertEqual(jobs.run_job(profile.pk, "contacts", dry_run=True, trigger="manual"),
                         Run.Status.SUCCESS)
        self.assertEqual(Run.objects.get().items.get().get_action_display(),
                         "created in Exchange")
        self.assertEqual(self.sim.control.counters().get("CreateItem", 0), 0)

    def test_a_run_queued_anyway_does_not_start_for_an_inactive_profile(self) -> None:
        profile = self._add()
        for trigger in ("manual", "change", "resync", "approval", "schedule"):
            with self.subTest(trigger=trigger):
                self.assertIsNone(jobs.run_job(profile.pk, "contacts", trigger=trigger))
        self.assertFalse(Run.objects.exists())
        self.assertEqual(self.requests_to_exchange(), 0)

    def test_ticking_active_and_saving_starts_it(self) -> None:
        profile = self._add()
        data = profile_form_data(profile=profile, organization_id=None, user_id=self.dave.id,
                                 crm_user_id=self.crm_user.pk, connection_id=self.connection.pk,
                                 mailbox="alice@example.com",
                                 contacts={"scope": "organization"})
        response = self.client.post(
            reverse("admin:profiles_syncprofile_change", args=[profile.pk]), data)
        self.assertEqual(response.status_code, 302, response.content[:3000])
        self.assertTrue(Job.objects.filter(profile=profile).exists())
        self.assertEqual(jobs.run_job(profile.pk, "contacts", trigger="manual"),
                         Run.Status.SUCCESS)
        self.assertEqual(Run.objects.get().remote_created, 1)

    def test_a_force_resync_of_an_inactive_profile_forgets_but_queues_nothing(self) -> None:
        profile = self._add()
        response = self.client.post(
            reverse("admin:profiles_syncprofile_force_resync", args=[profile.pk]),
            {"confirmed": "yes"}, follow=True)
        self.assertEqual(queued(), [])
        self.assertIn(("warning", "“alice@example.com” (Contacts): the sync state is "
                       "forgotten; the profile is inactive, so the full sync runs once it is "
                       "made active."), self.messages_of(response))

    def test_an_inactive_profiles_page_says_it_is_not_synced(self) -> None:
        profile = self._add()
        url = reverse("admin:profiles_syncprofile_change", args=[profile.pk])
        notice = ("warning", "This profile is inactive: nothing syncs it. When its folders and "
                  "options are set, tick “active” and save.")
        self.assertIn(notice, self.messages_of(self.client.get(url)))
        SyncProfile.objects.filter(pk=profile.pk).update(active=True)
        self.assertNotIn(notice, self.messages_of(self.client.get(url)))
