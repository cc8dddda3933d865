"""What the CRM gets of an e-mail's body, imported from Exchange over EWS.

The CRM e-mail keeps the text (the message's `TextBody`, which Exchange converts from an HTML
body) and the HTML body when the message has one. Exchange stores one body: of a message with
text and HTML alternatives, the HTML one (tests/ewsim/test_bodies.py).
"""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from crm.models import Email
from engine.models import Run
from ewsim.testing import SimHandle
from tests.engine.sync_helpers import make_profile
from tests.mailimport.conftest import import_mail

pytestmark = pytest.mark.django_db(transaction=True)

HTML = ("<html><head><style>p {margin:0}</style></head><body><p>Dobrý den,</p>"
        "<p>cena je 5&nbsp;000 Kč &amp; DPH.</p><div>S pozdravem<br>Petr</div></body></html>")


def message(subject: str, text: str | None, html: str | None) -> bytes:
    mail = EmailMessage()
    mail["Subject"], mail["From"], mail["To"] = subject, "petr@stavby.cz", "alice@example.com"
    if text is not None:
        mail.set_content(text)
    if html is not None:
        if text is None:
            mail.set_content(html, subtype="html")
        else:
            mail.add_alternative(html, subtype="html")
    return mail.as_bytes()


def imported(sim: SimHandle, *messages: bytes) -> dict[str, Email]:
    profile = make_profile(sim)
    for raw in messages:
        sim.control.deliver(sim.user, mime=raw)
    run = import_mail(profile)
    assert run.status == Run.Status.SUCCESS, run.message
    return {email.subject: email for email in Email.objects.all()}


def test_the_crm_gets_the_text_exchange_makes_of_an_html_body_and_the_html(
        ewsim: SimHandle) -> None:
    email = imported(ewsim, message("HTML", None, HTML))["HTML"]
    assert email.body_text == "Dobrý den,\ncena je 5 000 Kč & DPH.\nS pozdravem\nPetr"
    assert email.body_html.strip() == HTML


def test_the_crm_gets_a_text_body_as_it_is_and_no_html(ewsim: SimHandle) -> None:
    # A text body that begins like markup is still text: nothing of it is taken for a tag.
    text = "<https://stavby.cz/nabidka> platí do pátku.\nCena: 5 < 7 & více.\n"
    email = imported(ewsim, message("Text", text, None))["Text"]
    assert email.body_text.strip() == text.strip()
    assert email.body_html == ""


def test_of_text_and_html_alternatives_the_crm_gets_the_html_and_its_text(
        ewsim: SimHandle) -> None:
    email = imported(ewsim, message("Both", "the sender's own text\n", HTML))["Both"]
    assert email.body_text == "Dobrý den,\ncena je 5 000 Kč & DPH.\nS pozdravem\nPetr"
    assert email.body_html.strip() == HTML
