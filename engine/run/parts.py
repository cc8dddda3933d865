"""What every part of a two-way run reaches: the run's journal, link table, rules, the two
sides and the helpers TwoWaySync (engine/run/flow.py) sets up before the run starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.agendas.base import AgendaRules
    from engine.crmstore.base import CrmBackend
    from engine.mailbox.base import FolderInfo, MailboxBackend
    from engine.planner import Policy
    from engine.records import Kind
    from engine.run.executor import Executor
    from engine.run.journal import Journal
    from engine.run.link_table import LinkTable
    from engine.run.recording import Recorder
    from engine.run.stamps import IdentityStamps


class RunPart:
    """A part of TwoWaySync (reading Exchange, the mass guards): the run's shared state."""

    journal: Journal
    links: LinkTable
    rules: AgendaRules
    mailbox: MailboxBackend
    crm: CrmBackend
    kind: Kind
    policy: Policy
    folder: FolderInfo
    executor: Executor
    recorder: Recorder
    stamps: IdentityStamps
