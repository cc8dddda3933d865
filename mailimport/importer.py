"""E-mail import (PRODUCT.md §4.3): each chosen folder's new mail, filed in the CRM once.

A run, per folder: read changes since the stored state (mail received before the import
window is never fetched), and for each message:
1. find its CRM e-mail by Internet Message-ID and fingerprint (sender, date, subject; by
   Exchange item for a message without a Message-ID), or create it — one CRM e-mail per
   message, however many mailboxes and folders hold it, and one of its own for a different
   message reusing a Message-ID (they collide, and can be forged);
2. link it to this profile's CRM user and to the CRM persons among its sender and recipients
   (and their companies); with the option "skip", a message matching nobody is not filed;
3. save its allowed attachments under the profile's attachment directory (streamed, under
   names the server builds), each with a CRM document;
then store the folder's sync state. A message that failed (the share full, a permission
refused) is recorded and tried again by the next run; nothing half-written stays behind.

Every message a run looks at leaves a line in its history: filed (created, or linked to one
more user), skipped with the reason (received before the window, a duplicate of an e-mail this
profile filed already, matching nobody, not an e-mail, gone before its retry), or failed.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from django.utils import timezone

from engine.crmstore.base import CrmBackend, EmailMatch, SavedDocument
from engine.mailbox.base import (
    ChangeType,
    FolderInfo,
    ItemError,
    ItemRef,
    LeftOut,
    MailboxBackend,
    MailboxError,
)
from engine.models import Agenda, Retry, Run, RunItem
from engine.records import AttachmentInfo, ContactRecord, Kind, MessageRecord, Record
from engine.run.journal import Journal
from engine.run.link_table import link_table
from mailimport import filenames, storage
from mailimport.prefetch import AttachmentPrefetch, small_ones
from mailimport.smb_store import SmbAttachmentStore, organization_store
from profiles.models import SyncProfile
from profiles.models.organizations import NO_ATTACHMENT_ROOTS
from profiles.secrets import SecretKeyError

# The code both mailbox backends give an item that is not in the mailbox (any more).
NOT_FOUND = "ErrorItemNotFound"
# Attachments read ahead are saved this many at a time, while the e-mails before them are
# filed: each waits on its disk syncs (the file's and its folder's), which were two thirds of
# an import run's time on a busy disk (bench/mail.py).
PARALLEL_SAVES = 4
# Where attachments go: a local folder (or a mounted share), or straight onto a Windows share.
Store = storage.AttachmentStore | SmbAttachmentStore


class MailImport:
    """One import run of a profile's mail folders. It only imports: no two-way flow, no
    links; its run keeps a journal as every run does (engine/run/journal.py)."""

    agenda = Agenda.MAIL
    kind = Kind.MAIL

    def __init__(self, profile: SyncProfile, mailbox: MailboxBackend, crm: CrmBackend, *,
                 dry_run: bool = False, trigger: str = "manual",
                 checkpoint: Callable[[str], None] | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.profile = profile
        self.mailbox = mailbox
        self.crm = crm
        self.settings = profile.mailsettings
        self.journal = Journal(profile, self.agenda, dry_run=dry_run, trigger=trigger,
                               checkpoint=checkpoint, progress=progress)
        # Its retries and folder states (a dry run's keeps no write).
        self.links = link_table(profile, self.agenda, dry_run=dry_run)
        self._prefetch = AttachmentPrefetch(mailbox, [])   # a page's, by `_prepare`

    @property
    def run_record(self) -> Run | None:
        return self.journal.run

    @property
    def dry_run(self) -> bool:
        return self.journal.dry_run

    def run(self) -> Run:
        self.store: Store | None = None
        try:
            with ThreadPoolExecutor(max_workers=PARALLEL_SAVES,
                                    thread_name_prefix="attachment-saving") as self._savers:
                return self.journal.conduct(self._sync, lambda: self.mailbox.requests_made)
        finally:
            if isinstance(self.store, SmbAttachmentStore):
                self.store.close()   # signs out of the share

    def _item(self, action: str, title: str, crm_key: str = "", remote_id: str = "",
              detail: str = "") -> None:
        """A line of the run's history."""
        self.journal.line(action, title, crm_key, remote_id, detail)

    def title(self, record: Record | None) -> str:
        if isinstance(record, ContactRecord):
            return record.shown_name() or "(no name)"
        return getattr(record, "subject", "") or "(no subject)"

    # --- the run --------------------------------------------------------------------------
    def _sync(self) -> bool:
        mail = self.settings
        self.since = timezone.now() - dt.timedelta(days=mail.received_within_days)
        self.store = self._open_store() if mail.save_attachments else None
        self._filed: dict[str, tuple[str, str]] = {}   # by `_already_filed`: item id -> e-mail
        self._prepare([])
        self._retry_messages()
        for folder_id, path in mail.folders():
            folder = FolderInfo(id=folder_id, path=path, kind=Kind.MAIL)
            state = self.links.folder_state(folder_id)
            self.journal.say(f"Reading {path}")
            for page in self.mailbox.read_changes(folder, state.remote_state or None,
                                                  known=self._already_filed,
                                                  received_after=self.since):
                self.journal.report(more=len(page.changes))
                self._left_out(page.left_out)
                for error in page.errors:
                    self._item(RunItem.Action.ERROR, error.ref.id if error.ref else "",
                               remote_id=error.ref.id if error.ref else "",
                               detail=error.message)
                self._prepare([(c.ref, c.record) for c in page.changes
                               if c.type is ChangeType.UPSERT])
                for change in page.changes:
                    # A deletion (or a move out of the folder) leaves the CRM e-mail as it is.
                    if change.type is ChangeType.UPSERT:
                        self._look_at(change.ref, change.record)
                        self.journal.point("message filed")
                    self.journal.report(done=1)
                self.links.save_state(state, remote_state=page.state)
                self.journal.point("mail page checkpointed")
                self.journal.renew()
        self._prefetch.close()
        return False

    def _open_store(self) -> Store:
        """The profile's attachment directory, checked again against its organization's roots
        as they are now: the database may hold a directory that validation never saw, and
        the server-wide roots stand in for no organization's."""
        organization = self.profile.organization
        roots = organization.approved_attachment_roots()
        if not roots:
            raise MailboxError(f"Attachments cannot be saved: {NO_ATTACHMENT_ROOTS}")
        try:
            if organization.on_share():
                # Straight onto the Windows share, signed in as the organization's share user.
                return organization_store(organization, self.settings.attachment_directory)
            # Owned by the organization, so that the store's index of contents never hands
            # one organization a file another one saved (say, in a folder since given over).
            return storage.AttachmentStore(Path(self.settings.attachment_directory), roots,
                                           owner=str(organization.pk))
        except (storage.StorageError, SecretKeyError) as exc:
            raise MailboxError(f"Attachments cannot be saved: {exc}") from exc

    def _retry_messages(self) -> None:
        """The messages earlier runs could not file, read again (before their Retry rows go,
        so that a connection failing here loses none of them)."""
        retries = self.links.retries()
        if not retries:
            return
        fetched = self.mailbox.fetch(Kind.MAIL, [ItemRef(r.key) for r in retries])
        self._prepare([result for result in fetched if not isinstance(result, ItemError)])
        for retry, result in zip(retries, fetched, strict=True):
            if isinstance(result, ItemError) and result.code != NOT_FOUND:
                self._item(RunItem.Action.ERROR, self._last_title(retry.key), "", retry.key,
                           f"{result.message} (tried again next run)")
                continue   # its Retry stays
            self.links.drop_retries([retry])
            if isinstance(result, ItemError):
                self._item(RunItem.Action.SKIP, self._last_title(retry.key), "", retry.key,
                           "no longer in the mailbox (deleted or moved) when it was to be "
                           "filed again")
            else:
                self._look_at(*result)

    def _last_title(self, item_id: str) -> str:
        """A message's title as this profile's history last named it (for one not read now)."""
        return RunItem.objects.filter(
            run__profile=self.profile, run__agenda=self.agenda, remote_id=item_id,
        ).order_by("-pk").values_list("title", flat=True).first() or "(no subject)"

    def _already_filed(self, refs: list[ItemRef]) -> set[str]:
        """Items this profile has filed already need no fetching (a flag or read change)."""
        filed = self.crm.filed_emails(self._crm_user, [r.id for r in refs])
        self._filed.update((item_id, (email.key, email.subject))
                           for item_id, email in filed.items())
        return set(filed)

    @functools.cached_property
    def _crm_user(self) -> str:
        """The CRM user the profile files e-mails for, as the CRM backend names users (an
        external CRM by its own id for that user)."""
        return self.crm.own_user() or str(self.profile.crm_user_id)

    def _left_out(self, older: list[LeftOut]) -> None:
        """A line for each message listed as received before the window, written together:
        a first run lists a whole mailbox's old mail."""
        if not older:
            return
        with self.journal.together():
            for message in older:
                self._item(RunItem.Action.SKIP, message.title or "(no subject)",
                           remote_id=message.ref.id, detail=self._too_old(message.received))

    def _too_old(self, received: dt.datetime) -> str:
        return (f"received {received:%Y-%m-%d}, before the import window (the last "
                f"{self.settings.received_within_days} days)")

    def _prepare(self, items: list[tuple[ItemRef, Record | None]]) -> None:
        """What filing these items (a page of them) will ask, asked for all of them at once:
        the CRM persons of their addresses and the persons' names (a query for the page, not
        two per e-mail), and their small attachments, read many per request."""
        messages = [(ref, record) for ref, record in items if isinstance(record, MessageRecord)
                    and not (record.received is not None and record.received < self.since)]
        self._persons_of = self.crm.find_by_email(
            list(dict.fromkeys(a for _, m in messages for a in m.addresses()))) \
            if messages else {}
        persons = sorted({key for keys in self._persons_of.values() for key in keys})
        self._names = self.crm.person_names(persons) if persons else {}
        if self.settings.unmatched == self.settings.Unmatched.SKIP:
            messages = [(ref, m) for ref, m in messages if self._persons(m)]   # not filed
        self._matches = dict(zip(
            [ref.id for ref, _ in messages],
            self.crm.find_emails([(m, ref.id) for ref, m in messages], self._crm_user)
            if messages else [], strict=True))
        self._filed_now: set[str] = set()   # Message-IDs filed since
        wanted = []
        if self.store is not None and not self.dry_run:
            wanted = [small_ones(ref, [a for a, name in self._named(message)
                                       if self._wanted(a, name, [])])
                      for ref, message in messages]
        self._prefetch.close()
        self._prefetch = AttachmentPrefetch(self.mailbox, wanted)
        # The messages new to the CRM, each the only one of its Message-ID in the page: each
        # will be filed with all its attachments, so those read ahead can be saved ahead.
        message_ids = [m.message_id for _, m in messages if m.message_id]
        self._new = {ref.id: message for ref, message in messages
                     if not self._matches[ref.id].key and (
                         not message.message_id or message_ids.count(message.message_id) == 1)}
        self._saving: dict[tuple[str, str], Future[storage.SavedFile]] = {}

    def _match(self, ref: ItemRef, message: MessageRecord) -> EmailMatch:
        """The message's CRM e-mail, if filed already: as `_prepare` found it, unless a message
        of the same Message-ID was filed since (a copy in the same page), which it could not
        know."""
        match = self._matches.get(ref.id)
        if match is None or (message.message_id and message.message_id in self._filed_now):
            match = self.crm.find_email(message, ref.id, self._crm_user)
        return match

    def _persons(self, message: MessageRecord) -> list[str]:
        """The CRM persons among the message's sender and recipients (by `_prepare`)."""
        return sorted({key for address in message.addresses()
                       for key in self._persons_of.get(address, [])})

    def _look_at(self, ref: ItemRef, record: Record | None) -> None:
        """An item of a mail folder, new or changed: filed, or a line in the history says why
        not."""
        if isinstance(record, MessageRecord):
            self._import(ref, record)
        elif record is None:
            # `_already_filed` named it: its change is one the CRM e-mail does not hold (read,
            # flagged, categorized), so it is not fetched.
            pk, subject = self._filed.pop(ref.id, ("", ""))
            self._item(RunItem.Action.SKIP, subject or "(no subject)", str(pk), ref.id,
                       f"filed already as e-mail #{pk}" if pk else "filed already")
        else:
            what = "a contact" if isinstance(record, ContactRecord) else "a calendar item"
            self._item(RunItem.Action.SKIP, self.title(record), "", ref.id,
                       f"not an e-mail ({what}): only e-mails are imported")

    # --- one message ----------------------------------------------------------------------
    def _import(self, ref: ItemRef, message: MessageRecord) -> None:
        title = self.title(message)
        if message.received is not None and message.received < self.since:
            # Read again for a retry: it was in the window when it failed.
            self._item(RunItem.Action.SKIP, title, remote_id=ref.id,
                       detail=self._too_old(message.received))
            return
        persons = self._persons(message)
        if not persons and self.settings.unmatched == self.settings.Unmatched.SKIP:
            self._item(RunItem.Action.SKIP, title, remote_id=ref.id,
                       detail="no CRM person among its sender and recipients")
            return
        match = self._match(ref, message)   # filed already?
        mine = match.mine
        if mine and self._attachments_done(match.key, message):
            # This profile filed it already: a copy in another folder, or a change of one
            # filed from another mailbox first (`_already_filed` knows only the first one's).
            self._item(RunItem.Action.SKIP, title, match.key, ref.id,
                       f"duplicate of e-mail #{match.key}, filed already")
            return
        matched = ", ".join(sorted(self._names[p] for p in persons if p in self._names)) \
            or "nobody in the CRM"
        notes: list[str] = []
        if match.collided:
            # Named by its number only: it may be another user's mail.
            notes.append(f"Message-ID collision: e-mail #{match.collided} has the same "
                         f"Message-ID but another sender, date or subject, so this message is "
                         f"filed as an e-mail of its own")
        if self.dry_run:
            action = (RunItem.Action.CREATE_CRM if not match.key else
                      RunItem.Action.UPDATE_CRM if mine else RunItem.Action.LINK)
            self._item(action, title, match.key, ref.id,
                       "; ".join([f"linked to {matched}", *notes]))
            return
        failed = False
        documents: list[SavedDocument] = []
        if self.store is not None:
            failed = self._save_attachments(self.store, ref, message, match.key, notes,
                                            documents)
        detail = f"linked to {matched}" + (f"; {'; '.join(notes)}" if notes else "")
        # One commit for all the message leaves in the database (the e-mail and its links,
        # its documents, the history line, a retry), where the CRM is in this database (the
        # built-in store): a commit is a disk sync, and one per e-mail, per document and per
        # line was a good part of an import run's time (bench/mail.py). The attachments are
        # saved first, so no network I/O runs inside. A crash before it leaves saved files
        # without an e-mail: the message is read again (its page's state was not stored) and
        # the store finds the files by their content.
        with self.crm.shared_transaction():
            filing = self.crm.file_email(message, ref.id, match, self._crm_user, persons,
                                         documents)
            self._filed_now.add(message.message_id)
            if filing.error:
                detail += f"; {filing.error}"
            if failed or filing.error:
                self._item(RunItem.Action.ERROR, title, filing.key, ref.id,
                           detail + " (tried again next run)")
                Retry.objects.update_or_create(profile=self.profile, agenda=self.agenda,
                                               side="remote", key=ref.id,
                                               defaults={"reason": detail[:2000]})
                return
            action = (RunItem.Action.CREATE_CRM if filing.created else
                      RunItem.Action.UPDATE_CRM if mine else RunItem.Action.LINK)
            self._item(action, title, filing.key, ref.id, detail)

    # --- attachments ------------------------------------------------------------------------
    @staticmethod
    def _named(message: MessageRecord) -> list[tuple[AttachmentInfo, str]]:
        """The message's attachments, each with its name in the CRM: an attached e-mail's ends
        in `.eml`, and a name used before in the message gets a number (the second
        `smlouva.pdf` is `smlouva (2).pdf`), so that each is saved, and found saved, apart."""
        names = []
        for attachment in message.attachments:
            name = attachment.name or "attachment"
            if attachment.is_item and not name.lower().endswith(".eml"):
                name += ".eml"
            names.append(name)
        return list(zip(message.attachments, filenames.numbered_apart(names), strict=True))

    def _wanted(self, attachment: AttachmentInfo, name: str, notes: list[str]) -> bool:
        if not filenames.allowed(name, self.settings.extensions):
            if not attachment.is_inline:
                notes.append(f"{filenames.safe_filename(name)} not saved (type not allowed)")
            return False
        limit = self.settings.max_attachment_mb * 1024 * 1024
        if attachment.size and attachment.size > limit:
            notes.append(f"{filenames.safe_filename(name)} not saved: "
                         f"{attachment.size // (1024 * 1024)} MB is over the "
                         f"{self.settings.max_attachment_mb} MB limit")
            return False
        return True

    def _attachments_done(self, email_key: str, message: MessageRecord) -> bool:
        if self.store is None:
            return True
        wanted = [a for a, name in self._named(message) if self._wanted(a, name, [])]
        return len(self.crm.email_documents(email_key)) >= len(wanted)

    def _save_ahead(self, store: Store) -> None:
        """Start saving the attachments read ahead of the new e-mails (`_prepare`), side by
        side, while the e-mails before them are filed. Each content once at a time: a second
        attachment of the same content is saved in its e-mail's turn, when the store finds
        the first one's file, as it would one after the other."""
        limit = self.settings.max_attachment_mb * 1024 * 1024
        contents: set[bytes] = set()
        for item_id, read in self._prefetch.group().items():
            message = self._new.pop(item_id, None)
            if message is None:
                continue   # saving already, or not new: saved in its turn
            received = message.received or timezone.now()
            for attachment, name in self._named(message):
                content = read.get(attachment.ref)
                # The bytes themselves are the key: hashed once (a Python hash, cheaper than
                # SHA-256), compared whole only where hashes meet.
                if not isinstance(content, bytes) or not self._wanted(attachment, name, []) \
                        or content in contents:
                    continue
                contents.add(content)
                self._saving[(item_id, attachment.ref)] = self._savers.submit(
                    store.save, io.BytesIO(content), name, received, limit)

    def _save_attachments(self, store: Store, ref: ItemRef,
                          message: MessageRecord, email_key: str, notes: list[str],
                          documents: list[SavedDocument]) -> bool:
        """Save what is allowed (what the e-mail filed already, if any, has no more) in
        `store`, adding a document to record in the CRM per saved file to `documents`; True
        if something failed and must be tried again."""
        category = self.settings.attachment_category or "Příloha"
        saved = set(self.crm.email_documents(email_key)) if email_key else set()
        limit = self.settings.max_attachment_mb * 1024 * 1024
        received = message.received or timezone.now()
        failed = False
        read_ahead = self._prefetch.contents(ref)
        self._save_ahead(store)
        for attachment, name in self._named(message):
            if not self._wanted(attachment, name, notes) or name[:1000] in saved:
                continue
            try:
                if attachment.is_item:
                    result = store.save_eml(
                        lambda sink, a=attachment: self.mailbox.write_item_attachment(
                            ref, a.ref, sink), name, received, limit)
                elif (ref.id, attachment.ref) in self._saving:
                    result = self._saving.pop((ref.id, attachment.ref)).result()
                elif attachment.ref in read_ahead:
                    content = read_ahead[attachment.ref]
                    if isinstance(content, MailboxError):
                        raise content
                    result = store.save(io.BytesIO(content), name, received, limit)
                else:
                    with self.mailbox.open_attachment(ref, attachment.ref) as stream:
                        result = store.save(stream, name, received, limit)
            except storage.TooLarge as exc:
                notes.append(f"{filenames.safe_filename(name)} not saved: {exc}")
                continue
            except (storage.StorageError, MailboxError) as exc:
                notes.append(f"{filenames.safe_filename(name)} not saved: {exc}")
                failed = True
                continue
            below_root = store.directory.relative_to(store.root) / result.relative_path
            documents.append(SavedDocument(
                root=str(store.root), path=below_root.as_posix(), name=name[:1000],
                size=result.size, sha256=result.sha256, category=category))
            saved.add(name[:1000])
            notes.append(f"saved {result.relative_path}" + (
                f" ({filenames.safe_filename(name)} has the same content: stored once)"
                if result.deduplicated else ""))
        return failed
