"""What the sync engine remembers between runs, and what it reports about each run.

- `Link`: one row per pair of records kept the same (a CRM record and an Exchange item), with
  what each side looked like when last synced: its version, a hash of its synced fields and
  those fields themselves (so a later change can be told field by field and merged).
- `FolderState`: the Exchange sync state of a profile's folder and the CRM change cursor.
- `Lease`: a (profile, agenda) runs once at a time, across processes and machines.
- `Run` and `RunItem`: the history: every run, and every item it touched or planned.
- `DuplicateCandidate`: records that look like the same person but are not linked until a
  user decides.
- `Job`: when each (profile, agenda) runs next, its back-off, pause and alert state;
  `Heartbeat`: when a worker was last seen (for the health check).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from engine.reasons import describe


class Agenda(models.TextChoices):
    CONTACTS = "contacts", _("Contacts")
    CALENDAR = "calendar", _("Calendar")
    MAIL = "mail", _("E-mail import")


class Link(models.Model):
    organization_path = "profile__organization"

    class State(models.TextChoices):
        ACTIVE = "active", _("linked")
        # Deleted on one side; the deletion waits to be carried to the other side (it may need
        # an administrator's approval first: the mass-deletion guard).
        REMOTE_DELETED = "remote_deleted", _("deleted in Exchange, to delete in the CRM")
        CRM_DELETED = "crm_deleted", _("deleted in the CRM, to delete in Exchange")
        # Deleted on one side under the "unlink" policy: the other side's record is kept and
        # never synced again (until a force resync).
        UNLINKED = "unlinked", _("no longer synced")

    profile = models.ForeignKey("profiles.SyncProfile", on_delete=models.CASCADE,
                                related_name="links", verbose_name=_("sync profile"))
    agenda = models.CharField(_("agenda"), max_length=10, choices=Agenda.choices)
    crm_key = models.CharField(_("CRM record"), max_length=64)
    crm_version = models.CharField(_("CRM version"), max_length=64, blank=True)
    crm_hash = models.CharField(max_length=64, blank=True)
    crm_snapshot = models.JSONField(default=dict)
    remote_id = models.CharField(_("Exchange item"), max_length=512)
    remote_version = models.CharField(_("Exchange version"), max_length=512, blank=True)
    remote_hash = models.CharField(max_length=64, blank=True)
    remote_snapshot = models.JSONField(default=dict)
    remote_uid = models.CharField(_("meeting UID"), max_length=512, blank=True)   # events
    # Events: whether this mailbox organizes the meeting (its own appointment too). An
    # attendee deleting or declining their copy of a meeting other synced users still have
    # leaves only themselves; the organizer's deletion deletes it for all. None: not known
    # (linked before Exchange was asked, or a contact).
    organizes = models.BooleanField(null=True, blank=True)
    state = models.CharField(_("state"), max_length=20, choices=State.choices,
                             default=State.ACTIVE)
    # For people reading history.
    title = models.CharField(_("item"), max_length=255, blank=True)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "agenda", "crm_key"],
                                    name="one_link_per_crm_record"),
            models.UniqueConstraint(fields=["profile", "agenda", "remote_id"],
                                    name="one_link_per_exchange_item"),
        ]
        # Every run asks for the links waiting to be deleted: without this, a run with nothing
        # changed reads all of the profile's links to find none.
        indexes = [models.Index(fields=["profile", "agenda", "state"], name="link_state_idx")]
        verbose_name = _("link")
        verbose_name_plural = _("links")

    def __str__(self) -> str:
        return self.title or f"{self.crm_key} ↔ {self.remote_id[:12]}…"


class CrmBinding(models.Model):
    """Which CRM a profile's agenda is synced with: its links, cursors and duplicate
    candidates name that CRM's records. When the organization's CRM connection reaches
    another CRM (another kind, or another instance of one), they mean nothing there and are
    forgotten before the next run (engine/crm_switch.py)."""

    profile = models.ForeignKey("profiles.SyncProfile", on_delete=models.CASCADE,
                                related_name="crm_bindings")
    agenda = models.CharField(max_length=10, choices=Agenda.choices)
    crm = models.CharField(max_length=300)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "agenda"], name="one_crm_per_agenda"),
        ]
        verbose_name = _("CRM binding")
        verbose_name_plural = _("CRM bindings")

    def __str__(self) -> str:
        return f"{self.profile_id}/{self.agenda}: {self.crm}"


class FolderState(models.Model):
    """How far a profile's agenda has read: Exchange's sync state and the CRM's change cursor."""

    profile = models.ForeignKey("profiles.SyncProfile", on_delete=models.CASCADE,
                                related_name="folder_states")
    agenda = models.CharField(max_length=10, choices=Agenda.choices)
    folder_id = models.CharField(max_length=512)
    remote_state = models.TextField(blank=True)
    # Opaque to the engine: what the CRM backend's current_cursor() gave; "" = never read.
    crm_cursor = models.CharField(max_length=2000, blank=True, default="")
    # Calendar: the day the window was last read whole (it moves once a day).
    window_checked = models.DateField(null=True, blank=True)
    # Contacts on EWS: whether the linked items were all given their identity stamp. Links
    # made before imports and matches were stamped are stamped once (engine/run/stamps.py,
    # IdentityStamps.backfill); a folder read for the first time is stamped as it is linked.
    stamps_checked = models.BooleanField(default=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "agenda", "folder_id"],
                                    name="one_state_per_folder"),
        ]
        verbose_name = _("folder state")
        verbose_name_plural = _("folder states")

    def __str__(self) -> str:
        return f"{self.profile} {self.agenda} {self.folder_id}"


