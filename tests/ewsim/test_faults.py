from __future__ import annotations

import threading

import pytest
from exchangelib import Contact, FaultTolerance
from exchangelib.errors import (
    ErrorInvalidSyncStateData,
    ErrorIrresolvableConflict,
    ErrorItemSave,
    ErrorMailboxStoreUnavailable,
    ErrorQuotaExceeded,
    ErrorServerBusy,
    ErrorTimeoutExpired,
    MalformedResponseError,
    UnauthorizedError,
)

from ewsim.testing import ControlError

from .conftest import make_account


def test_server_busy_carries_the_back_off(ewsim, account):
    ewsim.control.fault("server_busy", "GetFolder", back_off_ms=2000)
    with pytest.raises(ErrorServerBusy) as exc:
        account.inbox.refresh()
    assert exc.value.back_off == 2.0


def test_fault_tolerance_waits_out_server_busy_and_succeeds(ewsim):
    account = make_account(ewsim, retry_policy=FaultTolerance(max_wait=5))
    ewsim.control.fault("server_busy", "GetFolder", back_off_ms=100)
    assert account.inbox.name == "Inbox"
    assert ewsim.control.counters()["GetFolder"] >= 2


def test_http_503_is_server_busy_and_retried_under_fault_tolerance(ewsim):
    failfast = make_account(ewsim)
    ewsim.control.fault("http_503", "GetFolder", retry_after=0)
    with pytest.raises(ErrorServerBusy):
        failfast.inbox.refresh()
    from exchangelib.protocol import close_connections
    close_connections()
    tolerant = make_account(ewsim, retry_policy=FaultTolerance(max_wait=5))
    ewsim.control.fault("http_503", "GetFolder", retry_after=0)
    assert tolerant.inbox.name == "Inbox"


def test_http_500_error_page_is_transient_server_busy(ewsim, account):
    ewsim.control.fault("http_500", "GetFolder")
    with pytest.raises(ErrorServerBusy):
        account.inbox.refresh()


def test_http_429_is_not_retried_by_exchangelib(ewsim):
    account = make_account(ewsim, retry_policy=FaultTolerance(max_wait=5))
    ewsim.control.fault("http_429", "GetFolder", retry_after=0)
    with pytest.raises(MalformedResponseError):
        account.inbox.refresh()


def test_a_connection_reset_is_a_timeout(ewsim, account):
    ewsim.control.fault("connection_reset", "GetFolder")
    with pytest.raises(ErrorTimeoutExpired):
        account.inbox.refresh()


def test_a_delay_fault_only_slows_the_answer(ewsim, account):
    ewsim.control.fault("delay", "GetFolder", delay_ms=50)
    assert account.inbox.name == "Inbox"


def test_injected_invalid_sync_state_and_conflict(ewsim, account):
    ewsim.control.fault("invalid_sync_state", "SyncFolderItems")
    with pytest.raises(ErrorInvalidSyncStateData):
        list(account.contacts.sync_items())
    c = Contact(account=account, folder=account.contacts, display_name="X")
    c.save()
    ewsim.control.fault("irresolvable_conflict", "UpdateItem")
    c.display_name = "Y"
    with pytest.raises(ErrorIrresolvableConflict):
        c.save(update_fields=["display_name"])


def test_counters_count_requests_per_operation_and_reset(ewsim, account):
    account.inbox.refresh()
    list(account.inbox.all())
    counters = ewsim.control.counters()
    assert counters["GetFolder"] >= 1 and counters["FindItem"] == 1
    ewsim.control.reset_counters()
    assert ewsim.control.counters() == {}


def test_several_clients_in_threads_at_once(ewsim):
    account = make_account(ewsim, max_connections=4)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                Contact(account=account, folder=account.contacts,
                        display_name=f"T{n}-{i}").save()
            list(account.contacts.all().only("display_name"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert account.contacts.all().count() == 30


def test_http_500_with_a_non_xml_body_is_a_malformed_response(ewsim, account):
    ewsim.control.fault("http_500_plain", "GetFolder")
    with pytest.raises(MalformedResponseError):
        account.inbox.refresh()


def test_an_injected_401_is_unauthorized_and_not_retried_under_fail_fast(ewsim, account):
    ewsim.control.fault("http_401", "GetFolder")
    with pytest.raises(UnauthorizedError):
        account.inbox.refresh()
    assert ewsim.control.counters()["GetFolder"] == 1


def test_a_soap_fault_with_any_response_code_raises_that_error(ewsim, account):
    ewsim.control.fault("soap_fault", "GetFolder", response_code="ErrorMailboxStoreUnavailable")
    with pytest.raises(ErrorMailboxStoreUnavailable):
        account.inbox.refresh()


def test_a_per_item_response_error_comes_back_per_item(ewsim, account):
    # exchangelib returns some error codes per item (ErrorItemSave, ErrorCorruptData, …) and
    # raises the others for the whole call (ErrorQuotaExceeded): both must reach the product.
    ewsim.control.fault("response_error", "CreateItem", response_code="ErrorItemSave")
    results = account.bulk_create(folder=account.contacts, items=[
        Contact(folder=account.contacts, display_name=f"Q{i}") for i in range(3)])
    assert [type(r) for r in results] == [ErrorItemSave] * 3
    ewsim.control.fault("response_error", "CreateItem", response_code="ErrorQuotaExceeded")
    with pytest.raises(ErrorQuotaExceeded):
        account.bulk_create(folder=account.contacts,
                            items=[Contact(folder=account.contacts, display_name="Q")])
    assert account.contacts.all().count() == 0


def test_after_a_connection_reset_the_next_request_reconnects(ewsim):
    # With one pooled session exchangelib raises ErrorTimeoutExpired at once even under
    # FaultTolerance (notes 1.3): the product treats it as transient and retries the run later.
    account = make_account(ewsim, retry_policy=FaultTolerance(max_wait=5))
    ewsim.control.fault("connection_reset", "GetFolder")
    with pytest.raises(ErrorTimeoutExpired):
        account.inbox.refresh()
    account.inbox.refresh()
    assert account.inbox.name == "Inbox"


def test_a_fault_with_a_count_hits_that_many_requests_then_stops(ewsim, account):
    ewsim.control.fault("server_busy", "GetFolder", count=2, back_off_ms=10)
    for _ in range(2):
        with pytest.raises(ErrorServerBusy):
            account.inbox.refresh()
    account.inbox.refresh()
    assert ewsim.control.call("GET", "faults") == []


def test_an_unknown_fault_kind_is_refused_by_the_control_plane(ewsim):
    with pytest.raises(ControlError, match="unknown fault kind"):
        ewsim.control.fault("meteor_strike")
