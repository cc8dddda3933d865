"""E-mail import end to end on Exchange Online: raw MIME delivered into ewsim, read through
its Graph front door (messages delta, attachments streamed from /$value), filed in the CRM."""

from __future__ import annotations

import email
import email.policy
import random
from email.message import EmailMessage
from pathlib import Path

import pytest
from django.test import override_settings

from crm.models import Company, Document, Email, Person, PersonCompany
from engine.models import Run
from ewsim.testing import SimHandle
from tests.engine.graph_sync_helpers import make_graph_profile, run_graph
from tests.mailimport.conftest import give_roots, mime, settings_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_mail_is_filed_once_through_graph_and_old_mail_left_out(ewsim: SimHandle) -> None:
    profile = make_graph_profile(ewsim)
    petr = Person.objects.create(organization_id=profile.organization_id, first_name="Petr",
                                 email1="Petr@Stavby.cz")
    company = Company.objects.create(organization_id=profile.organization_id, name="Stavby")
    PersonCompany.objects.create(person=petr, company=company)
    ewsim.control.deliver(ewsim.user, mime=mime("Nabídka", message_id="<g1@stavby.cz>"))
    ewsim.control.deliver(ewsim.user, mime=mime("Stará", days_ago=60))
    ewsim.control.deliver(ewsim.user, mime=mime("Nobody", sender="x@unknown.example"))
    run = run_graph(profile, "mail")
    assert run.status == Run.Status.SUCCESS, run.message
    filed = Email.objects.get(message_id="<g1@stavby.cz>")
    assert list(filed.persons.all()) == [petr] and list(filed.companies.all()) == [company]
    assert sorted(Email.objects.values_list("subject", flat=True)) == ["Nabídka", "Nobody"]
    again = run_graph(profile, "mail")
    assert again.status == Run.Status.SUCCESS and again.items.count() == 0


def test_attachments_stream_into_files_and_an_attached_email_is_saved_as_eml(
        ewsim: SimHandle, tmp_path: Path) -> None:
    share = tmp_path / "share"
    (share / "crm").mkdir(parents=True)
    pdf = b"%PDF-1.4 " + random.Random(5).randbytes(600_000)
    inner = EmailMessage()
    inner["From"] = "dan@example.com"
    inner["Subject"] = "Původní poptávka"
    inner["Message-ID"] = "<inner-g@example.com>"
    inner.set_content("Poptáváme 20 kusů.\n")
    outer = email.message_from_bytes(mime("Podklady", attachments=(("nabidka.pdf", pdf),)),
                                     policy=email.policy.default)
    outer.add_attachment(inner)
    with override_settings(ATTACHMENT_ROOTS=[str(share)]):
        profile = make_graph_profile(ewsim)
        give_roots(profile, share)
        settings_for(profile, save_attachments=True, attachment_directory=str(share / "crm"),
                     attachment_types="pdf;eml")
        ewsim.control.deliver(ewsim.user, mime=outer.as_bytes())
        run = run_graph(profile, "mail")
    assert run.status == Run.Status.SUCCESS, (run.message, list(run.items.values_list(
        "detail", flat=True)))
    saved = {Path(d.path).suffix: (Path(d.root) / d.path).read_bytes()
             for d in Document.objects.all()}
    assert saved[".pdf"] == pdf
    attached = email.message_from_bytes(saved[".eml"], policy=email.policy.default)
    assert attached["Message-ID"] == "<inner-g@example.com>"