class PendingItem(models.Model):
    """An Exchange item, new and not linked, waiting for the end of the read to be matched.

    Whether an e-mail address identifies exactly one item is known only once the whole
    folder is read; the item is parked here (not in memory) so the read can checkpoint."""

    profile = models.ForeignKey("profiles.SyncProfile", on_delete=models.CASCADE,
                                related_name="+")
    agenda = models.CharField(max_length=10, choices=Agenda.choices)
    remote_id = models.CharField(max_length=512)
    match_keys = models.JSONField(default=list)    # e-mail addresses, a meeting's UID...

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "agenda", "remote_id"],
                                    name="one_pending_per_item"),
        ]
        verbose_name = _("pending item")
        verbose_name_plural = _("pending items")

    def __str__(self) -> str:
        return self.remote_id


class Retry(models.Model):
    """A record whose write failed: the next run looks at it again as if it had changed
    (its change was already read, and the sync state has moved past it)."""

    profile = models.ForeignKey("profiles.SyncProfile", on_delete=models.CASCADE,
                                related_name="+")
    agenda = models.CharField(max_length=10, choices=Agenda.choices)
    side = models.CharField(max_length=10)          # "crm" or "remote"
    key = models.CharField(max_length=512)
    reason = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "agenda", "side", "key"],
                                    name="one_retry_per_record"),
        ]
        verbose_name = _("retry")
        verbose_name_plural = _("retries")

    def __str__(self) -> str:
        return f"{self.side} {self.key}"


class Lease(models.Model):
    """Claimed with a conditional UPDATE; expires if its worker dies (ARCHITECTURE §3)."""

    profile = models.ForeignKey("profiles.SyncProfile", on_delete=models.CASCADE,
                                related_name="+")
    agenda = models.CharField(max_length=10, choices=Agenda.choices)
    holder = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "agenda"], name="one_lease_per_agenda"),
        ]
        verbose_name = _("lease")
        verbose_name_plural = _("leases")

    def __str__(self) -> str:
        return f"{self.profile} {self.agenda} until {self.expires_at:%H:%M:%S}"


