"""The mailbox contract run against ewsim's Graph front door through GraphMailbox, unchanged;
"another client" is ewsim's control plane on the same store, as for EWS.

The backend signs in as an app-only OAuth client through MSAL (client secret), with the
simulator's TLS listener as its authority; Graph requests go to its plain-http listener.
"""

from __future__ import annotations

import pytest

from engine.mailbox.base import Category, FolderInfo, MailboxBackend
from engine.mailbox.graph import GraphMailbox
from engine.records import Kind
from ewsim.testing import SimHandle
from tests.engine.mailbox import test_ews_contract as ews
from tests.engine.mailbox.contract import MailboxContract
from tests.engine.mailbox.graph_access import graph_access, immutable_id, store_id

# Contract tests Graph cannot pass, and why. Strict: should one pass, the suite says so.
KNOWN_LIMITS = {
    "test_a_full_read_returns_every_created_item_with_its_fields_in_pages[calendar]":
        "Graph mails invitations whenever an event is written with attendees (it has no "
        "SendToNone), so the Graph backend never writes attendees: a meeting written with "
        "attendees reads back without them (docs/graph.md, Limits).",
}


class TestGraphMailbox(MailboxContract):
    @pytest.fixture(autouse=True)
    def _simulator(self, ewsim: SimHandle, request: pytest.FixtureRequest) -> None:
        self.sim = ewsim
        self.access = graph_access(ewsim)
        reason = KNOWN_LIMITS.get(request.node.name)
        if reason:
            request.applymarker(pytest.mark.xfail(reason=reason, strict=True))

    def open_backend(self) -> MailboxBackend:
        return GraphMailbox(self.access)

    # The control plane answers with the store's ids; Graph names items by immutable ids.
    def make_folder(self, kind: Kind, name: str) -> str:
        return ews.TestEwsMailbox.make_folder(self, kind, name)  # type: ignore[arg-type]

    def create_elsewhere(self, folder: FolderInfo, label: str) -> str:
        made = ews.TestEwsMailbox.create_elsewhere(self, folder, label)  # type: ignore[arg-type]
        return immutable_id(self.sim, made)

    def edit_elsewhere(self, kind: Kind, item_id: str, field: str, value: str) -> None:
        ews.TestEwsMailbox.edit_elsewhere(self, kind, store_id(self.sim, item_id), field,  # type: ignore[arg-type]
                                      value)

    def delete_elsewhere(self, item_id: str) -> None:
        self.sim.control.delete_item(store_id(self.sim, item_id))

    def move_elsewhere(self, item_id: str, folder_id: str) -> None:
        self.sim.control.move_item(store_id(self.sim, item_id), folder_id)

    def deliver(self, mime: bytes) -> None:
        self.sim.control.deliver(self.sim.user, mime=mime)

    def set_categories_elsewhere(self, categories: list[Category] | None) -> None:
        ews.TestEwsMailbox.set_categories_elsewhere(self, categories)  # type: ignore[arg-type]

    def invitations_sent(self) -> list[str]:
        sent = [str(entry.get("item_id") or entry.get("subject"))
                for entry in self.sim.control.invitations()]
        return sent + ews.TestEwsMailbox.invitations_sent(self)  # type: ignore[arg-type]
