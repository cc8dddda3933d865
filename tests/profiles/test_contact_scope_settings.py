"""The contact scope in a profile's settings: the CRM user's own persons by default; the whole
organization or a classification branch when chosen, in the admin's contacts inline."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.urls import reverse

from crm.models import ClassificationNode, CrmUser, Person
from engine.models import Run, RunItem
from profiles.models import ContactSettings, SyncProfile
from tests.base import BaseTestCase
from tests.profiles.admin_data import profile_form_data

ADD_URL = "/admin/profiles/syncprofile/add/"


class ContactScopeSettingsTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.profile = self.make_profile(self.acme, self.dave, "dave@acme.example")
        self.branch = ClassificationNode.objects.create(organization=self.acme, name="Zákazníci")

    def _errors(self, **values: object) -> dict[str, list[str]]:
        settings = self.profile.contactsettings
        for name, value in values.items():
            setattr(settings, name, value)
        try:
            settings.full_clean()
        except ValidationError as exc:
            return exc.message_dict
        return {}

    def test_a_new_profile_holds_its_crm_users_persons(self) -> None:
        assert self.profile.contactsettings.scope == ContactSettings.Scope.OWNED
        assert self.profile.mass_create_min_items == 50

    def test_a_branch_is_chosen_together_with_its_scope(self) -> None:
        assert self._errors(scope=ContactSettings.Scope.BRANCH, classification_node=self.branch) \
            == {}
        assert "classification_node" in self._errors(scope=ContactSettings.Scope.BRANCH,
                                                     classification_node=None)
        for scope in (ContactSettings.Scope.OWNED, ContactSettings.Scope.ORGANIZATION):
            with self.subTest(scope=scope):
                assert "classification_node" in self._errors(scope=scope,
                                                             classification_node=self.branch)

    def test_the_scope_is_chosen_in_the_contacts_inline(self) -> None:
        self.client.force_login(self.alice)
        page = self.client.get(ADD_URL)
        self.assertContains(page, 'name="contactsettings-0-scope"')
        self.assertContains(page, "The whole organization")
        crm_user = CrmUser.objects.create(organization=self.acme, name="Dave", login="dave")
        response = self.client.post(ADD_URL, profile_form_data(
            organization_id=self.acme.id, user_id=self.dave.id, crm_user_id=crm_user.id,
            connection_id=self.profile.connection_id, mailbox="dave2@acme.example",
            contacts={"scope": "branch", "classification_node": self.branch.id}))
        assert response.status_code == 302
        settings = SyncProfile.objects.get(mailbox="dave2@acme.example").contactsettings
        assert (settings.scope, settings.classification_node) == ("branch", self.branch)

    def test_a_person_belongs_to_a_crm_user_of_its_own_organization(self) -> None:
        stranger = CrmUser.objects.create(organization=self.globex, name="Eve", login="eve")
        person = Person(organization=self.acme, last_name="Nová", owner=stranger)
        with self.assertRaises(ValidationError) as raised:
            person.full_clean()
        assert "owner" in raised.exception.message_dict


class HeldRunPageTestCase(BaseTestCase):
    def test_a_run_holding_creations_says_so_and_lists_them(self) -> None:
        profile = self.make_profile(self.acme, self.dave, "dave@acme.example")
        run = Run.objects.create(profile=profile, agenda="contacts", status=Run.Status.WAITING)
        RunItem.objects.create(run=run, action=RunItem.Action.PENDING_CREATE, title="Eva Nová",
                               crm_key="7", detail="more creations than the mass-creation "
                                                   "guard allows")
        self.client.force_login(self.dave)
        page = self.client.get(reverse("portal:run", args=[run.pk]))
        self.assertContains(page, "mass-creation guard")
        self.assertNotContains(page, "mass-deletion guard")
        self.assertContains(page, "Creations waiting for approval")
