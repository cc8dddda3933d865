"""What is particular to Exchange over EWS: connecting, retrying, throttling, request economy.

The interface's promises (reading, writing, stamps, attachments) are in the contract suite under
tests/engine/mailbox/; this file covers how the EWS backend reaches the server.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from exchangelib.protocol import CachingProtocol

from engine.mailbox.base import (
    Auth,
    AuthenticationFailed,
    ImpersonationDenied,
    MailboxNotFound,
    Throttled,
    TimedOut,
)
from engine.mailbox.ews import EwsMailbox
from engine.records import ContactRecord, Kind
from ewsim.testing import SimHandle

from .conftest import access_to


def _contacts(n: int) -> list[ContactRecord]:
    return [ContactRecord(first_name=f"F{i}", last_name=f"L{i}", email1=f"p{i}@example.com",
                          stamp=f"crm:{i}") for i in range(n)]


def test_the_first_request_is_the_first_real_operation(ewsim: SimHandle) -> None:
    with EwsMailbox(access_to(ewsim)) as mailbox:
        mailbox.check()
    counters = ewsim.control.counters()
    assert "ConvertId" not in counters          # no version guessing
    assert counters == {"GetFolder": 1}


def test_a_wrong_password_fails_within_seconds_and_is_not_retried(ewsim: SimHandle) -> None:
    started = time.monotonic()
    with pytest.raises(AuthenticationFailed, match="Authentication failed"), \
            EwsMailbox(access_to(ewsim, secret="wrong", throttle_budget_seconds=300)) as mailbox:
        mailbox.check()
    assert time.monotonic() - started < 5


def test_ntlm_signs_in(ewsim: SimHandle) -> None:
    with EwsMailbox(access_to(ewsim, auth=Auth.NTLM, username="EXAMPLE\\alice")) as mailbox:
        assert mailbox.check().version.startswith("Exchange2016")


def test_a_service_account_impersonates_the_mailbox(ewsim: SimHandle) -> None:
    ewsim.control.add_user("svc@example.com", "svc-pw", can_impersonate=["alice@example.com"])
    service = access_to(ewsim, username="svc@example.com", secret="svc-pw", impersonate=True)
    with EwsMailbox(service) as mailbox:
        created = mailbox.create(mailbox.get_folder("contacts", Kind.CONTACTS), _contacts(1))
    assert created[0].ok
    # The contact is in Alice's mailbox, not the service account's.
    folders = ewsim.control.call("GET", "folders", {"mailbox": "alice@example.com"})
    assert {f["name"]: f["total"] for f in folders}["Contacts"] == 1


def test_impersonation_without_the_right_is_denied_in_plain_words(ewsim: SimHandle) -> None:
    ewsim.control.add_user("svc@example.com", "svc-pw")
    service = access_to(ewsim, username="svc@example.com", secret="svc-pw", impersonate=True)
    with pytest.raises(ImpersonationDenied, match="ApplicationImpersonation"), \
            EwsMailbox(service) as mailbox:
        mailbox.check()


def test_a_mailbox_that_does_not_exist_is_named(ewsim: SimHandle) -> None:
    ewsim.control.add_user("svc@example.com", "svc-pw", can_impersonate=["*"])
    service = access_to(ewsim, username="svc@example.com", secret="svc-pw", impersonate=True,
                        mailbox="nobody@example.com")
    with pytest.raises(MailboxNotFound, match=r"nobody@example\.com"), \
            EwsMailbox(service) as mailbox:
        mailbox.check()


def test_oauth2_client_credentials_use_the_overridden_token_endpoint(ewsim: SimHandle) -> None:
    ewsim.control.add_app("app-id", "app-secret", tenant="tenant-1")
    oauth = access_to(ewsim, auth=Auth.OAUTH2, username="", client_id="app-id",
                      secret="app-secret", tenant_id="tenant-1", impersonate=True,
                      token_url=f"{ewsim.base_url}/tenant-1/oauth2/v2.0/token")
    with EwsMailbox(oauth) as mailbox:
        assert mailbox.check().mailbox == "alice@example.com"
    bad = access_to(ewsim, auth=Auth.OAUTH2, username="", client_id="app-id", secret="nope",
                    tenant_id="tenant-1", impersonate=True,
                    token_url=f"{ewsim.base_url}/tenant-1/oauth2/v2.0/token")
    with pytest.raises(AuthenticationFailed), EwsMailbox(bad) as mailbox:
        mailbox.check()


@pytest.mark.parametrize(("kind", "params"), [
    ("server_busy", {"back_off_ms": 300}),
    ("http_503", {"retry_after": 1}),
    ("http_429", {"retry_after": 1}),
    ("http_500", {}),
])
def test_throttling_is_waited_out_and_the_call_succeeds(ewsim: SimHandle, kind: str,
                                                        params: dict[str, int]) -> None:
    ewsim.control.fault(kind, "GetFolder", **params)
    with EwsMailbox(access_to(ewsim)) as mailbox:
        assert mailbox.check()
    assert ewsim.control.counters()["GetFolder"] == 2


def test_throttling_longer_than_the_run_budget_stops_the_run_at_once(ewsim: SimHandle) -> None:
    ewsim.control.fault("server_busy", "GetFolder", back_off_ms=60_000)
    started = time.monotonic()
    with pytest.raises(Throttled, match="slow down"), \
            EwsMailbox(access_to(ewsim, throttle_budget_seconds=5)) as mailbox:
        mailbox.check()
    assert time.monotonic() - started < 3   # gave up without sleeping a minute


def test_a_run_budget_counts_every_wait_of_the_run(ewsim: SimHandle) -> None:
    ewsim.control.fault("server_busy", "GetFolder", count=-1, back_off_ms=400)
    started = time.monotonic()
    with pytest.raises(Throttled), \
            EwsMailbox(access_to(ewsim, throttle_budget_seconds=1.5)) as mailbox:
        mailbox.check()
    assert time.monotonic() - started < 4


def test_a_connection_reset_is_a_plain_error_and_the_next_call_reconnects(
        ewsim: SimHandle) -> None:
    ewsim.control.fault("connection_reset", "GetFolder")
    with EwsMailbox(access_to(ewsim)) as mailbox:
        with pytest.raises(TimedOut, match="broke off"):
            mailbox.check()
        assert mailbox.check()


def test_changed_connection_settings_drop_the_cached_protocol(ewsim: SimHandle) -> None:
    with EwsMailbox(access_to(ewsim, settings_version="1")) as mailbox:
        mailbox.check()
        first = mailbox.account.protocol
    with EwsMailbox(access_to(ewsim, settings_version="1")) as mailbox:
        mailbox.check()
        assert mailbox.account.protocol is first          # unchanged settings: reused
    with EwsMailbox(access_to(ewsim, settings_version="2")) as mailbox:
        mailbox.check()
        assert mailbox.account.protocol is not first      # changed: a fresh one
        assert mailbox.account.protocol._session_pool_maxsize >= 2
    assert len([k for k in CachingProtocol._protocol_cache if k[0] == ewsim.url]) == 1


def test_a_full_read_asks_for_ids_then_fetches_only_the_needed_fields_in_batches(
        ewsim: SimHandle, tmp_path: Path) -> None:
    with EwsMailbox(access_to(ewsim)) as mailbox:
        folder = mailbox.get_folder("contacts", Kind.CONTACTS)
        assert all(r.ok for r in mailbox.create(folder, _contacts(250)))
        ewsim.control.reset_counters()
        ewsim.server.capture_dir = tmp_path
        try:
            pages = list(mailbox.read_changes(folder, None))
        finally:
            ewsim.server.capture_dir = None
        assert mailbox.requests_made >= 6
    assert [len(p.changes) for p in pages] == [100, 100, 50]
    assert ewsim.control.counters() == {"SyncFolderItems": 3, "GetItem": 3}
    requests = [p.read_text() for p in sorted(tmp_path.glob("*_GetItem.xml"))
                if not p.name.endswith(".response.xml")]
    assert requests and all("item:MimeContent" not in r for r in requests)
    assert all('"contacts:EmailAddress" FieldIndex="EmailAddress1"' in r for r in requests)


def test_a_read_with_no_changes_is_one_request(ewsim: SimHandle) -> None:
    with EwsMailbox(access_to(ewsim)) as mailbox:
        folder = mailbox.get_folder("contacts", Kind.CONTACTS)
        mailbox.create(folder, _contacts(3))
        state = [p.state for p in mailbox.read_changes(folder, None)][-1]
    ewsim.control.reset_counters()
    with EwsMailbox(access_to(ewsim)) as mailbox:
        pages = list(mailbox.read_changes(folder, state))
        assert mailbox.requests_made == 1
    assert [p.changes for p in pages] == [[]]
    assert ewsim.control.counters() == {"SyncFolderItems": 1}


def test_requests_made_counts_only_this_mailbox_in_this_thread(ewsim: SimHandle) -> None:
    with EwsMailbox(access_to(ewsim)) as mailbox:
        mailbox.check()
        mailbox.check()
        assert mailbox.requests_made == 2


# --- reading ahead and writing behind (background thread) ---------------------------------
def test_reading_ahead_counts_every_request_and_keeps_the_pages_in_order(
        ewsim: SimHandle) -> None:
    with EwsMailbox(access_to(ewsim)) as mailbox:
        folder = mailbox.get_folder("contacts", Kind.CONTACTS)
        assert all(r.ok for r in mailbox.create(folder, _contacts(250)))
        ewsim.control.reset_counters()
        before = mailbox.requests_made
        pages = list(mailbox.read_changes(folder, None))
        # The GetItems ran in the read-ahead thread: they count for this mailbox all the same.
        assert mailbox.requests_made - before == 6
    assert ewsim.control.counters() == {"SyncFolderItems": 3, "GetItem": 3}
    names = [c.record.first_name for p in pages for c in p.changes]
    assert sorted(names, key=lambda n: int(n[1:])) == names == [f"F{i}" for i in range(250)]
    assert [p.done for p in pages] == [False, False, True]


def test_a_failed_fetch_in_the_read_ahead_thread_is_raised_to_the_reader(
        ewsim: SimHandle) -> None:
    with EwsMailbox(access_to(ewsim)) as mailbox:
        folder = mailbox.get_folder("contacts", Kind.CONTACTS)
        mailbox.create(folder, _contacts(150))
        ewsim.control.fault("http_401", "GetItem")
        with pytest.raises(AuthenticationFailed):
            list(mailbox.read_changes(folder, None))
        # Nothing is left behind: the next read gets everything.
        assert sum(len(p.changes) for p in mailbox.read_changes(folder, None)) == 150


def test_a_reader_that_stops_early_leaves_no_request_under_way(ewsim: SimHandle) -> None:
    with EwsMailbox(access_to(ewsim)) as mailbox:
        folder = mailbox.get_folder("contacts", Kind.CONTACTS)
        mailbox.create(folder, _contacts(250))
        ewsim.control.reset_counters()
        pages = mailbox.read_changes(folder, None)
        assert len(next(pages).changes) == 100
        pages.close()   # the second page's fetch, already started, is waited for and dropped
        counted = mailbox.requests_made
        time.sleep(0.2)
        assert mailbox.requests_made == counted
    assert ewsim.control.counters() == {"SyncFolderItems": 2, "GetItem": 2}


def test_a_started_write_runs_in_the_background_and_reports_in_the_callers_thread(
        ewsim: SimHandle) -> None:
    with EwsMailbox(access_to(ewsim)) as mailbox:
        folder = mailbox.get_folder("contacts", Kind.CONTACTS)
        before = mailbox.requests_made
        pending = mailbox.start(lambda: mailbox.create(folder, _contacts(3)))
        assert all(r.ok for r in pending.result())
        assert mailbox.requests_made - before == 1
        ewsim.control.fault("http_401", "CreateItem")
        failing = mailbox.start(lambda: mailbox.create(folder, _contacts(1)))
        with pytest.raises(AuthenticationFailed):
            failing.result()
        with pytest.raises(AuthenticationFailed):   # asked again: the same answer
            failing.result()
