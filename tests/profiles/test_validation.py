from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from crm.models import EventCategory
from profiles.models import CategoryPairing, MailboxConnection
from profiles.validation import check_inside_roots, normalize_extensions
from tests.base import BaseTestCase


class ExtensionListTests:
    @pytest.mark.parametrize(
        ("entered", "stored"),
        [
            ("PDF; .docx;pdf", "pdf;docx"),
            ("doc;docx;xls;xlsx;pdf;jpg;jpeg;txt;png", "doc;docx;xls;xlsx;pdf;jpg;jpeg;txt;png"),
            (" Eml ;;7z ; ", "eml;7z"),
        ],
    )
    def test_extension_lists_are_lowercased_without_duplicates(
        self, entered: str, stored: str
    ) -> None:
        assert normalize_extensions(entered) == stored

    @pytest.mark.parametrize(
        ("entered", "named"),
        [("pdf;p*f", "“p*f”"), ("pdf;../x;doc", "“../x”"), ("tar.gz", "“tar.gz”"),
         ("pdf, docx", "“pdf, docx”"), ("exe ;c:\\x", "“c:\\x”")],
    )
    def test_anything_but_letters_and_digits_is_rejected_with_the_part_named(
        self, entered: str, named: str
    ) -> None:
        with pytest.raises(ValidationError) as caught:
            normalize_extensions(entered)
        assert named in caught.value.messages[0]

    def test_an_empty_list_is_rejected(self) -> None:
        with pytest.raises(ValidationError, match="at least one"):
            normalize_extensions(" ; ")


class AttachmentDirectoryTests:
    def test_a_folder_below_a_root_is_accepted(self, tmp_path: Path) -> None:
        assert check_inside_roots(str(tmp_path / "crm" / "mail"), [str(tmp_path)]) == str(
            tmp_path / "crm" / "mail"
        )

    def test_dot_dot_cannot_climb_out_of_the_root(self, tmp_path: Path) -> None:
        root = tmp_path / "share"
        with pytest.raises(ValidationError, match="not inside an approved attachment root"):
            check_inside_roots(str(root / "crm" / ".." / ".." / "etc"), [str(root)])

    def test_a_sibling_with_the_same_prefix_is_outside(self, tmp_path: Path) -> None:
        with pytest.raises(ValidationError):
            check_inside_roots(str(tmp_path / "share-evil"), [str(tmp_path / "share")])

    def test_a_symlink_pointing_out_of_the_root_is_outside(self, tmp_path: Path) -> None:
        root = tmp_path / "share"
        root.mkdir()
        (root / "escape").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(ValidationError, match="not inside"):
            check_inside_roots(str(root / "escape" / "mail"), [str(root)])

    def test_a_relative_path_is_rejected(self, tmp_path: Path) -> None:
        with pytest.raises(ValidationError, match="full path"):
            check_inside_roots("crm/mail", [str(tmp_path)])

    def test_without_approved_roots_nothing_is_accepted(self, tmp_path: Path) -> None:
        with pytest.raises(ValidationError, match="ATTACHMENT_ROOTS"):
            check_inside_roots(str(tmp_path), [])


class ProfileValidationTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.profile = self.make_profile(self.acme, self.dave, "dave@acme.example")

    def _errors(self, instance: object) -> dict[str, list[str]]:
        try:
            instance.full_clean()  # type: ignore[attr-defined]
        except ValidationError as exc:
            return exc.message_dict
        return {}

    def test_a_new_profile_has_every_agenda_with_the_manual_defaults(self) -> None:
        calendar = self.profile.calendarsettings
        contacts = self.profile.contactsettings
        mail = self.profile.mailsettings
        assert (self.profile.interval_minutes, self.profile.active) == (10, True)
        assert (self.profile.sync_calendar, self.profile.sync_contacts,
                self.profile.import_mail) == (True, True, False)
        assert (calendar.direction, calendar.days_past, calendar.days_future) == ("two_way", 14, 31)
        assert (calendar.folder_id, calendar.scope, calendar.skip_private) == ("calendar", "all",
                                                                               False)
        assert (calendar.link_attendees, calendar.link_attendee_companies) == (True, False)
        assert calendar.deletion_policy == "propagate"
        assert (contacts.direction, contacts.folder_id, contacts.only_categories) == (
            "two_way", "contacts", [])
        assert contacts.deletion_policy == "unlink"
        assert (mail.received_within_days, mail.save_attachments) == (31, False)
        assert mail.attachment_category == "Příloha"
        assert mail.attachment_types == "doc;docx;xls;xlsx;pdf;jpg;jpeg;txt;png"
        assert mail.folders() == [("inbox", "Inbox"), ("sentitems", "Sent Items")]
        assert self.profile.conflict_policy == "newest"
        assert (self.profile.mass_delete_min_items, self.profile.mass_delete_min_percent) == (
            20, 10)

    def test_days_must_lie_between_0_and_3650(self) -> None:
        calendar = self.profile.calendarsettings
        for accepted in (0, 3650):
            calendar.days_past = calendar.days_future = accepted
            assert self._errors(calendar) == {}
        calendar.days_past = 3651
        assert "days_past" in self._errors(calendar)
        mail = self.profile.mailsettings
        mail.received_within_days = 3651
        assert "received_within_days" in self._errors(mail)

    def test_the_interval_is_at_least_one_minute(self) -> None:
        self.profile.interval_minutes = 0
        assert "interval_minutes" in self._errors(self.profile)
        self.profile.interval_minutes = 1
        assert self._errors(self.profile) == {}

    def test_an_invalid_mailbox_address_is_rejected(self) -> None:
        self.profile.mailbox = "dave at acme"
        assert "mailbox" in self._errors(self.profile)

    def test_the_extension_list_is_normalized_on_save(self) -> None:
        mail = self.profile.mailsettings
        mail.attachment_types = "PDF;Docx;pdf"
        assert self._errors(mail) == {}
        assert mail.attachment_types == "pdf;docx"
        mail.attachment_types = "pdf;*.exe"
        assert "“*.exe”" in self._errors(mail)["attachment_types"][0]

    def test_the_attachment_directory_must_be_inside_an_approved_root(self) -> None:
        mail = self.profile.mailsettings
        mail.save_attachments = True
        mail.attachment_directory = ""
        assert "attachment_directory" in self._errors(mail)
        with override_settings(ATTACHMENT_ROOTS=["/srv/share"]):
            self.acme.attachment_roots = "/srv/share/acme"
            mail.attachment_directory = "/srv/share/acme/crm/../../../etc"
            assert "not inside" in self._errors(mail)["attachment_directory"][0]
            mail.attachment_directory = "/srv/share/acme/attachments"
            assert self._errors(mail) == {}

    def test_pairings_are_unique_on_both_sides_ignoring_case_in_exchange(self) -> None:
        hotline = EventCategory.objects.create(organization=self.acme, name="HOTLINE")
        registration = EventCategory.objects.create(organization=self.acme, name="REGISTRACE")
        CategoryPairing.objects.create(
            profile=self.profile, crm_category=hotline, exchange_category="Hotline"
        )
        same_crm = CategoryPairing(
            profile=self.profile, crm_category=hotline, exchange_category="Other"
        )
        assert "already paired" in str(self._errors(same_crm))
        same_exchange = CategoryPairing(
            profile=self.profile, crm_category=registration, exchange_category="HOTLINE"
        )
        assert "already paired" in str(self._errors(same_exchange))

    def test_choices_from_another_organization_are_rejected(self) -> None:
        globex_connection = self.make_connection(self.globex)
        self.profile.connection = globex_connection
        assert "connection" in self._errors(self.profile)
        foreign = EventCategory.objects.create(organization=self.globex, name="HOTLINE")
        calendar = self.profile.calendarsettings
        calendar.default_category = foreign
        assert "default_category" in self._errors(calendar)


class ConnectionValidationTestCase(BaseTestCase):
    def _errors(self, **fields: object) -> dict[str, list[str]]:
        secret = fields.pop("secret", "")
        connection = MailboxConnection(organization=self.acme, name="Exchange", **fields)
        connection.set_secret(str(secret))
        try:
            connection.full_clean()
        except ValidationError as exc:
            return exc.message_dict
        return {}

    def test_ews_with_ntlm_needs_url_user_and_password(self) -> None:
        errors = self._errors(kind="ews", auth_type="ntlm")
        assert set(errors) == {"ews_url", "username", "secret"}
        assert self._errors(kind="ews", auth_type="ntlm",
                            ews_url="https://mail.example.org/EWS/Exchange.asmx",
                            username="EXAMPLE\\svc", secret="pw") == {}

    def test_an_ntlm_user_name_has_a_domain(self) -> None:
        errors = self._errors(kind="ews", auth_type="ntlm", username="svc", secret="pw",
                              ews_url="https://mail.example.org/EWS/Exchange.asmx")
        assert "DOMAIN\\user" in errors["username"][0]

    def test_basic_accepts_a_plain_user_name(self) -> None:
        assert self._errors(kind="ews", auth_type="basic", username="svc", secret="pw",
                            ews_url="https://mail.example.org/EWS/Exchange.asmx") == {}

    def test_per_user_credentials_need_none_on_the_connection(self) -> None:
        assert self._errors(kind="ews", auth_type="ntlm", access="per_user",
                            ews_url="https://mail.example.org/EWS/Exchange.asmx") == {}

    def test_oauth_needs_tenant_client_and_secret(self) -> None:
        errors = self._errors(kind="graph", auth_type="oauth2")
        assert {"tenant_id", "client_id", "secret"} <= set(errors)
        errors = self._errors(kind="graph", auth_type="oauth2", tenant_id="not a tenant!",
                              client_id="1234", secret="s")
        assert "GUID" in errors["tenant_id"][0] and "GUID" in errors["client_id"][0]
        assert self._errors(kind="graph", auth_type="oauth2", tenant_id="contoso.onmicrosoft.com",
                            client_id="0d3c1f4e-6b9a-4a57-9c55-2a7f3b1e8d90", secret="s") == {}

    def test_exchange_online_is_reached_only_with_app_only_oauth(self) -> None:
        errors = self._errors(kind="graph", auth_type="basic", username="u", secret="p")
        assert "OAuth 2.0 app-only" in errors["auth_type"][0]

    def test_per_user_profiles_need_their_own_credentials(self) -> None:
        connection = self.make_connection(self.acme, access="per_user")
        profile = self.make_profile(self.acme, self.dave, "dave@acme.example",
                                    connection=connection)
        try:
            profile.full_clean()
        except ValidationError as exc:
            errors = exc.message_dict
        assert {"mailbox_username", "mailbox_secret"} <= set(errors)
        profile.mailbox_username = "ACME\\dave"
        profile.set_mailbox_secret("pw")
        profile.full_clean()
