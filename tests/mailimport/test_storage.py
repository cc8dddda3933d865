from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import subprocess
import tempfile
import tracemalloc
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import BinaryIO, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailimport import storage
from mailimport.filenames import (
    allowed,
    numbered_apart,
    numbered_filename,
    real_extension,
    safe_filename,
)
from mailimport.storage import AttachmentStore, SavedFile, StorageError, TooLarge

RECEIVED = datetime(2026, 3, 29, 8, tzinfo=UTC)
MB = 1024 * 1024
OWNER = "1"  # the organization a store saves for
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{port}{n}" for port in ("COM", "LPT") for n in "123456789¹²³"
}
HOSTILE_NAMES = [
    "../../etc/passwd",
    "..\\..\\Windows\\win.ini",
    "/etc/shadow",
    "CON.txt",
    "con",
    "LPT9.pdf",
    "COM¹.docx",
    "NUL .txt",
    "a/b\\c.pdf",
    "x" * 300 + ".pdf",
    "ž" * 200 + ".docx",
    "😀" * 100 + ".jpg",
    "📎 smlouva.pdf",
    "faktura\u202efdp.exe",
    "\u2067report\u2069.pdf",
    "zero\u200bwidth.txt",
    "nul\x00byte.pdf",
    "bell\x07tab\tnewline\n.pdf",
    "",
    " ",
    ".",
    "..",
    "...",
    ".htaccess",
    "report.pdf.",
    "report.pdf . .",
    'a<b>c:d"e|f?g*h.pdf',
    "C:\\fakepath\\scan.png",
    "\ud800lone surrogate.pdf",
]


def hostile_text() -> st.SearchStrategy[str]:
    """Any text, weighted towards the pieces that make names dangerous."""
    pieces = st.one_of(
        st.characters(exclude_categories=()),  # surrogates too: they cannot become UTF-8
        st.sampled_from([".", "..", "/", "\\", " ", ":", "\x00", "\n", "\u202e", "\u200d",
                         "\ufeff", "e\u0301", "\u0301", "😀", "👨\u200d👩", "CON", "com1",
                         "LPT¹", ".pdf", "ž"]),
    )
    return st.lists(pieces, max_size=120).map("".join)


def files_under(directory: Path) -> list[Path]:
    """Every entry that is not a folder (files, links), bookkeeping folders included."""
    found = []
    for folder, _, names in os.walk(directory):
        found += [Path(folder, name) for name in names]
    return sorted(found)


def bucket_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:2]


class RepeatingStream:
    """`size` bytes of a pattern, made a chunk at a time like a network stream."""

    def __init__(self, size: int) -> None:
        self.remaining = size

    def read(self, size: int = -1) -> bytes:
        size = self.remaining if size < 0 else min(size, self.remaining)
        self.remaining -= size
        return b"\xab" * size


class FailingStream:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 2:
            raise self.error
        return b"x" * 1000


def stream(data: bytes) -> BinaryIO:
    return io.BytesIO(data)


