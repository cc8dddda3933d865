"""The EWS backend's plumbing: the account, errors in words, folders addressed by id, and the
background writer that carries a run's throttling budget and request count to its thread."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from exchangelib import DELEGATE, IMPERSONATION, Account, EWSTimeZone
from exchangelib import errors as exchange_errors
from exchangelib.folders import Folder
from exchangelib.properties import DistinguishedFolderId, FolderId
from exchangelib.properties import Mailbox as MailboxProperty

from engine.mailbox.background import Background, BackgroundWorker, Outcome, Pending
from engine.mailbox.base import FolderInfo, MailboxAccess, MailboxBackend
from engine.mailbox.ews_errors import translate_error
from engine.mailbox.ews_mapping import DISTINGUISHED
from engine.mailbox.ews_protocol import configuration, run_budget, traffic
from engine.mailbox.ews_services import FOLDER_FIELDS, IdFolder, RawGetFolder, local_name
from engine.mailbox.wording import folder_gone, translated

if TYPE_CHECKING:
    from engine.mailbox.ews_streaming import WatchGroup


class EwsConnection(MailboxBackend):
    """What every part of EwsMailbox stands on: the account, the translation of errors,
    folders addressed by id, the background writer."""

    def __init__(self, access: MailboxAccess) -> None:
        super().__init__(access)
        self._account: Account | None = None
        self._writer: EwsWorker | None = None
        self._watch_group: WatchGroup | None = None
        self._folders: dict[str, tuple[str, bool]] | None = None   # _mailbox_folders
        self._requests_before = traffic.requests
        run_budget.deadline = time.monotonic() + access.throttle_budget_seconds

    @property
    def account(self) -> Account:
        if self._account is None:
            access = self.access
            try:
                config = configuration(access)
            except Exception as exc:
                raise translate_error(exc, access) from exc
            self._account = Account(
                access.mailbox, config=config, autodiscover=False,
                access_type=IMPERSONATION if access.impersonate else DELEGATE,
                default_timezone=EWSTimeZone(access.time_zone), locale="en_US")
        return self._account

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._watch_group is not None:
            self._watch_group.close()
            self._watch_group = None
        run_budget.deadline = None
        self._account = None

    def _errors(self) -> AbstractContextManager[None]:
        return translated(translate_error, self.access)

    def _folder(self, folder: FolderInfo | str) -> Folder:
        """A folder object for item requests, built from the stored id without asking the
        server (so a read with no changes costs one request)."""
        folder_id = folder.id if isinstance(folder, FolderInfo) else folder
        return IdFolder(self.account, self._folder_id(folder_id))

    def _folder_id(self, folder_id: str) -> FolderId:
        if folder_id in DISTINGUISHED:
            return DistinguishedFolderId(
                id=folder_id, mailbox=MailboxProperty(email_address=self.access.mailbox))
        return FolderId(id=folder_id)

    def _describe(self, folder_id: str) -> dict[str, Any]:
        """One GetFolder: the folder's name, class and size, read straight from the answer."""
        with self._errors():
            (answer,) = list(RawGetFolder(account=self.account).call(
                folders=[self._folder_id(folder_id)], additional_fields=FOLDER_FIELDS,
                shape="IdOnly"))
        if isinstance(answer, exchange_errors.ErrorFolderNotFound
                      | exchange_errors.ErrorInvalidIdMalformed
                      | exchange_errors.ErrorItemNotFound):
            raise folder_gone()
        if isinstance(answer, Exception):
            raise translate_error(answer, self.access)
        # Ids (FolderId, ParentFolderId) are attributes, names and counts are text.
        return {local_name(child): child.text or child.get("Id") for child in answer.iter()
                if isinstance(child.tag, str)}

    @property
    def requests_made(self) -> int:
        return traffic.requests - self._requests_before

    def start(self, call: Callable[[], Any]) -> Pending[Any]:
        if self._writer is None:
            self._writer = EwsWorker(self, "ews-write-behind")
        return self._writer.submit(call)


class EwsWorker(BackgroundWorker):
    """A background thread for an EwsMailbox's calls. It carries the caller's throttling budget
    there and the requests it sent back (both are per thread)."""

    def __init__(self, mailbox: EwsConnection, name: str) -> None:
        super().__init__(name)
        self.mailbox = mailbox

    def submit(self, call: Callable[[], Any]) -> Background:
        _ = self.mailbox.account   # created here: two threads must not race to create it
        return super().submit(call)

    def in_thread(self, call: Callable[[], Any]) -> Callable[[], Outcome]:
        deadline = run_budget.deadline

        def run() -> Outcome:
            run_budget.deadline = deadline
            before = traffic.requests
            try:
                return call(), None, traffic.requests - before
            except BaseException as exc:   # raised in the caller's thread (Pending.result)
                return None, exc, traffic.requests - before
        return run

    def carried_back(self, carried: Any) -> None:
        traffic.requests += carried   # the requests sent there count as the caller's
