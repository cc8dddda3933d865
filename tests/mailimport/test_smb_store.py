"""The attachment store on an SMB share, against a real Samba on loopback (tests/samba.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import socket
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.test import override_settings

from mailimport.smb_connection import ShareConnection
from mailimport.smb_store import SmbAttachmentStore
from mailimport.storage import StorageError, TooLarge
from tests.samba import DFS_LINK_TARGET, PASSWORD, USER, Samba, samba  # noqa: F401 (fixture)

RECEIVED = datetime(2026, 3, 29, 8, tzinfo=UTC)
MB = 1024 * 1024


@pytest.fixture
def folder(samba: Samba, request: pytest.FixtureRequest) -> str:  # noqa: F811
    """A folder of its own on the share for each test, as an organization's root."""
    return samba.unc("attachments", request.node.name.replace("[", "-").replace("]", ""))


def make_store(samba: Samba, directory: str, root: str | None = None, *,  # noqa: F811
               owner: str = "1", password: str = PASSWORD) -> SmbAttachmentStore:
    connection = ShareConnection(samba.host, USER, password, port=samba.port)
    return SmbAttachmentStore(directory, [root or directory], connection, owner=owner)


@pytest.fixture
def store(samba: Samba, folder: str) -> Iterator[SmbAttachmentStore]:  # noqa: F811
    store = make_store(samba, folder)
    yield store
    store.close()


def on_disk(samba: Samba, unc: str) -> Path:  # noqa: F811
    """Where a folder of the `attachments` share lies on the server's disk."""
    return samba.share_path("attachments").joinpath(*unc.split("\\")[4:])


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_it_saves_a_file_in_the_month_and_bucket_of_its_content(
        samba: Samba, folder: str, store: SmbAttachmentStore) -> None:  # noqa: F811
    content = b"%PDF-1.7 faktura"
    saved = store.save(io.BytesIO(content), "faktura.pdf", RECEIVED, None)
    digest = hashlib.sha256(content).hexdigest()
    assert saved.relative_path == f"2026/03/{digest[:2]}/faktura.pdf"
    assert not saved.deduplicated
    disk = on_disk(samba, folder)
    assert (disk / saved.relative_path).read_bytes() == content
    assert list((disk / ".incoming").iterdir()) == []
    entry = (disk / ".sha256" / digest[:2] / digest).read_text()
    assert entry == f"1\n{saved.relative_path}"
    assert store.share.encrypted   # Samba offers SMB 3 encryption: it is used


def test_the_same_content_is_stored_once_and_another_name_numbered(
        samba: Samba, folder: str, store: SmbAttachmentStore) -> None:  # noqa: F811
    first = store.save(io.BytesIO(b"one"), "a.pdf", RECEIVED, None)
    again = store.save(io.BytesIO(b"one"), "reply.pdf", RECEIVED, None)
    assert again == dataclasses.replace(first, deduplicated=True)
    assert len(files(on_disk(samba, folder) / "2026")) == 1


def test_a_large_attachment_stored_already_leaves_no_temporary_file(
        samba: Samba, folder: str, store: SmbAttachmentStore) -> None:  # noqa: F811
    content = b"\x42" * (2 * MB)   # more than a chunk: written to `.incoming` as it comes
    first = store.save(io.BytesIO(content), "plan.dwg", RECEIVED, None)
    again = store.save(io.BytesIO(content), "plan-v2.dwg", RECEIVED, None)
    assert again == dataclasses.replace(first, deduplicated=True)
    disk = on_disk(samba, folder)
    assert list((disk / ".incoming").iterdir()) == []
    assert [name for name in files(disk) if not name.startswith(".")] == [first.relative_path]


def test_an_index_entry_naming_a_file_no_longer_there_is_replaced(
        samba: Samba, folder: str, store: SmbAttachmentStore) -> None:  # noqa: F811
    """A person deleted the stored file (or a run stopped between the entry and the file):
    the content is stored again and the entry names the new file."""
    content = b"%PDF offer"
    digest = hashlib.sha256(content).hexdigest()
    first = store.save(io.BytesIO(content), "offer.pdf", RECEIVED, None)
    disk = on_disk(samba, folder)
    (disk / first.relative_path).unlink()
    later = RECEIVED.replace(month=4)
    again = store.save(io.BytesIO(content), "offer.pdf", later, None)
    assert not again.deduplicated
    assert again.relative_path == f"2026/04/{digest[:2]}/offer.pdf"
    assert (disk / again.relative_path).read_bytes() == content
    assert (disk / ".sha256" / digest[:2] / digest).read_text() == f"1\n{again.relative_path}"
    # And the next copy is found through it.
    assert store.save(io.BytesIO(content), "copy.pdf", later, None).deduplicated


