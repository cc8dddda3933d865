"""No English on the pages a Czech reader sees: the user pages and the sync configuration's
admin, rendered with a Czech browser language and read as a person reads them."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import re

from django.conf import settings
from django.urls import reverse
from django.utils import timezone, translation

from engine.models import Job, Lease, Run, RunItem
from engine.reasons import describe, known
from profiles.models import AuditEntry
from tests.portal.base import PortalTestCase
from tests.portal.english import english_in, visible_texts

CZECH = {"accept-language": "cs"}


class CzechPagesTestCase(PortalTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.addCleanup(translation.activate, settings.LANGUAGE_CODE)
        self.run_ = self.make_run(self.daves, status=Run.Status.PARTIAL, errors=1,
                                  crm_created=2, message="3 deletions wait for an "
                                                         "administrator's approval")
        # Dave's contacts are syncing again now: the dashboard shows what the run is doing.
        self.make_run(self.daves, status=Run.Status.RUNNING, finished=None,
                      started=timezone.now(), progress_note="240 CRM changes to look at")
        Lease.objects.create(profile=self.daves, agenda="contacts", holder="worker-1",
                             expires_at=timezone.now() + dt.timedelta(minutes=5))
        for action, title, detail in ITEMS:
            self.make_item(self.run_, action, title, detail=detail)
        self.make_candidate(self.daves)
        self.make_candidate(self.daves, agenda="calendar", address="the same meeting UID",
                            crm_title="Porada", remote_title="Porada")
        self.job = Job.objects.update_or_create(
            profile=self.daves, agenda="contacts",
            defaults={"last_status": Run.Status.FAILED, "consecutive_failures": 2,
                      "last_message": "There is no mailbox dave@acme.example on "
                                      "mail.example.org."})[0]
        AuditEntry.objects.all().delete()   # the set-up's, naming the connections in English
        for profile in (self.daves, self.eves, self.charlies):
            # Named as a Czech administrator would name them: the test looks for English.
            profile.connection.name = f"Připojení {profile.user.username}"
            profile.connection.save()

    def _english(self, url: str) -> list[str]:
        response = self.client.get(url, headers=CZECH)
        assert response.status_code == 200, (url, response.status_code)
        return english_in(visible_texts(response.content.decode()))

    def _csv_english(self, url: str) -> list[str]:
        response = self.client.get(url, headers=CZECH)
        assert response.status_code == 200, (url, response.status_code)
        text = b"".join(response.streaming_content).decode("utf-8-sig")
        return english_in([cell for row in csv.reader(io.StringIO(text)) for cell in row])

    def test_the_user_pages_speak_czech(self) -> None:
        self.sign_in(self.dave)
        pages = [reverse("portal:dashboard"), reverse("portal:history"),
                 reverse("portal:run", args=[self.run_.pk]), reverse("portal:duplicates"),
                 reverse("portal:password_change"), reverse("portal:password_changed")]
        found = {url: self._english(url) for url in pages}
        for url in (reverse("portal:history_csv"), reverse("portal:run_items_csv",
                                                           args=[self.run_.pk]),
                    reverse("portal:duplicates_csv")):
            found[url] = self._csv_english(url)
        self.client.logout()
        found[reverse("portal:login")] = self._english(reverse("portal:login"))
        found = {url: words for url, words in found.items() if words}
        assert not found, "\n".join(f"{url}: {words}" for url, words in found.items())

    def test_the_admin_speaks_czech(self) -> None:
        found = {}
        for user in (self.alice, self.bob):   # the superuser's pages and the limited ones
            self.sign_in(user)
            found |= {f"{user} {url}": self._english(url) for url in admin_urls(self)}
        found = {url: words for url, words in found.items() if words}
        assert not found, "\n".join(f"{url}: {words}" for url, words in found.items())

    def test_an_inline_is_added_in_good_czech(self) -> None:
        self.sign_in(self.alice)
        page = self.client.get(reverse("admin:profiles_syncprofile_change",
                                       args=[self.daves.pk]), headers=CZECH)
        # The admin's script writes the link from the inline's data (JSON in an attribute).
        texts = [json.loads(html.unescape(data))["options"]["addText"] for data in
                 re.findall(r'data-inline-formset="([^"]*)"', page.content.decode())]
        assert "Přidat další: Poštovní složka" in texts, texts

    def test_reasons_read_in_czech_with_the_fields_labels(self) -> None:
        self.sign_in(self.dave)
        page = self.client.get(reverse("portal:run", args=[self.run_.pk]), headers=CZECH)
        for text in ("změněno v Exchange: Jméno, Pracovní pozice",
                     "změněno na obou stranách: Jméno, Pracovní pozice; ponechány hodnoty z "
                     "Exchange",
                     "nový v Exchange", "přesunuto do složky Archiv v Exchange"):
            self.assertContains(page, text)

    def test_the_runs_message_and_what_it_does_now_read_in_czech(self) -> None:
        self.sign_in(self.dave)
        self.assertContains(self.client.get(reverse("portal:dashboard"), headers=CZECH),
                            "240 změn v CRM k prohlédnutí")
        self.assertContains(self.client.get(reverse("portal:run", args=[self.run_.pk]),
                                            headers=CZECH),
                            "3 smazání čekají na schválení správcem")

    def test_every_reason_here_is_one_the_registry_knows(self) -> None:
        unknown = [detail for _action, _title, detail in ITEMS if not known(detail)]
        assert not unknown, unknown

    def test_a_detail_no_template_matches_is_shown_as_written(self) -> None:
        with translation.override("cs"):
            assert describe("The server said no.") == "The server said no."
            assert describe("") == ""


# A run item of every reason the engine writes (engine/reasons.py), as it writes them.
A = RunItem.Action
ITEMS: list[tuple[str, str, str]] = [
    (A.CREATE_CRM, "Petr Svoboda", "new in Exchange"),
    (A.CREATE_REMOTE, "Jana Nováková", "new in the CRM"),
    (A.SKIP, "Petr Svoboda", "new in the CRM, but this profile syncs import only"),
    (A.UPDATE_CRM, "Petr Svoboda", "changed in Exchange: first_name, job_title"),
    (A.UPDATE_REMOTE, "Porada", "changed in the CRM: location, start — Time zone: "
                                "Středoevropský čas."),
    (A.UPDATE_REMOTE, "Petr Svoboda", "changed in the CRM: photo_token — The photo was not "
                                      "written: ErrorAccessDenied"),
    (A.SKIP, "Porada", "changed in the CRM: ErrorIrresolvableConflict"),
    (A.CONFLICT, "Petr Svoboda", "changed on both sides: first_name, job_title; kept the "
                                 "values from Exchange"),
    (A.CONFLICT, "Jana Nováková", "different on the two sides when first linked: last_name; "
                                  "kept the values from the CRM"),
    (A.UNLINK, "Jana Nováková", "moved to Archiv in Exchange; no longer synced, nothing "
                                "deleted"),
    (A.UNLINK, "Jana Nováková", "left the synced scope in the CRM; nothing deleted"),
    (A.UNLINK, "Jana Nováková", "deleted on both sides"),
    (A.UNLINK, "Jana Nováková", "deleted on one side after the pair left the synced scope; "
                                "the other side is left alone"),
    (A.UNLINK, "Jana Nováková", "deleted in Exchange; kept on the other side"),
    (A.CREATE_REMOTE, "Jana Nováková", "deleted in Exchange but changed on the other side: "
                                       "the change wins"),
    (A.DELETE_CRM, "Jana Nováková", "deleted in Exchange"),
    (A.DELETE_REMOTE, "Jana Nováková", "deleted in the CRM"),
    (A.SKIP, "Jana Nováková", "deleted in the CRM: ErrorAccessDenied"),
    (A.DELETE_CRM, "Porada", "deleted on the other side"),
    (A.PENDING_DELETE, "Porada", "more deletions than the mass-deletion guard allows"),
    (A.PENDING_CREATE, "Porada", "more creations than the mass-creation guard allows"),
    (A.DELETE_CRM, "Porada", "You deleted this meeting as its organizer: the CRM event is "
                             "deleted, and the other synced attendees' copies with it, under "
                             "their deletion policy"),
    (A.UNLINK, "Porada", "You deleted your copy of a meeting you attend but do not organize, "
                         "and other synced users still have it: only your link and your "
                         "participation were removed; the CRM event and the other attendees' "
                         "copies stay"),
    (A.UNLINK, "Porada", "You deleted your copy of a meeting other synced users still have, "
                         "and it is not known whether you organize it: only your link and "
                         "your participation were removed; the CRM event and the other "
                         "attendees' copies stay"),
    (A.UNLINK, "Porada", "pavel@acme.example cancelled this meeting; the CRM event is kept "
                         "(changed in the CRM since, or deletions are not carried over) and no "
                         "longer synced; this cancelled copy is left in your calendar for you "
                         "to remove"),
    (A.DELETE_CRM, "Porada", "its organizer cancelled this meeting: the CRM event is deleted, "
                             "and the other synced attendees' copies with it, under their "
                             "deletion policy; this cancelled copy is left in your calendar "
                             "for you to remove"),
    (A.UNLINK, "Porada", "You declined a meeting that pavel organizes and other synced users "
                         "still attend: only your link and your participation were removed; "
                         "the CRM event and the other attendees' copies stay; your declined "
                         "copy is left as it is"),
    (A.UNLINK, "Porada", "You declined this meeting; the CRM event is kept (changed in the CRM "
                         "since, or deletions are not carried over) and no longer synced"),
    (A.DELETE_CRM, "Porada", "You declined this meeting and no other synced user attends it: "
                             "the CRM event is deleted; your declined copy is left as it is"),
    (A.LINK, "Petr Svoboda", "the same record on both sides"),
    (A.DUPLICATE, "Petr Svoboda", "shares info@stavby.cz"),
    (A.DUPLICATE, "Petr Svoboda", "shares info@stavby.cz, but the names differ"),
    (A.DUPLICATE, "Petr Svoboda", "the same name and company, and no e-mail address on either "
                                  "side"),
    (A.SKIP, "Petr Svoboda", "a copy of a CRM record that was deleted meanwhile; left alone"),
    (A.ERROR, "Petr Svoboda", "ErrorServerBusy (tried again next run)"),
    (A.SKIP, "Nabídka", "no longer in the mailbox (deleted or moved) when it was to be filed "
                        "again"),
    (A.SKIP, "Nabídka", "received 2026-01-05, before the import window (the last 30 days)"),
    (A.SKIP, "Nabídka", "filed already"),
    (A.SKIP, "Nabídka", "filed already as e-mail #12"),
    (A.SKIP, "Petr Svoboda", "not an e-mail (a contact): only e-mails are imported"),
    (A.SKIP, "Porada", "not an e-mail (a calendar item): only e-mails are imported"),
    (A.SKIP, "Nabídka", "no CRM person among its sender and recipients"),
    (A.SKIP, "Nabídka", "duplicate of e-mail #12, filed already"),
    (A.LINK, "Nabídka", "linked to nobody in the CRM"),
    (A.CREATE_CRM, "Nabídka", "linked to Petr Svoboda; Message-ID collision: e-mail #12 has "
                              "the same Message-ID but another sender, date or subject, so "
                              "this message is filed as an e-mail of its own"),
    (A.CREATE_CRM, "Nabídka", "linked to Petr Svoboda, Jana Nováková; saved Nabídky/2026/"
                              "nabidka.pdf; program.exe not saved (type not allowed); "
                              "video.mp4 not saved: 40 MB is over the 25 MB limit; saved "
                              "Nabídky/2026/cenik.pdf (cenik-kopie.pdf has the same content: "
                              "stored once)"),
    (A.ERROR, "Nabídka", "linked to Petr Svoboda; saved Nabídky/nabidka.pdf (tried again next "
                         "run)"),
]


def admin_urls(case: CzechPagesTestCase) -> list[str]:
    profile = case.daves
    return [
        reverse("admin:index"),
        reverse("admin:app_list", args=["profiles"]),
        reverse("admin:profiles_syncprofile_changelist"),
        reverse("admin:profiles_syncprofile_change", args=[profile.pk]),
        reverse("admin:profiles_syncprofile_add"),
        reverse("admin:profiles_mailboxconnection_changelist"),
        reverse("admin:profiles_mailboxconnection_change", args=[profile.connection_id]),
        reverse("admin:profiles_mailboxconnection_add"),
        reverse("admin:profiles_organization_changelist"),
        reverse("admin:profiles_organization_change", args=[profile.organization_id]),
        reverse("admin:profiles_auditentry_changelist"),
        reverse("admin:auth_user_add"),
        reverse("admin:auth_user_changelist"),
        reverse("admin:auth_user_change", args=[case.dave.pk]),
        reverse("admin:engine_run_changelist"),
        reverse("admin:engine_run_change", args=[case.run_.pk]),
        reverse("admin:engine_link_changelist"),
        reverse("admin:engine_duplicatecandidate_changelist"),
        reverse("admin:engine_job_changelist"),
        reverse("admin:engine_job_change", args=[case.job.pk]),
    ]