@pytest.fixture
def share(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    root.mkdir()
    return root


@pytest.fixture
def store(share: Path) -> AttachmentStore:
    return AttachmentStore(share / "crm", [share], owner=OWNER)


class SafeFilenameTestCase:
    @pytest.mark.parametrize(
        ("original", "expected"),
        [
            ("../../etc/passwd", "_._etc_passwd"),
            ("a/b\\c.pdf", "a_b_c.pdf"),
            ("CON.txt", "_CON.txt"),
            ("con", "_con"),
            ("NUL .txt", "_NUL .txt"),
            ("COM¹.docx", "_COM¹.docx"),
            ("CONSOLE.txt", "CONSOLE.txt"),
            ("report.pdf. . ", "report.pdf"),
            (".htaccess", "htaccess"),
            ("", "attachment"),
            (".", "attachment"),
            ("..", "attachment"),
            (" \x00 ", "attachment"),
            ("nul\x00byte.pdf", "nul byte.pdf"),
            ('a<b>c:d"e|f?g*h.pdf', "a_b_c_d_e_f_g_h.pdf"),
            ("faktura\u202efdp.exe", "fakturafdp.exe"),
            ("Wait....pdf", "Wait.pdf"),
            ("📎 smlouva.pdf", "📎 smlouva.pdf"),
        ],
    )
    def test_a_hostile_name_becomes_a_harmless_one(self, original: str, expected: str) -> None:
        assert safe_filename(original) == expected

    def test_a_long_name_is_cut_in_utf8_bytes_and_keeps_its_extension(self) -> None:
        for original in ["x" * 300 + ".pdf", "ž" * 200 + ".docx", "😀" * 100 + ".jpg"]:
            name = safe_filename(original)
            assert len(name.encode()) <= 150
            assert name.endswith(original[-5:].lstrip("x"))
            assert name.encode().decode() == name
        assert len(safe_filename("y" * 1000, max_length=255).encode()) == 255

    def test_a_decomposed_name_is_stored_composed(self) -> None:
        assert safe_filename("Pr\u030ci\u0301loha.pdf") == "Příloha.pdf"

    def test_a_limit_outside_what_file_systems_allow_is_refused(self) -> None:
        with pytest.raises(ValueError):
            safe_filename("a.pdf", max_length=300)

    @given(hostile_text(), st.integers(min_value=32, max_value=255))
    def test_any_text_gives_a_sane_name_that_cleaning_again_leaves_alone(
            self, original: str, max_length: int) -> None:
        name = safe_filename(original, max_length)
        assert name
        assert len(name.encode()) <= max_length
        assert not set(name) & set('/\\<>:"|?*')
        assert not [c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs")]
        assert ".." not in name
        assert name == name.strip(". ")
        assert name.partition(".")[0].rstrip(" ").upper() not in WINDOWS_RESERVED
        assert unicodedata.is_normalized("NFC", name)
        assert safe_filename(name, max_length) == name

    @given(hostile_text(), st.text("abcXYZ0189", min_size=1, max_size=10))
    def test_a_short_plain_extension_survives_any_name(self, stem: str, extension: str) -> None:
        original = f"x{stem}.{extension}"
        assert safe_filename(original).endswith(f".{extension}")
        assert real_extension(original) == extension.lower()

    def test_a_numbered_name_keeps_its_extension_within_the_limit(self) -> None:
        assert numbered_filename("report.pdf", 2) == "report (2).pdf"
        assert numbered_filename("README", 3) == "README (3)"
        long = numbered_filename(safe_filename("ž" * 200 + ".pdf"), 12)
        assert long.endswith(" (12).pdf")
        assert len(long.encode()) <= 150

    def test_names_repeated_in_one_email_are_numbered_apart(self) -> None:
        names = ["smlouva.pdf", "Smlouva.PDF", "smlouva (2).pdf", "smlouva.pdf", "faktura.pdf"]
        assert numbered_apart(names) == ["smlouva.pdf", "Smlouva (2).PDF", "smlouva (2) (2).pdf",
                                         "smlouva (3).pdf", "faktura.pdf"]


class RealExtensionTestCase:
    @pytest.mark.parametrize(
        ("name", "extension"),
        [
            ("Scan.PDF", "pdf"),
            ("archive.tar.gz", "gz"),
            ("README", ""),
            (".pdf", ""),
            ("report.pdf.", "pdf"),
            ("report.pdf . ", "pdf"),
            ("faktura\u202efdp.exe", "exe"),
            ("photo.pdf:evil.exe", "exe"),
            ("x." + "a" * 20, ""),
        ],
    )
    def test_the_extension_comes_from_the_name_as_the_file_system_sees_it(
            self, name: str, extension: str) -> None:
        assert real_extension(name) == extension

    def test_the_settings_list_or_any_list_of_extensions_is_accepted(self) -> None:
        assert allowed("Smlouva.PDF", "doc;docx;pdf")
        assert allowed("Smlouva.pdf", [" .PDF "])
        assert not allowed("README", "pdf")
        assert not allowed("README", ";")

    def test_a_disguised_executable_is_not_allowed(self) -> None:
        assert not allowed("faktura\u202efdp.exe", "pdf")
        assert not allowed("faktura.pdf.exe", "pdf")
        assert allowed("faktura.exe.pdf", "pdf")


class AttachmentStoreTestCase:
    def test_a_file_is_saved_under_year_month_and_content_bucket(
            self, store: AttachmentStore) -> None:
        saved = store.save(stream(b"%PDF-1.7"), "Faktura 03/2026.pdf", RECEIVED, MB)
        digest = hashlib.sha256(b"%PDF-1.7").hexdigest()
        assert saved == SavedFile(f"2026/03/{digest[:2]}/Faktura 03_2026.pdf", 8, digest,
                                  deduplicated=False)
        assert (store.directory / saved.relative_path).read_bytes() == b"%PDF-1.7"
        assert (store.directory / ".sha256" / digest[:2] / digest).read_text() == \
            f"{OWNER}\n{saved.relative_path}"
        assert files_under(store.directory / ".incoming") == []

    def test_the_directory_is_made_when_it_is_missing(self, share: Path) -> None:
        store = AttachmentStore(share / "crm" / "přílohy", [share], owner=OWNER)
        saved = store.save(stream(b"data"), "a.txt", RECEIVED, MB)
        assert (share / "crm" / "přílohy" / saved.relative_path).is_file()
        assert store.root == share.resolve()

    def test_every_hostile_name_is_written_inside_the_directory_with_a_sane_name(
            self, store: AttachmentStore) -> None:
        for number, original in enumerate(HOSTILE_NAMES):
            content = f"attachment {number}".encode()
            saved = store.save(stream(content), original, RECEIVED, MB)
            path = store.directory / saved.relative_path
            assert path.resolve().is_relative_to(store.directory)
            assert path.parent == store.directory / "2026" / "03" / bucket_of(content)
            assert path.name == safe_filename(original)
            assert path.read_bytes() == content
        stored = [p for p in files_under(store.directory) if not p.name.startswith(".")]
        assert len([p for p in stored if p.parts[-4] == "2026"]) == len(HOSTILE_NAMES)

    def test_a_50_mb_attachment_is_streamed_without_being_held_in_memory(
            self, store: AttachmentStore) -> None:
        size = 50 * MB
        tracemalloc.start()
        try:
            saved = store.save(cast(BinaryIO, RepeatingStream(size)), "big.bin", RECEIVED,
                               size)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 5 * MB
        expected = hashlib.sha256()
        for _ in range(50):
            expected.update(b"\xab" * MB)
        assert saved.size == size
        assert saved.sha256 == expected.hexdigest()
        assert (store.directory / saved.relative_path).stat().st_size == size

    def test_an_attachment_over_the_limit_is_refused_and_leaves_nothing(
            self, store: AttachmentStore) -> None:
        with pytest.raises(TooLarge) as raised:
            store.save(cast(BinaryIO, RepeatingStream(3 * MB)), "big.pdf", RECEIVED, 2 * MB)
        assert raised.value.limit == 2 * MB
        assert raised.value.size_seen > 2 * MB
        assert "larger than the limit of 2 MB" in str(raised.value)
        assert files_under(store.directory) == []

    def test_an_attachment_exactly_at_the_limit_is_saved(self, store: AttachmentStore) -> None:
        assert store.save(stream(b"12345"), "a.txt", RECEIVED, 5).size == 5

    def test_identical_content_is_stored_once(self, store: AttachmentStore) -> None:
        first = store.save(stream(b"same logo"), "logo.png", RECEIVED, MB)
        again = store.save(stream(b"same logo"), "image001.png",
                           datetime(2026, 5, 1, tzinfo=UTC), MB)
        assert again == SavedFile(first.relative_path, first.size, first.sha256,
                                  deduplicated=True)
        assert len([p for p in files_under(store.directory) if "2026" in p.parts]) == 1

    def test_a_stored_file_edited_on_the_share_is_not_reused(
            self, store: AttachmentStore) -> None:
        first = store.save(stream(b"original"), "smlouva.docx", RECEIVED, MB)
        (store.directory / first.relative_path).write_bytes(b"edited by a person")
        again = store.save(stream(b"original"), "smlouva.docx", RECEIVED, MB)
        assert not again.deduplicated
        assert (store.directory / again.relative_path).read_bytes() == b"original"
        # Once stored again, the new copy is the one shared.
        third = store.save(stream(b"original"), "smlouva.docx", RECEIVED, MB)
        assert third.deduplicated
        assert third.relative_path == again.relative_path

    def test_content_another_owner_stored_is_neither_reused_nor_named(
            self, store: AttachmentStore) -> None:
        theirs = store.save(stream(b"the same offer"), "nabidka.pdf", RECEIVED, MB)
        # The folder given over to another organization: its store is not handed their file.
        other = AttachmentStore(store.directory, [store.root], owner="2")
        mine = other.save(stream(b"the same offer"), "offer.pdf", RECEIVED, MB)
        assert not mine.deduplicated
        assert mine.relative_path != theirs.relative_path
        assert (other.directory / mine.relative_path).read_bytes() == b"the same offer"
        assert other.save(stream(b"the same offer"), "again.pdf", RECEIVED, MB) == \
            SavedFile(mine.relative_path, mine.size, mine.sha256, deduplicated=True)

    def test_an_index_entry_without_an_owner_is_not_followed(
            self, store: AttachmentStore) -> None:
        first = store.save(stream(b"older"), "a.pdf", RECEIVED, MB)
        entry = store.directory / ".sha256" / first.sha256[:2] / first.sha256
        entry.write_text(first.relative_path)   # as written before stores had owners
        again = store.save(stream(b"older"), "a.pdf", RECEIVED, MB)
        assert not again.deduplicated and again.relative_path != first.relative_path
        assert entry.read_text() == f"{OWNER}\n{again.relative_path}"

    def test_a_name_taken_by_other_content_gets_a_number(self, store: AttachmentStore) -> None:
        first = b"invoice from Alpha"
        second = next(other for other in (b"invoice from Beta %d" % i for i in count())
                      if bucket_of(other) == bucket_of(first))
        one = store.save(stream(first), "faktura.pdf", RECEIVED, MB)
        two = store.save(stream(second), "faktura.pdf", RECEIVED, MB)
        assert one.relative_path.endswith("/faktura.pdf")
        assert two.relative_path == one.relative_path.replace("faktura.pdf", "faktura (2).pdf")
        assert (store.directory / one.relative_path).read_bytes() == first
        assert (store.directory / two.relative_path).read_bytes() == second

    def test_an_attached_email_is_saved_as_eml(self, store: AttachmentStore) -> None:
        def writer(sink: BinaryIO) -> int:
            sink.write(b"Subject: Re: faktura\r\n\r\n")
            sink.write(b"body")
            return 28

        saved = store.save_eml(writer, "RE: Faktura 2024/03", RECEIVED, MB)
        assert saved.relative_path.endswith("/RE_ Faktura 2024_03.eml")
        assert (store.directory / saved.relative_path).read_bytes().endswith(b"\r\n\r\nbody")
        assert store.save_eml(lambda sink: sink.write(b"x"), "zpráva.EML", RECEIVED,
                              MB).relative_path.endswith("/zpráva.EML")
        assert store.save_eml(lambda sink: sink.write(b"y"), "", RECEIVED,
                              MB).relative_path.endswith("/attachment.eml")

    def test_an_attached_email_over_the_limit_is_refused_even_if_the_writer_hides_the_error(
            self, store: AttachmentStore) -> None:
        def careless_writer(sink: BinaryIO) -> None:
            try:
                sink.write(b"x" * 2000)
            except Exception as exc:
                raise RuntimeError("the backend wrapped it") from exc

        def swallowing_writer(sink: BinaryIO) -> None:
            with suppress(Exception):  # what a sloppy backend might do
                sink.write(b"x" * 2000)

        for writer in (careless_writer, swallowing_writer):
            with pytest.raises(TooLarge):
                store.save_eml(writer, "big", RECEIVED, 1000)
        assert files_under(store.directory) == []

    def test_a_failing_download_leaves_nothing_and_keeps_its_own_error(
            self, store: AttachmentStore) -> None:
        failing = FailingStream(ConnectionResetError("Exchange hung up"))
        with pytest.raises(ConnectionResetError):
            store.save(cast(BinaryIO, failing), "a.pdf", RECEIVED, MB)
        assert files_under(store.directory) == []


class StoreDirectoryTestCase:
    def test_a_directory_outside_the_roots_is_refused(self, tmp_path: Path,
                                                       share: Path) -> None:
        with pytest.raises(StorageError, match="not inside an approved attachment root"):
            AttachmentStore(tmp_path / "elsewhere", [share], owner=OWNER)

    def test_a_directory_climbing_out_with_dots_is_refused(self, share: Path) -> None:
        with pytest.raises(StorageError, match="not inside an approved attachment root"):
            AttachmentStore(share / "crm" / ".." / ".." / "etc", [share], owner=OWNER)

    def test_a_directory_that_is_a_link_to_outside_is_refused(
            self, tmp_path: Path, share: Path) -> None:
        (tmp_path / "outside").mkdir()
        (share / "crm").symlink_to(tmp_path / "outside")
        with pytest.raises(StorageError, match="not inside an approved attachment root"):
            AttachmentStore(share / "crm", [share], owner=OWNER)

    def test_a_relative_directory_and_missing_roots_are_refused(self, share: Path) -> None:
        with pytest.raises(StorageError, match="full path"):
            AttachmentStore("crm", [share], owner=OWNER)
        with pytest.raises(StorageError, match="ATTACHMENT_ROOTS"):
            AttachmentStore(share / "crm", [], owner=OWNER)

    def test_a_link_planted_in_the_store_is_not_followed(
            self, tmp_path: Path, store: AttachmentStore) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        store.directory.mkdir()
        (store.directory / "2026").symlink_to(outside)
        with pytest.raises(StorageError, match="outside the attachment directory"):
            store.save(stream(b"secret"), "a.pdf", RECEIVED, MB)
        assert files_under(outside) == []
        assert files_under(store.directory / ".incoming") == []

    def test_a_link_planted_at_the_final_name_is_left_alone(
            self, tmp_path: Path, store: AttachmentStore) -> None:
        victim = tmp_path / "victim.txt"
        victim.write_bytes(b"untouched")
        bucket = store.directory / "2026" / "03" / bucket_of(b"payload")
        bucket.mkdir(parents=True)
        (bucket / "a.pdf").symlink_to(victim)
        saved = store.save(stream(b"payload"), "a.pdf", RECEIVED, MB)
        assert saved.relative_path.endswith("/a (2).pdf")
        assert victim.read_bytes() == b"untouched"

    def test_an_index_entry_pointing_outside_is_ignored(
            self, tmp_path: Path, store: AttachmentStore) -> None:
        (tmp_path / "outside.pdf").write_bytes(b"payload")
        digest = hashlib.sha256(b"payload").hexdigest()
        index = store.directory / ".sha256" / digest[:2]
        index.mkdir(parents=True)
        (index / digest).write_text(f"{OWNER}\n../../outside.pdf/x")
        saved = store.save(stream(b"payload"), "a.pdf", RECEIVED, MB)
        assert not saved.deduplicated
        assert (index / digest).read_text() == f"{OWNER}\n{saved.relative_path}"

    def test_a_file_in_place_of_a_folder_is_reported_plainly(
            self, store: AttachmentStore) -> None:
        store.directory.mkdir()
        (store.directory / "2026").write_bytes(b"not a folder")
        with pytest.raises(StorageError, match="Something other than a folder") as raised:
            store.save(stream(b"data"), "a.pdf", RECEIVED, MB)
        assert raised.value.errno == errno.ENOTDIR
        assert files_under(store.directory / ".incoming") == []


@contextmanager
def tmpfs(mount_point: Path, options: str) -> Iterator[Path]:
    mount_point.mkdir()
    mount = shutil.which("mount")
    if not mount or subprocess.run([mount, "-t", "tmpfs", "-o", options, "tmpfs",
                                    str(mount_point)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs privileges; the simulated failures cover this")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def run_as_nobody(action: Callable[[], object]) -> str:
    """What `action` raised (or returned), run in a child process without root's rights."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            outcome = f"returned {action()!r}"
        except BaseException as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        os.write(write_end, outcome.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    return outcome


class StoreFailureTestCase:
    def test_a_full_share_leaves_nothing_and_says_so(self, tmp_path: Path) -> None:
        with tmpfs(tmp_path / "small", "size=1m") as share:
            store = AttachmentStore(share / "crm", [share], owner=OWNER)
            with pytest.raises(StorageError, match="The share is full") as raised:
                store.save(cast(BinaryIO, RepeatingStream(2 * MB)), "big.pdf", RECEIVED,
                           10 * MB)
            assert raised.value.errno == errno.ENOSPC
            assert files_under(share) == []

    def test_a_read_only_share_says_so(self, tmp_path: Path) -> None:
        with tmpfs(tmp_path / "readonly", "ro,size=1m") as share:
            store = AttachmentStore(share, [share], owner=OWNER)
            with pytest.raises(StorageError, match="The share is read-only"):
                store.save(stream(b"data"), "a.pdf", RECEIVED, MB)

    def test_a_simulated_full_share_leaves_nothing_and_says_so(
            self, monkeypatch: pytest.MonkeyPatch, store: AttachmentStore) -> None:
        # Works without privileges: the write of the second chunk fails as a full disk would.
        writes = count(1)

        def fill_up(fd: int, data: memoryview) -> int:
            if next(writes) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return os.write(fd, data)

        monkeypatch.setattr(storage, "_write", fill_up)
        with pytest.raises(StorageError, match="The share is full"):
            store.save(cast(BinaryIO, RepeatingStream(3 * MB)), "big.pdf", RECEIVED, 10 * MB)
        assert files_under(store.directory) == []

    def test_a_share_filling_up_while_indexing_leaves_no_orphan(
            self, monkeypatch: pytest.MonkeyPatch, store: AttachmentStore) -> None:
        writes = count(1)

        def fill_up(fd: int, data: memoryview) -> int:
            if next(writes) == 2:  # the first write is the file, the second its index entry
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return os.write(fd, data)

        monkeypatch.setattr(storage, "_write", fill_up)
        with pytest.raises(StorageError, match="The share is full"):
            store.save(stream(b"data"), "a.pdf", RECEIVED, MB)
        assert files_under(store.directory) == []

    def test_no_permission_leaves_nothing_and_says_so(self) -> None:
        # tmp_path lies in a folder only root may enter, so this uses a folder of its own.
        with tempfile.TemporaryDirectory() as temporary:
            share = Path(temporary)
            share.chmod(0o755)
            (share / "crm").mkdir(mode=0o755)

            def save() -> SavedFile:
                store = AttachmentStore(share / "crm", [share], owner=OWNER)
                return store.save(stream(b"data"), "a.pdf", RECEIVED, MB)

            if os.geteuid() == 0:
                # chmod does not stop root: the save runs in a child that gives up root.
                outcome = run_as_nobody(save)
            else:
                (share / "crm").chmod(0o555)
                try:
                    with pytest.raises(StorageError) as raised:
                        save()
                    outcome = f"StorageError: {raised.value}"
                finally:
                    (share / "crm").chmod(0o755)
            assert outcome.startswith("StorageError: No permission to write to ")
            assert files_under(share) == []
