"""Attachments of attached items have ids of their own, which GetAttachment takes directly.

- Item attachments can have attachments of their own, a hierarchy ("Attachments and EWS in
  Exchange", learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/
  attachments-and-ews-in-exchange).
- Each attachment, however deep, is fetched by its AttachmentId with GetAttachment; its
  RootItemId is the store item the hierarchy hangs from ("AttachmentId", "GetAttachment
  operation", "Get attachments by using EWS in Exchange", learn.microsoft.com).
"""

from __future__ import annotations

import email.policy
from email import message_from_bytes
from email.message import EmailMessage
from typing import Any

from exchangelib import FileAttachment, ItemAttachment, Message
from exchangelib.attachments import AttachmentId
from exchangelib.errors import ErrorItemNotFound
from exchangelib.services import GetAttachment

PDF = b"%PDF-1.4 smlouva"


def forwarded_with_a_pdf(to: str) -> bytes:
    """A message with an attached message that has a PDF of its own."""
    inner = EmailMessage()
    inner["Subject"], inner["From"], inner["To"] = "Smlouva", "petr@stavby.cz", "jan@firma.cz"
    inner.set_content("Posílám smlouvu.")
    inner.add_attachment(PDF, maintype="application", subtype="pdf", filename="smlouva.pdf")
    outer = EmailMessage()
    outer["Subject"], outer["From"], outer["To"] = "Fwd: Smlouva", "jan@firma.cz", to
    outer.set_content("Viz příloha.")
    outer.add_attachment(message_from_bytes(inner.as_bytes()))
    return outer.as_bytes()


def _get(account: Any, *ids: str) -> list[Any]:
    return list(GetAttachment(account=account).call(
        items=[AttachmentId(id=i) for i in ids], include_mime_content=False, body_type=None,
        filter_html_content=None, additional_fields=None))


def _inner_file(account: Any, item_id: str) -> FileAttachment:
    (attached,) = account.inbox.get(id=item_id).attachments
    assert isinstance(attached, ItemAttachment)
    (pdf,) = attached.item.attachments
    assert isinstance(pdf, FileAttachment) and pdf.name == "smlouva.pdf"
    return pdf


def test_an_attachment_of_an_attached_mail_is_fetched_by_its_own_id(ewsim, account):
    item_id = ewsim.control.deliver(ewsim.user, mime=forwarded_with_a_pdf(ewsim.user))["id"]
    pdf = _inner_file(account, item_id)
    (fetched,) = _get(account, pdf.attachment_id.id)
    assert isinstance(fetched, FileAttachment) and fetched.name == "smlouva.pdf"
    assert fetched._content == PDF
    with pdf.fp as stream:   # streamed (GetAttachment too), as the product reads files
        assert stream.read() == PDF


def test_an_attachment_of_an_item_attached_through_ews_is_fetched_by_its_own_id(
        ewsim, account):
    outer = Message(account=account, folder=account.drafts, subject="Fwd")
    outer.save()
    inner = Message(subject="Smlouva", body="Posílám smlouvu.",
                    attachments=[FileAttachment(name="smlouva.pdf", content=PDF)])
    outer.attach(ItemAttachment(name="Smlouva", item=inner))
    (attached,) = account.drafts.get(id=outer.id).attachments
    (pdf,) = attached.item.attachments
    (fetched,) = _get(account, pdf.attachment_id.id)
    assert fetched.name == "smlouva.pdf" and fetched._content == PDF
    # Exchange makes MIME of any message it holds ("MimeContent"), its attachments inside.
    mime = message_from_bytes(attached.item.mime_content, policy=email.policy.default)
    assert mime["Subject"] == "Smlouva"
    (part,) = mime.iter_attachments()
    assert part.get_filename() == "smlouva.pdf" and part.get_payload(decode=True) == PDF


def test_deleting_the_attached_mail_or_the_message_forgets_the_inner_ids(ewsim, account):
    first = ewsim.control.deliver(ewsim.user, mime=forwarded_with_a_pdf(ewsim.user))["id"]
    second = ewsim.control.deliver(ewsim.user, mime=forwarded_with_a_pdf(ewsim.user))["id"]
    in_first, in_second = _inner_file(account, first), _inner_file(account, second)
    message = account.inbox.get(id=first)
    message.detach(message.attachments[0])
    account.inbox.get(id=second).delete()
    results = _get(account, in_first.attachment_id.id, in_second.attachment_id.id)
    assert all(isinstance(r, ErrorItemNotFound) for r in results)


def test_an_inner_attachment_is_deleted_from_the_attached_mail(ewsim, account):
    item_id = ewsim.control.deliver(ewsim.user, mime=forwarded_with_a_pdf(ewsim.user))["id"]
    pdf = _inner_file(account, item_id)
    before, pdf_id = account.inbox.get(id=item_id).changekey, pdf.attachment_id.id
    pdf.parent_item.detach(pdf)
    (attached,) = account.inbox.get(id=item_id).attachments
    assert attached.item.attachments == []
    assert b"smlouva.pdf" not in attached.item.mime_content   # its MIME says so too
    assert account.inbox.get(id=item_id).changekey != before   # the root item changed
    assert isinstance(_get(account, pdf_id)[0], ErrorItemNotFound)


def test_a_copy_sent_to_another_mailbox_has_inner_attachment_ids_of_its_own(ewsim, account):
    from .conftest import make_account

    ewsim.server.store.add_user("bob@example.com", "bob-pw")
    inner = Message(subject="Smlouva", body="Posílám smlouvu.",
                    attachments=[FileAttachment(name="smlouva.pdf", content=PDF)])
    Message(account=account, folder=account.sent, subject="Fwd", to_recipients=[
        "bob@example.com"], attachments=[ItemAttachment(name="Smlouva", item=inner)]
            ).send_and_save()
    bob = make_account(ewsim, "bob@example.com", "bob-pw")
    pdfs = []
    for mailbox in (account, bob):
        folder = mailbox.sent if mailbox is account else mailbox.inbox
        (message,) = folder.all().only("attachments")
        (attached,) = message.attachments
        (pdf,) = attached.item.attachments
        (fetched,) = _get(mailbox, pdf.attachment_id.id)   # each mailbox reads its own
        assert fetched._content == PDF
        pdfs.append(pdf.attachment_id.id)
    assert pdfs[0] != pdfs[1]
