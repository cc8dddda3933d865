"""The audit log's "what" reads as one line a field, not as JSON."""

from __future__ import annotations

from profiles.models import AuditEntry
from tests.base import BaseTestCase


class AuditWhatTestCase(BaseTestCase):
    def test_a_change_reads_as_field_before_and_after(self) -> None:
        profile = self.make_profile(self.acme, self.dave, "dave@acme.example")
        profile.interval_minutes = 30
        profile.save()
        entry = AuditEntry.objects.filter(action="change", object_type="sync profile").last()
        self.client.force_login(self.bob)
        page = self.client.get(f"/admin/profiles/auditentry/{entry.pk}/change/")
        self.assertContains(page, "<div>interval_minutes: 10 → 30</div>", html=True)
        self.assertNotContains(page, "&quot;from&quot;")