class Run(models.Model):
    organization_path = "profile__organization"

    class Kind(models.TextChoices):
        SYNC = "sync", _("sync")
        ANALYSIS = "analysis", _("analysis (dry run)")

    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        SUCCESS = "success", _("success")
        PARTIAL = "partial", _("success with errors")
        FAILED = "failed", _("failed")
        WAITING = "waiting", _("waiting for approval")
        REFUSED = "refused", _("not started: another run is in progress")
        PAUSED = "paused", _("not started: paused")

    # Who or what started a run (`trigger` holds the code; new codes are shown as they are).
    TRIGGERS = {"schedule": _("schedule"), "manual": _("by hand"), "resync": _("force resync"),
                "approval": _("an administrator's approval"), "command": _("command line"),
                "change": _("a change was noticed")}

    profile = models.ForeignKey("profiles.SyncProfile", on_delete=models.CASCADE,
                                related_name="runs", verbose_name=_("sync profile"))
    agenda = models.CharField(_("agenda"), max_length=10, choices=Agenda.choices)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.SYNC)
    trigger = models.CharField(_("started by"), max_length=20, default="schedule")
    started = models.DateTimeField(_("started"), default=timezone.now, db_index=True)
    finished = models.DateTimeField(_("finished"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices,
                              default=Status.RUNNING)
    message = models.TextField(_("message"), blank=True)
    crm_created = models.PositiveIntegerField(_("created in the CRM"), default=0)
    crm_updated = models.PositiveIntegerField(_("updated in the CRM"), default=0)
    crm_deleted = models.PositiveIntegerField(_("deleted in the CRM"), default=0)
    remote_created = models.PositiveIntegerField(_("created in Exchange"), default=0)
    remote_updated = models.PositiveIntegerField(_("updated in Exchange"), default=0)
    remote_deleted = models.PositiveIntegerField(_("deleted in Exchange"), default=0)
    linked = models.PositiveIntegerField(_("linked"), default=0)
    conflicts = models.PositiveIntegerField(_("conflicts"), default=0)
    skipped = models.PositiveIntegerField(_("skipped"), default=0)
    errors = models.PositiveIntegerField(_("errors"), default=0)
    duplicates = models.PositiveIntegerField(_("duplicate candidates"), default=0)
    requests = models.PositiveIntegerField(_("Exchange requests"), default=0)
    # Live progress for the dashboard while the run goes on (engine.progress writes it):
    # records handled, records known so far (0: not known yet) and what the run is doing.
    progress_done = models.PositiveIntegerField(_("records handled"), default=0)
    progress_total = models.PositiveIntegerField(_("records known"), default=0)
    progress_note = models.CharField(_("doing now"), max_length=200, blank=True)
    # The mass-deletion and mass-creation guards: an administrator approves what a run stopped
    # before; the next run carries it out.
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                    null=True, blank=True, related_name="+",
                                    verbose_name=_("approved by"))
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True)
    approval_used = models.BooleanField(_("approval used"), default=False)

    class Meta:
        ordering = ["-started"]
        indexes = [models.Index(fields=["profile", "agenda", "-started"])]
        verbose_name = _("sync run")
        verbose_name_plural = _("sync runs")

    def __str__(self) -> str:
        return f"{self.profile} {self.get_agenda_display()} {self.started:%Y-%m-%d %H:%M}"

    def get_trigger_display(self) -> str:
        return str(self.TRIGGERS.get(self.trigger, self.trigger))

    @property
    def duration(self) -> float | None:
        if self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()


class RunItem(models.Model):
    organization_path = "run__profile__organization"

    class Action(models.TextChoices):
        CREATE_CRM = "create_crm", _("created in the CRM")
        UPDATE_CRM = "update_crm", _("updated in the CRM")
        DELETE_CRM = "delete_crm", _("deleted in the CRM")
        CREATE_REMOTE = "create_remote", _("created in Exchange")
        UPDATE_REMOTE = "update_remote", _("updated in Exchange")
        DELETE_REMOTE = "delete_remote", _("deleted in Exchange")
        LINK = "link", _("linked")
        UNLINK = "unlink", _("no longer synced")
        CONFLICT = "conflict", _("conflict resolved")
        DUPLICATE = "duplicate", _("possible duplicate: waits for a decision")
        SKIP = "skip", _("skipped")
        ERROR = "error", _("error")
        PENDING_DELETE = "pending_delete", _("deletion waiting for approval")
        PENDING_CREATE = "pending_create", _("creation waiting for approval")

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="items",
                            verbose_name=_("sync run"))
    action = models.CharField(_("what"), max_length=20, choices=Action.choices)
    title = models.CharField(_("item"), max_length=255, blank=True)
    crm_key = models.CharField(_("CRM record"), max_length=64, blank=True)
    remote_id = models.CharField(_("Exchange item"), max_length=512, blank=True)
    # Why, which fields, or the error text: in English, shown translated (`reason`).
    detail = models.TextField(_("reason or error"), blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("run item")
        verbose_name_plural = _("run items")

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.title}"

    @property
    def reason(self) -> str:
        """The detail in the reader's language (stored in English: engine/reasons.py)."""
        return describe(self.detail)


