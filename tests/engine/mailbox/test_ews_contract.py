"""The mailbox contract run against ewsim through EwsMailbox; "another client" is ewsim's
control plane, which edits the store directly as Outlook would."""

from __future__ import annotations

import pytest

from engine.mailbox.base import Category, FolderInfo, MailboxBackend
from engine.mailbox.ews import EwsMailbox
from engine.records import Kind
from ewsim.testing import SimHandle
from tests.engine.conftest import access_to
from tests.engine.mailbox.contract import WELL_KNOWN, MailboxContract

FOLDER_CLASS = {Kind.CONTACTS: "IPF.Contact", Kind.CALENDAR: "IPF.Appointment",
                Kind.MAIL: "IPF.Note"}
# Record field -> the EWS element another client edits.
ELEMENT = {"company": "CompanyName", "location": "Location", "subject": "Subject"}
# Requests that actually send something (ewsim logs SendToNone requests too).
SENDING_KEYS = ("send_meeting_invitations", "send_meeting_invitations_or_cancellations",
                "send_meeting_cancellations")


class TestEwsMailbox(MailboxContract):
    @pytest.fixture(autouse=True)
    def _simulator(self, ewsim: SimHandle) -> None:
        # `ewsim` resets the simulator for every test: the mailbox starts empty.
        self.sim = ewsim

    def open_backend(self) -> MailboxBackend:
        return EwsMailbox(access_to(self.sim))

    def make_folder(self, kind: Kind, name: str) -> str:
        answer = self.sim.control.call("POST", "folders", {
            "mailbox": self.sim.user, "parent": WELL_KNOWN[kind], "name": name,
            "folder_class": FOLDER_CLASS[kind]})
        return str(answer["id"])

    def create_elsewhere(self, folder: FolderInfo, label: str) -> str:
        control = self.sim.control
        if folder.kind is Kind.CONTACTS:
            answer = control.create_item(self.sim.user, folder=folder.id, tag="Contact",
                                         DisplayName=label, GivenName=label)
        elif folder.kind is Kind.CALENDAR:
            answer = control.create_item(self.sim.user, folder=folder.id, tag="CalendarItem",
                                         Subject=label, Start="2030-03-07T09:00:00Z",
                                         End="2030-03-07T10:00:00Z")
        else:
            answer = control.create_item(self.sim.user, folder=folder.id, Subject=label)
        return str(answer["id"])

    def edit_elsewhere(self, kind: Kind, item_id: str, field: str, value: str) -> None:
        self.sim.control.update_item(item_id, **{ELEMENT[field]: value})

    def delete_elsewhere(self, item_id: str) -> None:
        self.sim.control.delete_item(item_id)

    def move_elsewhere(self, item_id: str, folder_id: str) -> None:
        self.sim.control.move_item(item_id, folder_id)

    def deliver(self, mime: bytes) -> None:
        self.sim.control.deliver(self.sim.user, mime=mime)

    def set_categories_elsewhere(self, categories: list[Category] | None) -> None:
        self.sim.control.set_categories(self.sim.user, None if categories is None else [
            {"name": c.name, "color": c.color} for c in categories])

    def invitations_sent(self) -> list[str]:
        sent = []
        for entry in self.sim.control.sent():
            if entry.get("disposition") or any(
                    entry.get(key) not in (None, "SendToNone") for key in SENDING_KEYS):
                sent.append(str(entry.get("item_id") or entry.get("subject")))
        return sent
