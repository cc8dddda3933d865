"""Mail in a charset nobody knows is filed like any other, on both kinds of connection: its
text as Exchange decoded it (a replacement character for what did not decode)."""

from __future__ import annotations

import pytest

from crm.models import Email
from engine.models import Run, RunItem
from ewsim.testing import SimHandle
from tests.ewsim.test_deliver import UNKNOWN_CHARSET
from tests.mailimport.conftest import import_mail, mail_profile

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_message_in_an_unknown_charset_is_filed(ewsim: SimHandle,
                                                 connection_kind: str) -> None:
    profile = mail_profile(ewsim, connection_kind)
    ewsim.control.deliver(ewsim.user, mime=UNKNOWN_CHARSET)
    run = import_mail(profile)
    assert run.status == Run.Status.SUCCESS, run.message
    email = Email.objects.get(message_id="<unknown-charset@example.cz>")
    assert email.sender_address == "jan@example.cz"
    assert email.body_text.startswith("Dobr\ufffd den")
    assert run.items.get().action == RunItem.Action.CREATE_CRM
