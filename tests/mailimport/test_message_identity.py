"""Which CRM e-mail a message is (PRODUCT.md §5 "E-mail identity"): the same message in several
mailboxes is one CRM e-mail, keyed by its Message-ID and a fingerprint of its sender, date and
subject; a different message reusing a Message-ID (they collide, and can be forged) is one of
its own. On both kinds of connection."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from crm.models import Email, Person, email_fingerprint
from engine.models import Run, RunItem
from ewsim.testing import SimHandle
from tests.mailimport.conftest import (
    NOW,
    colleague,
    import_mail,
    mail_profile,
    mime,
)

pytestmark = pytest.mark.django_db(transaction=True)

SENT = (NOW - dt.timedelta(days=2)).replace(microsecond=0)


def test_a_different_message_reusing_a_message_id_is_its_own_crm_email(
        ewsim: SimHandle, connection_kind: str) -> None:
    profile = mail_profile(ewsim, connection_kind)
    petr = Person.objects.create(organization_id=profile.organization_id, first_name="Petr",
                                 email1="petr@stavby.cz")
    mallory = Person.objects.create(organization_id=profile.organization_id,
                                    first_name="Mallory", email1="mallory@evil.example")
    ewsim.control.deliver(ewsim.user, mime=mime(
        "Nabídka", message_id="<offer@stavby.cz>", date=SENT))
    first = import_mail(profile)
    assert first.crm_created == 1, first.message
    genuine = Email.objects.get()
    ewsim.control.deliver(ewsim.user, mime=mime(
        "Změna účtu pro platbu", sender="Mallory <mallory@evil.example>",
        message_id="<offer@stavby.cz>", date=SENT + dt.timedelta(hours=3),
        body="Plaťte na nový účet.\n"))
    second = import_mail(profile)
    assert second.status == Run.Status.SUCCESS, second.message
    assert second.crm_created == 1
    forged = Email.objects.exclude(pk=genuine.pk).get(message_id="<offer@stavby.cz>")
    genuine.refresh_from_db()
    assert (genuine.subject, genuine.sender_address) == ("Nabídka", "petr@stavby.cz")
    assert list(genuine.persons.all()) == [petr]
    assert (forged.subject, forged.sender_address) == ("Změna účtu pro platbu",
                                                       "mallory@evil.example")
    assert "nový účet" in forged.body_text
    assert list(forged.persons.all()) == [mallory]
    line = second.items.get()
    assert line.action == RunItem.Action.CREATE_CRM and line.crm_key == str(forged.pk)
    assert "Message-ID collision" in line.detail and f"e-mail #{genuine.pk}" in line.detail


def test_the_same_message_in_two_mailboxes_is_one_crm_email_linked_to_both(
        ewsim: SimHandle, connection_kind: str) -> None:
    profile = mail_profile(ewsim, connection_kind)
    ewsim.control.add_user("bob@example.com", "bob-pw")
    bob = colleague(profile)
    raw = mime("Meeting notes", to="alice@example.com, bob@example.com",
               message_id="<notes@northwind.co.uk>", date=SENT)
    ewsim.control.deliver(ewsim.user, mime=raw)
    ewsim.control.deliver("bob@example.com", mime=raw)
    assert import_mail(profile).crm_created == 1
    run = import_mail(bob)
    email = Email.objects.get()
    assert {u.login for u in email.users.all()} == {"alice", "bob"}
    line = run.items.get()
    assert (line.action, line.crm_key) == (RunItem.Action.LINK, str(email.pk))
    assert run.linked == 1 and run.crm_created == 0


def test_a_message_id_collision_within_one_run_files_both(
        ewsim: SimHandle, connection_kind: str) -> None:
    profile = mail_profile(ewsim, connection_kind)
    for subject, sender in (("Objednávka 17", "petr@stavby.cz"),
                            ("Objednávka 18", "jana@stavby.cz")):
        ewsim.control.deliver(ewsim.user, mime=mime(
            subject, sender=sender, message_id="<same@mailer.local>", date=SENT))
    run = import_mail(profile)
    assert run.crm_created == 2, list(run.items.values_list("detail", flat=True))
    assert sorted(Email.objects.values_list("subject", flat=True)) == ["Objednávka 17",
                                                                       "Objednávka 18"]
    assert run.items.filter(detail__contains="Message-ID collision").count() == 1


def test_an_email_filed_before_fingerprints_is_still_found_by_its_message(
        ewsim: SimHandle) -> None:
    """Existing installations: the migration gives the e-mails filed before a fingerprint of
    what they hold, so that their messages, read again in another mailbox, are still them."""
    profile = mail_profile(ewsim, "ews")
    before = [("crm", "0002_initial")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("crm", "Email").objects.create(
        organization_id=profile.organization_id, message_id="<notes@northwind.co.uk>",
        subject="Meeting  notes", sender_address="petr@stavby.cz", sent_at=SENT)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())   # back to where the suite was
    assert Email.objects.get(pk=old.pk).fingerprint == email_fingerprint(
        "Petr@Stavby.cz", SENT, "Meeting notes")
    ewsim.control.deliver(ewsim.user, mime=mime(
        "Meeting notes", message_id="<notes@northwind.co.uk>", date=SENT))
    run = import_mail(profile)
    assert (run.linked, run.crm_created) == (1, 0), run.items.values_list("detail", flat=True)
    assert list(Email.objects.values_list("pk", flat=True)) == [old.pk]