def test_a_name_taken_in_the_bucket_gets_a_number(
        samba: Samba, folder: str, store: SmbAttachmentStore) -> None:  # noqa: F811
    content = b"new content"
    digest = hashlib.sha256(content).hexdigest()
    bucket = on_disk(samba, folder) / "2026" / "03" / digest[:2]
    bucket.mkdir(parents=True)
    (bucket / "smlouva.pdf").write_bytes(b"someone else's file")
    saved = store.save(io.BytesIO(content), "smlouva.pdf", RECEIVED, None)
    assert saved.relative_path == f"2026/03/{digest[:2]}/smlouva (2).pdf"
    assert (bucket / "smlouva.pdf").read_bytes() == b"someone else's file"
    assert (bucket / "smlouva (2).pdf").read_bytes() == content
    assert list((on_disk(samba, folder) / ".incoming").iterdir()) == []


def test_an_edited_stored_file_or_another_owners_entry_is_not_reused(
        samba: Samba, folder: str, store: SmbAttachmentStore) -> None:  # noqa: F811
    first = store.save(io.BytesIO(b"shared pdf"), "x.pdf", RECEIVED, None)
    other = make_store(samba, folder, owner="2")
    try:
        theirs = other.save(io.BytesIO(b"shared pdf"), "x.pdf", RECEIVED, None)
    finally:
        other.close()
    assert not theirs.deduplicated and theirs.relative_path != first.relative_path
    (on_disk(samba, folder) / theirs.relative_path).write_bytes(b"edited")
    mine = make_store(samba, folder, owner="2")
    try:
        assert not mine.save(io.BytesIO(b"shared pdf"), "x.pdf", RECEIVED, None).deduplicated
    finally:
        mine.close()


def test_a_large_attachment_is_streamed_not_held_in_memory(
        samba: Samba, folder: str, store: SmbAttachmentStore) -> None:  # noqa: F811
    size = 32 * MB

    class Source(io.RawIOBase):
        sent = 0

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            n = min(n if n > 0 else MB, size - self.sent)
            self.sent += n
            return b"\x5a" * n

    tracemalloc.start()
    try:
        saved = store.save(Source(), "video.mp4", RECEIVED, None)  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert saved.size == size
    assert os.path.getsize(on_disk(samba, folder) / saved.relative_path) == size
    # smbprotocol holds a few chunks (plain and encrypted) at a time, never the file.
    assert peak < 12 * MB, peak


def test_too_large_leaves_nothing(samba: Samba, folder: str,  # noqa: F811
                                  store: SmbAttachmentStore) -> None:
    with pytest.raises(TooLarge):
        store.save(io.BytesIO(b"x" * 5000), "big.bin", RECEIVED, 4096)
    assert files(on_disk(samba, folder)) == []


@pytest.mark.parametrize("directory", ["..\\elsewhere", "sub\\..\\..\\elsewhere"])
def test_a_directory_leading_outside_the_root_is_refused(
        samba: Samba, folder: str, directory: str) -> None:  # noqa: F811
    with pytest.raises(StorageError, match="not a plain folder name"):
        make_store(samba, f"{folder}\\{directory}", folder)


def test_a_directory_on_another_share_is_refused(samba: Samba, folder: str) -> None:  # noqa: F811
    with pytest.raises(StorageError, match="not inside the attachment folders"):
        make_store(samba, samba.unc("readonly", "x"), folder)


def test_a_read_only_share_says_so_and_keeps_nothing(samba: Samba) -> None:  # noqa: F811
    store = make_store(samba, samba.unc("readonly", "mail"))
    try:
        with pytest.raises(StorageError, match="No permission to write"):
            store.save(io.BytesIO(b"pdf"), "a.pdf", RECEIVED, None)
    finally:
        store.close()
    assert files(samba.share_path("readonly")) == []


def test_wrong_credentials_are_said_in_plain_words(samba: Samba, folder: str) -> None:  # noqa: F811
    store = make_store(samba, folder, password="wrong")
    with pytest.raises(StorageError, match="refused the share's user name or password"):
        store.save(io.BytesIO(b"pdf"), "a.pdf", RECEIVED, None)


def test_a_full_share_leaves_nothing_half_written(samba: Samba) -> None:  # noqa: F811
    if samba.full is None:
        pytest.skip("mounting a small tmpfs behind the share is not permitted here")
    store = make_store(samba, samba.unc("full", "mail"))
    try:
        with pytest.raises(StorageError, match="The share is full"):
            store.save(io.BytesIO(b"\x01" * 6 * MB), "too big for the disk.iso", RECEIVED, None)
        assert files(samba.full) == []
        # Space is there again for what fits: the next run saves it.
        saved = store.save(io.BytesIO(b"small"), "a.pdf", RECEIVED, None)
    finally:
        store.close()
    assert (samba.full / "mail" / saved.relative_path).read_bytes() == b"small"


