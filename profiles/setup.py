"""A new profile waits until it is set up: what is said about an inactive profile, wherever.

A profile that started syncing as soon as it was first saved wrote the CRM's persons into the
mailbox's default folders before an administrator could choose the right ones (and a change
of folder afterwards is a move: `console.folder_change`). So the admin's add form leaves
"Active" unticked, and nothing runs for an inactive profile: no schedule, no change
notification, no Sync now (`engine.jobs.run_job` refuses any sync of it). Analyze still
works: it writes nothing, and shows what the first sync would do.
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from profiles.models import SyncProfile

ACTIVE_ON_ADD_HELP = gettext_lazy(
    "Left unticked, the new profile is saved but not synced: choose its folders and options "
    "first (Analyze shows what the first sync would do), then tick “active” and save to start "
    "it. An inactive profile is never synced: not on schedule, not on changes, not by Sync "
    "now.")
ACTIVE_HELP = gettext_lazy(
    "An inactive profile is never synced: not on schedule, not on changes, not by Sync now. "
    "Analyze still shows what a sync would do.")


def inactive_message(profile: SyncProfile, *, administrator: bool = True) -> str:
    """Why a Sync now of an inactive profile queued nothing, said to who asked."""
    if administrator:
        return _("“%(profile)s” is inactive, so it is not synced: tick “active” on its page "
                 "and save when it is set up. (Analyze works without it.)") % {
            "profile": profile}
    return _("%(profile)s is not being synced yet: an administrator starts it once it is set "
             "up.") % {"profile": profile}
