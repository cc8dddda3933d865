from __future__ import annotations

import io
import shutil
from pathlib import Path

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
        self.assertEqual(SyncProfile.objects.filter(organization=organization).count(), 2)

    def test_the_demo_alone_on_a_server_may_save_attachments_where_the_server_may(self) -> None:
        call_command("setup_demo", stdout=io.StringIO())
        demo = Organization.objects.get(name="Demo s.r.o.")
        self.assertEqual(demo.attachment_roots, "\n".join(settings.ATTACHMENT_ROOTS))

    def test_the_demo_beside_other_organizations_gets_no_roots_and_says_so(self) -> None:
        Organization.objects.create(name="Acme", attachment_roots=settings.ATTACHMENT_ROOTS[0])
        out = io.StringIO()
        call_command("setup_demo", stdout=out)
        self.assertEqual(Organization.objects.get(name="Demo s.r.o.").attachment_roots, "")
        self.assertIn("sets the demo organization's attachment roots", out.getvalue())


class SetupDemoShareTests(TestCase):
    """`make run` passes `--share var/demo-share` (and adds it to ATTACHMENT_ROOTS)."""

    def setUp(self) -> None:
        self.share = Path(settings.ATTACHMENT_ROOTS[0]) / "demo-share"
        shutil.rmtree(self.share, ignore_errors=True)
        self.addCleanup(shutil.rmtree, self.share, True)

    def test_the_share_is_approved_and_each_demo_profile_saves_attachments_below_it(
            self) -> None:
        out = io.StringIO()
        call_command("setup_demo", share=str(self.share), stdout=out)
        demo = Organization.objects.get(name="Demo s.r.o.")
        self.assertEqual(demo.approved_attachment_roots(), [str(self.share)])
        self.assertTrue(self.share.is_dir())
        for profile in SyncProfile.objects.filter(organization=demo):
            mail = profile.mailsettings
            self.assertTrue(mail.save_attachments)
            self.assertEqual(mail.attachment_directory,
                             str(self.share / profile.user.username))
            self.assertTrue((self.share / profile.user.username).is_dir())
            mail.full_clean()
        self.assertIn(f"saved below {self.share}", out.getvalue())

    def test_a_demo_set_up_before_it_had_a_share_gets_it_on_the_next_start(self) -> None:
        with self.settings(ATTACHMENT_ROOTS=[]):
            call_command("setup_demo", stdout=io.StringIO())
        self.assertEqual(Organization.objects.get(name="Demo s.r.o.").attachment_roots, "")
        again = io.StringIO()
        call_command("setup_demo", share=str(self.share), stdout=again)
        self.assertIn("exists already", again.getvalue())
        self.assertEqual(Organization.objects.get(name="Demo s.r.o.").attachment_roots,
                         str(self.share))
        self.assertEqual(
            sorted(SyncProfile.objects.filter(organization__name="Demo s.r.o.").values_list(
                "mailsettings__attachment_directory", flat=True)),
            [str(self.share / "jana"), str(self.share / "tom")])

    def test_a_share_another_organization_holds_is_not_taken_and_it_says_so(self) -> None:
        Organization.objects.create(name="Acme", attachment_roots=str(self.share / "acme"))
        out = io.StringIO()
        call_command("setup_demo", share=str(self.share), stdout=out)
        self.assertEqual(Organization.objects.get(name="Demo s.r.o.").attachment_roots, "")
        self.assertIn("The demo share was not approved", out.getvalue())
        self.assertIn("overlaps", out.getvalue())
        self.assertFalse(SyncProfile.objects.filter(mailsettings__save_attachments=True).exists())
