"""An e-mail attached to an e-mail, with attachments of its own, imported over EWS.

As the product saves attached e-mails (mailimport/importer.py `_named`, storage.save_eml): the
attached e-mail is one `.eml` document, a copy of the whole message, its own attachments
inside it; they are not saved again as documents of the outer e-mail.
"""

from __future__ import annotations

import base64
import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from crm.models import Document, Email
from engine.models import Run
from ewsim.testing import SimHandle
from tests.engine.sync_helpers import make_profile
from tests.ewsim.test_nested_attachments import PDF, forwarded_with_a_pdf
from tests.mailimport.conftest import give_roots, import_mail, settings_for

pytestmark = pytest.mark.django_db(transaction=True)

# As Outlook makes "Forward as attachment" through EWS: the attached e-mail exists only as
# an item in the store, never as MIME (ewsim, like Exchange, makes its MIME when asked).
FORWARDED_IN_OUTLOOK = (
    "<t:Message><t:Subject>Fwd: Smlouva</t:Subject><t:Body BodyType=\"Text\">Viz příloha."
    "</t:Body><t:Attachments><t:ItemAttachment><t:Name>Smlouva</t:Name><t:Message>"
    "<t:Subject>Smlouva</t:Subject><t:Body BodyType=\"HTML\">&lt;p&gt;Posílám smlouvu."
    "&lt;/p&gt;</t:Body><t:Attachments><t:FileAttachment><t:Name>smlouva.pdf</t:Name>"
    "<t:ContentType>application/pdf</t:ContentType>"
    f"<t:Content>{base64.b64encode(PDF).decode()}</t:Content></t:FileAttachment>"
    "</t:Attachments><t:From><t:Mailbox><t:EmailAddress>petr@stavby.cz</t:EmailAddress>"
    "</t:Mailbox></t:From></t:Message></t:ItemAttachment></t:Attachments>"
    "<t:From><t:Mailbox><t:EmailAddress>jan@firma.cz</t:EmailAddress></t:Mailbox></t:From>"
    "</t:Message>")


def _import(sim: SimHandle, share: Path) -> EmailMessage:
    """Import Alice's Inbox saving PDFs and e-mails; the one document saved, parsed."""
    profile = make_profile(sim)
    give_roots(profile, share)
    settings_for(profile, save_attachments=True, attachment_directory=str(share),
                 attachment_types="pdf;eml")
    run = import_mail(profile)
    assert run.status == Run.Status.SUCCESS and run.errors == 0, \
        list(run.items.values_list("detail", flat=True))
    (filed,) = Email.objects.all()
    (document,) = Document.objects.all()   # the .eml only: the PDF is inside it
    assert document.original_name == "Smlouva.eml" and document.path.endswith(".eml")
    assert list(filed.documents.all()) == [document]
    saved = (Path(document.root) / document.path).read_bytes()
    return email.message_from_bytes(saved, policy=email.policy.default)  # type: ignore[return-value]


def _has_the_pdf(attached: EmailMessage) -> None:
    assert str(attached["Subject"]) == "Smlouva"
    (pdf,) = attached.iter_attachments()
    assert pdf.get_filename() == "smlouva.pdf" and pdf.get_content() == PDF


def test_an_attached_mail_with_a_pdf_is_saved_as_one_eml_holding_the_pdf(
        ewsim: SimHandle, share: Path) -> None:
    ewsim.control.deliver(ewsim.user, mime=forwarded_with_a_pdf(ewsim.user))
    _has_the_pdf(_import(ewsim, share))


def test_a_mail_forwarded_as_attachment_in_outlook_is_saved_as_eml_holding_the_pdf(
        ewsim: SimHandle, share: Path) -> None:
    ewsim.control.create_item(ewsim.user, folder="inbox", xml=FORWARDED_IN_OUTLOOK)
    attached = _import(ewsim, share)
    _has_the_pdf(attached)
    assert "Posílám smlouvu." in str(attached.get_body(("html",)).get_content())
