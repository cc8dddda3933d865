"""The admin names related objects in list filters and raw-id inputs: an organization's
administrator is offered only his organization's, a superuser everyone's.

The URL walk (test_url_walk.py) asks every admin page; these tests reach the filter kinds no
registered admin uses yet and check that superusers keep seeing everything.
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib import admin
from django.contrib.auth.models import User
from django.test import RequestFactory

from crm.models import Email, Event, EventCategory
from engine.models import Run
from profiles.admin_scoping import OrganizationScopedAdmin
from tests.crm_data import make_crm_records
from tests.portal.base import PortalTestCase


class RunsByMailbox(OrganizationScopedAdmin):
    # Values reached through a relation, and the related object itself.
    list_filter = ["profile__mailbox", ("profile", admin.RelatedFieldListFilter)]


class RelatedFieldsTestCase(PortalTestCase):
    def setUp(self) -> None:
        super().setUp()
        for organization, profile in ((self.acme, self.daves), (self.globex, self.charlies)):
            make_crm_records(organization, profile=profile)
            self.make_run(profile)
        EventCategory.objects.filter(organization=self.acme).update(name="Acme hotline")

    def offered(self, model_admin: admin.ModelAdmin, user: User) -> set[str]:
        """Every choice the changelist's filters offer `user`, as shown."""
        request: Any = RequestFactory().get("/")
        request.user = user
        changelist = model_admin.get_changelist_instance(request)
        return {str(choice["display"]) for spec in changelist.filter_specs
                for choice in spec.choices(changelist)}

    def test_a_filter_by_values_through_a_relation_offers_only_the_own_organizations(
            self) -> None:
        offered = self.offered(RunsByMailbox(Run, admin.site), self.charlie)
        assert "charlie@globex.example" in offered
        assert not {"dave@acme.example", "eve@acme.example"} & offered

    def test_a_filter_by_a_related_object_offers_only_the_own_organizations(self) -> None:
        offered = self.offered(admin.site.get_model_admin(Event), self.charlie)
        assert "HOTLINE" in offered
        assert "Acme hotline" not in offered

    def test_a_superuser_is_offered_every_organizations_objects_in_filters(self) -> None:
        assert {"Acme hotline", "HOTLINE"} <= self.offered(
            admin.site.get_model_admin(Event), self.alice)
        assert {"dave@acme.example", "charlie@globex.example"} <= self.offered(
            RunsByMailbox(Run, admin.site), self.alice)

    def test_a_superuser_sees_any_organizations_object_named_in_a_raw_id_field(self) -> None:
        self.client.force_login(self.alice)
        for organization in (self.acme, self.globex):
            email = Email.objects.get(organization=organization)
            answer = self.client.get(f"/admin/crm/document/add/?email={email.pk}")
            assert f'/admin/crm/email/{email.pk}/change/">{email}</a>' in answer.content.decode()

    def test_a_raw_id_field_given_a_malformed_or_unknown_id_names_nothing(self) -> None:
        self.client.force_login(self.charlie)
        for value in ("abc", "-1", "99999"):
            answer = self.client.get(f"/admin/crm/document/add/?email={value}")
            assert answer.status_code == 200
            assert not re.search(r"/admin/crm/email/[^/]+/change/", answer.content.decode())
