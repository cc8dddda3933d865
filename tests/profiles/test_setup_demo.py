from __future__ import annotations

import io

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import TestCase

from crm.models import Person
from profiles.models import MailboxConnection, Organization, SyncProfile


class SetupDemoTests(TestCase):
    def test_creates_a_working_demo_configuration_once(self) -> None:
        out = io.StringIO()
        call_command("setup_demo", stdout=out)
        organization = Organization.objects.get(name="Demo s.r.o.")
        connection = MailboxConnection.objects.get(organization=organization)
        connection.full_clean()
        self.assertEqual(connection.get_secret(), "svc-secret")
        self.assertNotIn("svc-secret", connection.secret_token)
        profiles = SyncProfile.objects.filter(organization=organization).order_by("mailbox")
        self.assertEqual([p.mailbox for p in profiles],
                         ["jana.novakova@example.com", "tom.baker@example.com"])
        for profile in profiles:
            profile.full_clean()
            self.assertEqual(profile.category_pairings.count(), 3)
            self.assertEqual(profile.calendarsettings.default_category.name, "HOTLINE")
        jana_password = out.getvalue().split("jana")[1].split()[0]
        self.assertTrue(get_user_model().objects.get(username="jana").check_password(
            jana_password))
        self.assertEqual(Person.objects.filter(organization=organization).count(), 4)
        # Jana's customers: in Jana's mailbox, and only Eva, whom Tom knows too, in Tom's.
        jana, tom = (p.crm_user for p in profiles)
        self.assertEqual({p.owner for p in Person.objects.all()}, {jana})
        self.assertEqual([p.email1 for p in Person.objects.of_user(tom.pk)],
                         ["eva.prochazkova@acme.cz"])
        self.assertEqual({p.contactsettings.scope for p in profiles}, {"owned"})

        again = io.StringIO()
        call_command("setup_demo", stdout=again)
        self.assertIn("exists already", again.getvalue())
        self.assertNotIn(jana_password, again.getvalue())
        self.assertEqual(SyncProfile.objects.count(), 2)

    def test_the_demo_alone_on_a_server_may_save_attachments_where_the_server_may(self) -> None:
        call_command("setup_demo", stdout=io.StringIO())
        demo = Organization.objects.get()
        self.assertEqual(demo.attachment_roots, "\n".join(settings.ATTACHMENT_ROOTS))

    def test_the_demo_beside_other_organizations_gets_no_roots_and_says_so(self) -> None:
        Organization.objects.create(name="Acme", attachment_roots=settings.ATTACHMENT_ROOTS[0])
        out = io.StringIO()
        call_command("setup_demo", stdout=out)
        self.assertEqual(Organization.objects.get(name="Demo s.r.o.").attachment_roots, "")
        self.assertIn("sets the demo organization's attachment roots", out.getvalue())
