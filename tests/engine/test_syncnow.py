"""`manage.py syncnow`: one run in the foreground, a summary, a non-zero exit on failure."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from crm.models import Person
from engine.models import Run
from ewsim.testing import SimHandle

from .sync_helpers import make_profile

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_dry_run_then_a_real_run_print_what_they_do(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    Person.objects.create(organization_id=profile.organization_id, first_name="Eva",
                          email1="eva@acme.cz")
    out = io.StringIO()
    call_command("syncnow", profile.mailbox, "--agenda", "contacts", "--dry-run", stdout=out)
    assert "planned, nothing changed" in out.getvalue()
    assert "Exchange: 1 created" in out.getvalue()
    out = io.StringIO()
    call_command("syncnow", str(profile.pk), "--agenda", "contacts", stdout=out)
    assert "Exchange: 1 created" in out.getvalue()
    assert Run.objects.filter(kind=Run.Kind.SYNC, status=Run.Status.SUCCESS).count() == 1
    out = io.StringIO()
    call_command("syncnow", profile.mailbox, "--agenda", "calendar", stdout=out)
    assert "Success in" in out.getvalue()


def test_a_failed_run_exits_non_zero_with_the_reason(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    profile.connection.set_secret("wrong")
    profile.connection.save()
    with pytest.raises(CommandError, match="Authentication failed"):
        call_command("syncnow", profile.mailbox, stdout=io.StringIO())


def test_an_unknown_profile_is_named() -> None:
    with pytest.raises(CommandError, match=r"No sync profile 'nobody@example\.com'"):
        call_command("syncnow", "nobody@example.com", stdout=io.StringIO())
