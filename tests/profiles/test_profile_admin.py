from __future__ import annotations

from typing import Any

from crm.models import ClassificationNode, CrmUser, EventCategory, EventStatus
from profiles.models import SyncProfile
from tests.base import BaseTestCase
from tests.profiles.admin_data import profile_form_data

ADD_URL = "/admin/profiles/syncprofile/add/"


class ProfileAdminTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.connection = self.make_connection(self.acme)
        self.crm_user = CrmUser.objects.create(organization=self.acme, name="Dave", login="dave")
        self.hotline = EventCategory.objects.create(organization=self.acme, name="HOTLINE")
        self.registration = EventCategory.objects.create(organization=self.acme,
                                                         name="REGISTRACE")
        self.incoming = EventStatus.objects.create(organization=self.acme, name="Příchozí")
        self.branch = ClassificationNode.objects.create(organization=self.acme, name="Zákazníci")

    def _data(self, **overrides: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "organization_id": self.acme.id,
            "user_id": self.dave.id,
            "crm_user_id": self.crm_user.id,
            "connection_id": self.connection.id,
            "mailbox": "Dave@Acme.example",
        }
        fields.update(overrides)
        return profile_form_data(**fields)

    def test_every_option_entered_on_the_add_page_is_saved(self) -> None:
        self.client.force_login(self.alice)
        response = self.client.post(ADD_URL, self._data(
            calendar={"direction": "import", "days_past": 0, "days_future": 3650,
                      "folder_id": "AAMkADQ=", "folder_path": "Calendar/Team",
                      "skip_private": True, "scope": "paired",
                      "default_category": self.hotline.id, "imported_status": self.incoming.id,
                      "link_attendees": False, "link_attendee_companies": True,
                      "deletion_policy": "unlink"},
            contacts={"direction": "export", "only_categories": "Hotline\nInstalace\nhotline",
                      "scope": "branch", "classification_node": self.branch.id,
                      "deletion_policy": "propagate"},
            mail={"received_within_days": 7, "save_attachments": True,
                  "attachment_directory": self.acme.attachment_roots + "/crm/mail",
                  "attachment_types": "PDF;docx;pdf", "attachment_category": "Smlouva",
                  "max_attachment_mb": 20, "unmatched": "skip"},
            pairings=[(self.hotline.id, "Hotline"), (self.registration.id, "Registrace")],
            mail_folders=[("inbox", "Inbox"), ("AAMkAF=", "Inbox/Orders")],
        ))
        self.assertEqual(response.status_code, 302, _errors_of(response))

        profile = SyncProfile.objects.get()
        self.assertEqual(profile.mailbox, "dave@acme.example")
        calendar = profile.calendarsettings
        self.assertEqual(
            (calendar.direction, calendar.days_past, calendar.days_future, calendar.folder_id,
             calendar.folder_path, calendar.skip_private, calendar.scope,
             calendar.default_category, calendar.imported_status, calendar.link_attendees,
             calendar.link_attendee_companies, calendar.deletion_policy),
            ("import", 0, 3650, "AAMkADQ=", "Calendar/Team", True, "paired", self.hotline,
             self.incoming, False, True, "unlink"),
        )
        contacts = profile.contactsettings
        self.assertEqual(contacts.only_categories, ["Hotline", "Instalace"])
        self.assertEqual((contacts.direction, contacts.scope, contacts.classification_node,
                          contacts.deletion_policy), ("export", "branch", self.branch,
                                                      "propagate"))
        mail = profile.mailsettings
        self.assertEqual((mail.received_within_days, mail.save_attachments,
                          mail.attachment_types, mail.attachment_category,
                          mail.max_attachment_mb, mail.unmatched),
                         (7, True, "pdf;docx", "Smlouva", 20, "skip"))
        self.assertEqual(sorted(str(p) for p in profile.category_pairings.all()),
                         ["HOTLINE = Hotline", "REGISTRACE = Registrace"])
        self.assertEqual(mail.folders(), [("inbox", "Inbox"), ("AAMkAF=", "Inbox/Orders")])

    def test_an_untouched_add_page_stores_the_defaults_once(self) -> None:
        self.client.force_login(self.alice)
        response = self.client.post(ADD_URL, self._data())
        self.assertEqual(response.status_code, 302, _errors_of(response))
        profile = SyncProfile.objects.get()
        self.assertEqual(profile.calendarsettings.days_future, 31)
        self.assertEqual(profile.mailsettings.attachment_category, "Příloha")

    def test_the_change_page_saves_changed_agenda_settings(self) -> None:
        profile = self.make_profile(self.acme, self.dave, "dave@acme.example",
                                    connection=self.connection)
        self.client.force_login(self.alice)
        data = profile_form_data(
            profile=profile, organization_id=self.acme.id, user_id=self.dave.id,
            crm_user_id=profile.crm_user_id, connection_id=self.connection.id,
            mailbox=profile.mailbox, calendar={"days_past": 30},
        )
        response = self.client.post(f"/admin/profiles/syncprofile/{profile.id}/change/", data)
        self.assertEqual(response.status_code, 302, _errors_of(response))
        profile.refresh_from_db()
        self.assertEqual(profile.calendarsettings.days_past, 30)

    def test_only_paired_categories_needs_a_pairing(self) -> None:
        self.client.force_login(self.alice)
        response = self.client.post(ADD_URL, self._data(calendar={"scope": "paired"}))
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "needs at least one category pairing")
        self.assertFalse(SyncProfile.objects.exists())

    def test_an_exchange_category_paired_twice_is_rejected_whatever_its_case(self) -> None:
        self.client.force_login(self.alice)
        response = self.client.post(ADD_URL, self._data(
            pairings=[(self.hotline.id, "Hotline"), (self.registration.id, "HOTLINE")]))
        self.assertContains(response, "is paired twice")
        self.assertFalse(SyncProfile.objects.exists())

    def test_a_crm_category_paired_twice_is_rejected(self) -> None:
        self.client.force_login(self.alice)
        response = self.client.post(ADD_URL, self._data(
            pairings=[(self.hotline.id, "Hotline"), (self.hotline.id, "Other")]))
        self.assertEqual(response.status_code, 200)
        self.assertFalse(SyncProfile.objects.exists())

    def test_bad_values_are_explained_and_nothing_is_saved(self) -> None:
        self.client.force_login(self.alice)
        response = self.client.post(ADD_URL, self._data(
            mailbox="not an address",
            calendar={"days_past": 5000},
            mail={"attachment_types": "pdf;../evil", "save_attachments": True,
                  "attachment_directory": "/etc"},
        ))
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Enter a valid email address.")
        self.assertContains(response, "less than or equal to 3650")
        self.assertContains(response, "Not a file extension: “../evil”")
        self.assertContains(response, "is not inside an approved attachment root")
        self.assertFalse(SyncProfile.objects.exists())

    def test_an_organization_admins_profile_belongs_to_their_organization(self) -> None:
        self.client.force_login(self.bob)
        response = self.client.post(ADD_URL, self._data(organization_id=None))
        self.assertEqual(response.status_code, 302, _errors_of(response))
        self.assertEqual(SyncProfile.objects.get().organization, self.acme)

    def test_the_same_mailbox_twice_in_one_organization_is_rejected(self) -> None:
        self.make_profile(self.acme, self.dave, "dave@acme.example", connection=self.connection)
        self.client.force_login(self.bob)
        response = self.client.post(ADD_URL, self._data(organization_id=None))
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "already exists")


def _errors_of(response: Any) -> str:
    context = getattr(response, "context", None)
    if not context:
        return f"status {response.status_code}"
    parts = []
    if "adminform" in context:
        parts.append(str(context["adminform"].form.errors))
    for formset in context.get("inline_admin_formsets", []):
        parts.append(f"{formset.formset.prefix}: {formset.formset.errors} "
                     f"{formset.formset.non_form_errors()}")
    return "\n".join(parts)
