"""E-mail alerts to an organization's administrators when a profile's agenda keeps failing.

An *incident* opens when an agenda has failed `ALERT_AFTER_FAILURES` times in a row, or at once
when Exchange rejects the credentials (waiting would not help); its administrators (and the
organization's extra alert addresses) get one message. The incident stays open, and silent,
until a run succeeds again; then one "recovered" message closes it. The incident is stored on
the job, claimed with a conditional UPDATE, so two workers never send the same message twice.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.utils import timezone
from django.utils.translation import gettext as _

from engine.models import Job, Run
from profiles.models import Membership

if TYPE_CHECKING:
    from profiles.models import Organization, SyncProfile

log = logging.getLogger(__name__)

# What AuthenticationFailed's message starts with (engine/mailbox/ews_errors.py translate_error).
AUTHENTICATION_FAILED = "Authentication failed"


def recipients(organization: Organization) -> list[str]:
    """The organization's administrators and its extra alert addresses, each once."""
    User = get_user_model()
    addresses = list(User.objects.filter(
        membership__organization=organization, membership__role=Membership.Role.ADMIN,
        is_active=True).exclude(email="").values_list("email", flat=True))
    addresses += [a for a in re.split(r"[\s,;]+", organization.alert_emails or "") if a]
    seen: set[str] = set()
    unique = []
    for address in addresses:
        if address.lower() not in seen:
            seen.add(address.lower())
            unique.append(address)
    return unique


def after_run(job: Job, profile: SyncProfile, run: Run) -> None:
    """Open or close the job's incident after a (non-dry) run, sending the message once."""
    if run.status == Run.Status.FAILED:
        rejected = AUTHENTICATION_FAILED.lower() in (run.message or "").lower()
        if rejected or job.consecutive_failures >= settings.ALERT_AFTER_FAILURES:
            _open_incident(job, profile, run, rejected)
    elif run.status != Run.Status.REFUSED and job.alerted_at is not None:
        _close_incident(job, profile, run)


def _open_incident(job: Job, profile: SyncProfile, run: Run, rejected: bool) -> None:
    now = timezone.now()
    if not Job.objects.filter(pk=job.pk, alerted_at__isnull=True).update(
            alerted_at=now, alert_reason=run.message):
        return   # already told about this incident
    job.alerted_at, job.alert_reason = now, run.message
    values = {"mailbox": profile.mailbox, "agenda": run.get_agenda_display(),
              "count": job.consecutive_failures, "message": run.message}
    if rejected:
        subject = _("Sync of %(mailbox)s: Exchange rejected the credentials") % values
        lead = _("Exchange rejected the credentials used to sync %(agenda)s of the mailbox "
                 "%(mailbox)s. Syncing of this mailbox stops working until they are "
                 "corrected in the mailbox connection or the sync profile.") % values
    else:
        subject = _("Sync of %(mailbox)s keeps failing") % values
        lead = _("The sync of %(agenda)s of the mailbox %(mailbox)s has failed %(count)d "
                 "times in a row. It keeps being retried, less often.") % values
    body = "\n\n".join([
        lead,
        _("The last error: %(message)s") % values,
        _("You get one message per problem, and another one when the sync works again. "
          "The sync history is in the admin under “Sync runs”."),
    ])
    if not _send(profile, subject, body):
        # Not delivered: let the next failure try again rather than stay silent for good.
        Job.objects.filter(pk=job.pk, alerted_at=now).update(alerted_at=None, alert_reason="")
        job.alerted_at, job.alert_reason = None, ""


def _close_incident(job: Job, profile: SyncProfile, run: Run) -> None:
    if not Job.objects.filter(pk=job.pk, alerted_at__isnull=False).update(
            alerted_at=None, alert_reason=""):
        return
    job.alerted_at, job.alert_reason = None, ""
    values = {"mailbox": profile.mailbox, "agenda": run.get_agenda_display(),
              "status": run.get_status_display()}
    subject = _("Sync of %(mailbox)s works again") % values
    body = _("The sync of %(agenda)s of the mailbox %(mailbox)s works again "
             "(last run: %(status)s).") % values
    _send(profile, subject, body)


def _send(profile: SyncProfile, subject: str, body: str) -> bool:
    to = recipients(profile.organization)
    if not to:
        log.warning("No one to alert for %s (no administrator with an e-mail address): %s",
                    profile, subject)
        return True   # nothing to retry: the incident is noted on the job
    try:
        send_mail(subject, body, None, to)
    except Exception:
        log.exception("Could not send the alert %r to %s", subject, to)
        return False
    return True
