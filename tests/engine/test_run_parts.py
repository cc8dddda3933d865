"""The parts a run is made of (engine/run/): the CRM changes it still has to look at, its
journal, and the link table a dry run gets, which keeps no write."""

from __future__ import annotations

from engine.crmstore.base import CrmChange
from engine.models import FolderState, Link, PendingItem, Retry, Run, RunItem
from engine.planner import Seen
from engine.records import ContactRecord
from engine.run.crm_changes import PendingCrmChanges
from engine.run.journal import Journal
from engine.run.link_table import DryRunLinkTable, LinkTable, link_table
from tests.base import BaseTestCase


class PendingCrmChangesTestCase(BaseTestCase):
    def test_a_change_taken_is_not_carried_over(self) -> None:
        pending = PendingCrmChanges([CrmChange("1", False, "5"), CrmChange("2", False, "6")])
        pending.take("1")
        assert list(pending) == ["2"] and "1" not in pending and len(pending) == 1

    def test_the_crm_side_of_a_pair_is_none_when_it_did_not_change(self) -> None:
        pending = PendingCrmChanges()
        assert pending.take_side("7", {}) is None

    def test_the_crm_side_of_a_pair_gone_from_the_crm_is_a_side_without_record(self) -> None:
        pending = PendingCrmChanges([CrmChange("7", True, "9")])
        side = pending.take_side("7", {})
        assert side is not None and side.key == "7" and side.record is None
        assert "7" not in pending

    def test_the_crm_side_of_a_pair_is_the_record_read(self) -> None:
        read = Seen("7", "12", ContactRecord(first_name="Eva"))
        pending = PendingCrmChanges([CrmChange("7", False, "12")])
        assert pending.take_side("7", {"7": read}) is read

    def test_looking_again_keeps_a_change_already_pending(self) -> None:
        pending = PendingCrmChanges([CrmChange("3", True, "4")])
        pending.look_again("3")
        pending.look_again("8")
        assert pending.is_deletion("3") and not pending.is_deletion("8")
        assert sorted(pending) == ["3", "8"]

    def test_revisions_leave_out_deletions_and_records_only_looked_at_again(self) -> None:
        pending = PendingCrmChanges([CrmChange("1", False, "5"), CrmChange("2", True, "6")])
        pending.look_again("3")
        assert pending.versions() == {"1": "5"}


class DryRunLinkTableTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.profile = self.make_profile(self.acme, self.dave, "dave@acme.example")

    def test_a_dry_run_gets_the_table_without_writes(self) -> None:
        assert isinstance(link_table(self.profile, "contacts", dry_run=True), DryRunLinkTable)
        assert type(link_table(self.profile, "contacts", dry_run=False)) is LinkTable

    def test_items_a_dry_run_parks_are_kept_in_memory_only(self) -> None:
        table = DryRunLinkTable(self.profile, "contacts")
        table.park([("item-1", ["eva@acme.cz"]), ("item-2", [])])
        table.unpark(["item-1"])
        assert table.parked() == [("item-1", ["eva@acme.cz"]), ("item-2", [])]
        assert not PendingItem.objects.exists()

    def test_a_dry_run_stores_no_state_link_or_retry(self) -> None:
        table = DryRunLinkTable(self.profile, "contacts")
        state = table.folder_state("contacts")
        table.save_state(state, remote_state="after")
        table.retry_later("crm", "7", "failed")
        table.store_link("7", {"remote_id": "item-7"})
        assert FolderState.objects.get(pk=state.pk).remote_state == ""
        assert state.remote_state == ""
        assert not Retry.objects.exists() and not Link.objects.exists()

    def test_a_sync_stores_them(self) -> None:
        table = LinkTable(self.profile, "contacts")
        state = table.folder_state("contacts")
        table.save_state(state, remote_state="after")
        table.park([("item-1", ["eva@acme.cz"])])
        table.retry_later("crm", "7", "failed")
        assert FolderState.objects.get(pk=state.pk).remote_state == "after"
        assert table.parked() == [("item-1", ["eva@acme.cz"])]
        assert [(r.side, r.key) for r in table.retries()] == [("crm", "7")]


class JournalTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.profile = self.make_profile(self.acme, self.dave, "dave@acme.example")

    def started(self, journal: Journal) -> Run:
        return journal.conduct(lambda: False, lambda: 0)

    def test_lines_count_in_the_run_and_on_its_row(self) -> None:
        journal = Journal(self.profile, "contacts")
        run = self.started(journal)
        journal.line(RunItem.Action.SKIP, "Eva", detail="not in the chosen categories")
        assert run.skipped == 1
        assert Run.objects.get(pk=run.pk).skipped == 1

    def test_lines_written_together_are_saved_at_the_end_and_counted(self) -> None:
        journal = Journal(self.profile, "contacts")
        run = self.started(journal)
        with journal.together():
            journal.line(RunItem.Action.LINK, "Eva")
            journal.line(RunItem.Action.LINK, "Petr")
            assert not RunItem.objects.filter(run=run).exists()
        assert RunItem.objects.filter(run=run).count() == 2
        assert Run.objects.get(pk=run.pk).linked == 2

    def test_lines_written_together_are_dropped_if_what_runs_inside_fails(self) -> None:
        journal = Journal(self.profile, "contacts")
        run = self.started(journal)
        try:
            with journal.together():
                journal.line(RunItem.Action.LINK, "Eva")
                raise ValueError("the batch failed")
        except ValueError:
            pass
        assert not RunItem.objects.filter(run=run).exists()
        journal.line(RunItem.Action.LINK, "Petr")   # written on its own again
        assert RunItem.objects.filter(run=run).count() == 1

    def test_a_dry_run_is_an_analysis_whose_lines_are_kept(self) -> None:
        journal = Journal(self.profile, "contacts", dry_run=True)
        run = self.started(journal)
        journal.line(RunItem.Action.CREATE_CRM, "Eva")
        assert run.kind == Run.Kind.ANALYSIS and run.crm_created == 1
        assert RunItem.objects.filter(run=run).count() == 1

    def test_what_the_work_raises_is_the_runs_message(self) -> None:
        def fails() -> bool:
            raise RuntimeError("boom")

        run = Journal(self.profile, "contacts").conduct(fails, lambda: 3)
        assert run.status == Run.Status.FAILED and run.message and run.requests == 3

    def test_a_second_run_while_the_first_holds_the_lease_is_refused(self) -> None:
        first = Journal(self.profile, "contacts")
        inner: list[Run] = []
        first.conduct(lambda: bool(inner.append(self.started(Journal(self.profile,
                                                                     "contacts")))),
                      lambda: 0)
        assert inner[0].status == Run.Status.REFUSED
