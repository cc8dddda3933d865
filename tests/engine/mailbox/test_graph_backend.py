"""What the Graph backend does beyond the contract: throttling waited out within the run's
budget, inside a `$batch` too; never more than 4 requests at once on a mailbox; a `$batch`
of 20 counted as one request; small attachments read with their messages, as far as a
page's budget goes. Against ewsim's Graph front door over loopback HTTP."""

from __future__ import annotations

import dataclasses

import pytest

from engine.mailbox import graph_reading
from engine.mailbox.base import SMALL_ATTACHMENT_BYTES, Throttled, WriteStatus
from engine.mailbox.graph import GraphMailbox
from engine.records import Kind
from ewsim.testing import SimHandle
from tests.engine.mailbox.contract import contact
from tests.engine.mailbox.graph_access import graph_access


@pytest.fixture
def mailbox(ewsim: SimHandle) -> GraphMailbox:
    with GraphMailbox(graph_access(ewsim)) as backend:
        yield backend


def test_writes_go_twenty_to_a_batch_and_each_batch_is_one_request(
        ewsim: SimHandle, mailbox: GraphMailbox) -> None:
    folder = mailbox.get_folder("contacts", Kind.CONTACTS)
    before = mailbox.requests_made
    results = mailbox.create(folder, [contact(i) for i in range(45)])
    assert [r.status for r in results] == [WriteStatus.OK] * 45
    assert mailbox.requests_made - before == 3
    assert ewsim.control.graph_stats()["requests"]["contacts.create"] == 45


def test_requests_throttled_inside_a_batch_are_sent_again(ewsim: SimHandle,
                                                          mailbox: GraphMailbox) -> None:
    folder = mailbox.get_folder("contacts", Kind.CONTACTS)
    ewsim.control.fault("http_429", operation="contacts.create", count=3, retry_after=0)
    results = mailbox.create(folder, [contact(i) for i in range(10)])
    assert [r.status for r in results] == [WriteStatus.OK] * 10
    stamps = mailbox.find_by_stamp(folder, [f"crm-contact-{i}" for i in range(10)])
    assert len(stamps) == 10    # each created once, none twice


def test_throttling_longer_than_the_budget_stops_the_run_in_words(ewsim: SimHandle) -> None:
    access = dataclasses.replace(graph_access(ewsim), throttle_budget_seconds=1.0)
    ewsim.control.fault("http_503", operation="contacts.delta", count=-1, retry_after=30)
    with GraphMailbox(access) as backend:
        folder = backend.get_folder("contacts", Kind.CONTACTS)
        with pytest.raises(Throttled, match="longer than this run may wait"):
            list(backend.read_changes(folder, None))


def test_never_more_than_four_requests_at_once_on_a_mailbox(ewsim: SimHandle,
                                                           mailbox: GraphMailbox) -> None:
    folder = mailbox.get_folder("contacts", Kind.CONTACTS)
    refs = [r.ref for r in mailbox.create(folder, [contact(i) for i in range(200)])]
    # Reads fetch in parallel $batches; ewsim answers a fifth concurrent request with 429.
    ewsim.control.fault("delay", operation="contacts.get", count=-1, delay_ms=5)
    fetched = mailbox.fetch(Kind.CONTACTS, [r for r in refs if r is not None])
    assert len(fetched) == 200 and all(isinstance(f, tuple) for f in fetched)
    stats = ewsim.control.graph_stats()
    assert 1 <= stats["peak_concurrency"][ewsim.user] <= 4
    assert not stats["throttled"].get(ewsim.user)


def test_a_mailbox_allowing_fewer_concurrent_requests_is_waited_for(
        ewsim: SimHandle, mailbox: GraphMailbox) -> None:
    folder = mailbox.get_folder("contacts", Kind.CONTACTS)
    refs = [r.ref for r in mailbox.create(folder, [contact(i) for i in range(80)])]
    ewsim.control.graph_settings(mailbox_concurrency=1)
    ewsim.control.fault("delay", operation="contacts.get", count=-1, delay_ms=5)
    fetched = mailbox.fetch(Kind.CONTACTS, [r for r in refs if r is not None])
    assert all(isinstance(f, tuple) for f in fetched)
    assert ewsim.control.graph_stats()["throttled"][ewsim.user] >= 1   # 429s were waited out


def test_small_attachments_come_with_their_messages_as_far_as_the_page_budget_goes(
        ewsim: SimHandle, mailbox: GraphMailbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_reading, "READ_AHEAD_BYTES", 13_000)
    for n in range(3):   # 6,000 bytes each: the third one is over the budget
        ewsim.control.deliver("alice@example.com", subject=f"Small {n}", attachments=[
            {"name": f"{n}-{i}.pdf", "content": f"{n}{i}" * 1500} for i in range(2)])
    ewsim.control.deliver("alice@example.com", subject="Large", attachments=[
        {"name": "big.bin", "size": SMALL_ATTACHMENT_BYTES + 1},
        {"name": "small.txt", "content": "small"}])
    folder = mailbox.get_folder("inbox", Kind.MAIL)
    (page,) = list(mailbox.read_changes(folder, None))
    by_subject = {c.record.subject: c for c in page.changes if c.record is not None}
    wanted = [(by_subject[subject].ref, a.ref) for subject in ("Small 0", "Small 1", "Small 2")
              for a in by_subject[subject].record.attachments]
    wanted.append((by_subject["Large"].ref, by_subject["Large"].record.attachments[1].ref))
    before = mailbox.requests_made
    contents = mailbox.read_attachments(wanted)
    assert contents == [f"{n}{i}".encode() * 1500 for n in range(3) for i in range(2)] \
        + [b"small"]
    # Those of Small 0 and 1 came with their messages; the other three in one `$batch`.
    assert mailbox.requests_made - before == 1
    assert ewsim.control.graph_stats()["requests"]["attachments.get"] == 3
    # Handed out once: asked again, they are read again.
    assert mailbox.read_attachments(wanted[:1]) == [b"00" * 1500]
    assert ewsim.control.graph_stats()["requests"]["attachments.get"] == 4