class DuplicateCandidate(models.Model):
    organization_path = "profile__organization"

    class Decision(models.TextChoices):
        OPEN = "open", _("waiting for a decision")
        LINKED = "linked", _("linked")
        APART = "apart", _("kept apart")

    profile = models.ForeignKey("profiles.SyncProfile", on_delete=models.CASCADE,
                                related_name="duplicate_candidates",
                                verbose_name=_("sync profile"))
    agenda = models.CharField(_("agenda"), max_length=10, choices=Agenda.choices,
                              default=Agenda.CONTACTS)
    crm_key = models.CharField(_("CRM record"), max_length=64)
    remote_id = models.CharField(_("Exchange item"), max_length=512)
    address = models.CharField(_("shared address"), max_length=254, blank=True)
    crm_title = models.CharField(_("in the CRM"), max_length=255, blank=True)
    remote_title = models.CharField(_("in Exchange"), max_length=255, blank=True)
    # The Exchange record's synced fields as last found (canonical data): the report shows
    # them beside the CRM record without asking Exchange.
    remote_fields = models.JSONField(default=dict, blank=True)
    decision = models.CharField(_("decision"), max_length=10, choices=Decision.choices,
                                default=Decision.OPEN)
    found = models.DateTimeField(_("found"), default=timezone.now)
    decided = models.DateTimeField(_("decided"), null=True, blank=True)
    applied = models.BooleanField(default=False)   # the next run carried the decision out

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "agenda", "crm_key", "remote_id"],
                                    name="one_candidate_per_pair"),
        ]
        verbose_name = _("duplicate candidate")
        verbose_name_plural = _("duplicate candidates")

    def __str__(self) -> str:
        return f"{self.crm_title} ~ {self.remote_title} ({self.shared})"

    @property
    def shared(self) -> str:
        """What the pair shares, in the reader's language: an address, or for meetings a
        phrase the engine writes in English ("the same meeting UID")."""
        return describe(self.address)


class Job(models.Model):
    """When one agenda of one profile runs next, and how its recent runs went.

    One row per enabled agenda of each active profile (kept up to date by `engine.jobs`). The
    dispatcher moves `next_run_at` forward before it enqueues a run, so a slow queue never gets
    the same job twice; failures push it further out (exponential back-off)."""

    organization_path = "profile__organization"

    profile = models.ForeignKey("profiles.SyncProfile", on_delete=models.CASCADE,
                                related_name="jobs", verbose_name=_("sync profile"))
    agenda = models.CharField(_("agenda"), max_length=10, choices=Agenda.choices)
    next_run_at = models.DateTimeField(_("next run"), default=timezone.now, db_index=True)
    paused = models.BooleanField(_("paused"), default=False)
    enqueued_at = models.DateTimeField(_("last enqueued"), null=True, blank=True)
    last_run = models.ForeignKey(Run, on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="+", verbose_name=_("last run"))
    last_run_at = models.DateTimeField(_("last run finished"), null=True, blank=True)
    last_status = models.CharField(_("last result"), max_length=10, choices=Run.Status.choices,
                                   blank=True)
    last_message = models.TextField(_("last message"), blank=True)
    last_success_at = models.DateTimeField(_("last success"), null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(_("failures in a row"), default=0)
    # An incident: the administrators were told this job is failing. Cleared (and a
    # "recovered" message sent) by the next successful run; one message per incident.
    alerted_at = models.DateTimeField(_("alert sent"), null=True, blank=True)
    alert_reason = models.TextField(_("alert reason"), blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "agenda"], name="one_job_per_agenda"),
        ]
        ordering = ["next_run_at"]
        verbose_name = _("scheduled job")
        verbose_name_plural = _("scheduled jobs")

    def __str__(self) -> str:
        return f"{self.profile} {self.get_agenda_display()}"


class Heartbeat(models.Model):
    """When a background worker last did something (the dispatcher writes it every minute).

    Kept in the database, not the cache: the default cache is per process, and the health
    check runs in the web process while the worker runs elsewhere."""

    name = models.CharField(max_length=50, primary_key=True)
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("heartbeat")
        verbose_name_plural = _("heartbeats")

    def __str__(self) -> str:
        return f"{self.name} {self.seen_at:%Y-%m-%d %H:%M:%S}"


# The Raynet backend's journal of known ids and its instances' budgets (their own module).
from engine.raynet_models import RaynetInstance, RaynetKnownRecord  # noqa: E402, F401