def test_a_small_attachment_on_a_nearly_full_share_leaves_nothing(
        samba: Samba) -> None:  # noqa: F811
    """Written in one compound request (create, write, rename, close): the write fails, the
    rename with it, and neither the file nor its index entry is left."""
    if samba.full is None:
        pytest.skip("mounting a small tmpfs behind the share is not permitted here")
    filler = samba.full / "filler.bin"
    free = os.statvfs(samba.full).f_bavail * os.statvfs(samba.full).f_frsize
    filler.write_bytes(b"\0" * (free - 64 * 1024))
    store = make_store(samba, samba.unc("full", "small"))
    try:
        with pytest.raises(StorageError, match="The share is full"):
            store.save(io.BytesIO(b"\x07" * 512 * 1024), "scan.pdf", RECEIVED, None)
        assert files(samba.full / "small") == []
        filler.unlink()
        saved = store.save(io.BytesIO(b"\x07" * 512 * 1024), "scan.pdf", RECEIVED, None)
    finally:
        store.close()
        filler.unlink(missing_ok=True)
    assert (samba.full / "small" / saved.relative_path).stat().st_size == 512 * 1024


def test_the_server_going_away_mid_write_keeps_nothing_and_the_retry_saves(
        samba: Samba, folder: str, store: SmbAttachmentStore) -> None:  # noqa: F811
    class Source(io.RawIOBase):
        sent = 0
        stopping = True

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            if self.sent == 3 * MB and self.stopping:
                samba.stop()   # the file server loses power with the file half-sent
            self.sent += MB
            return b"\x33" * MB if self.sent <= 8 * MB else b""

    try:
        with pytest.raises(StorageError, match=r"connection to the share on 127\.0\.0\.1 was lost"):
            store.save(Source(), "big.bin", RECEIVED, None)  # type: ignore[arg-type]
    finally:
        samba.start()
    disk = on_disk(samba, folder)
    # At most the temporary file, which no one takes for an attachment.
    assert [name for name in files(disk) if not name.startswith(".incoming/")] == []
    retry = Source()
    retry.stopping = False
    saved = store.save(retry, "big.bin", RECEIVED, None)  # type: ignore[arg-type]
    assert (disk / saved.relative_path).stat().st_size == 8 * MB


def test_a_server_outside_the_operators_allowed_networks_is_not_connected_to(
        samba: Samba, folder: str) -> None:  # noqa: F811
    # The share's host is an outbound connection: loopback (the operator's own machine) only
    # where the operator allows it (security/outbound.py).
    with override_settings(MAILBOX_ALLOWED_NETWORKS=[]):
        store = make_store(samba, folder)
        with pytest.raises(StorageError, match="may not reach"):
            store.save(io.BytesIO(b"pdf"), "a.pdf", RECEIVED, None)
    assert not on_disk(samba, folder).exists()


@pytest.fixture
def referral_target(samba: Samba) -> Iterator[socket.socket]:  # noqa: F811
    """A listener where the share's DFS referrals lead: the test checks nobody came."""
    target = socket.socket()
    target.bind((DFS_LINK_TARGET, samba.port))
    target.listen()
    target.setblocking(False)
    yield target
    target.close()


def saving_is_refused(store: SmbAttachmentStore, target: socket.socket, message: str) -> None:
    try:
        with pytest.raises(StorageError, match=message):
            store.save(io.BytesIO(b"%PDF"), "a.pdf", RECEIVED, None)
        with pytest.raises(BlockingIOError):
            target.accept()   # nobody came
    finally:
        store.close()


def test_a_dfs_namespace_is_refused_and_its_links_never_followed(
        samba: Samba, referral_target: socket.socket) -> None:  # noqa: F811
    """A DFS link can name any server, and smbclient would connect there by itself, past the
    operator's allowed networks (and with the share's password). The namespace share is
    refused before any file request: nothing reaches the link's target."""
    saving_is_refused(make_store(samba, samba.unc("dfs", "elsewhere", "mail")), referral_target,
                      r"dfs is a DFS namespace.*link's target share")
    assert files(samba.share_path("dfs")) == []


def test_a_share_said_to_have_moved_to_another_server_is_not_followed(
        samba: Samba, referral_target: socket.socket) -> None:  # noqa: F811
    """The server refers the share itself elsewhere (a DFS root referral, which smbclient
    follows inside its own connecting): refused before any connection to the other server."""
    saving_is_refused(make_store(samba, samba.unc("moved", "mail")), referral_target,
                      rf"sent this server on to {DFS_LINK_TARGET} \(DFS\), which it does not "
                      "follow")
