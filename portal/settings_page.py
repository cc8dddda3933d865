""""My sync settings": a user changes the options of their own profiles that their
organization's administrator has made theirs (Organization.self_service).

Only the signed-in user's own profiles (`SyncProfile.user`) are on the page, administrators'
included: an administrator changes other people's profiles in the admin. A profile that is not
the user's, or of which nothing is theirs to change, does not exist here (404).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from console.admin_mailbox import folders_response
from engine.records import Kind
from portal.access import Viewer
from portal.own_settings import OwnSettings, may_list_folders, picker_texts
from profiles.models import SyncProfile


def own_profiles(user: Viewer) -> QuerySet[SyncProfile]:
    if not (user.is_authenticated and user.is_active):
        return SyncProfile.objects.none()
    return SyncProfile.objects.filter(user=user).select_related("organization", "connection")


def own_settings_or_404(user: Viewer, pk: int) -> OwnSettings:
    settings = OwnSettings.of(get_object_or_404(own_profiles(user), pk=pk))
    if not settings.editable:
        raise Http404(_("Nothing of this profile is yours to change."))
    return settings


def _page(request: HttpRequest, bound: OwnSettings | None = None) -> HttpResponse:
    pages = [bound if bound is not None and bound.profile.pk == profile.pk
             else OwnSettings.of(profile) for profile in own_profiles(request.user)]
    return render(request, "portal/my_settings.html",
                  {"pages": pages, "picker_texts": picker_texts()})


@login_required
@require_GET
def my_settings(request: HttpRequest) -> HttpResponse:
    return _page(request)


@login_required
@require_POST
def save(request: HttpRequest, pk: int) -> HttpResponse:
    profile = own_settings_or_404(request.user, pk).profile
    settings = OwnSettings.of(profile, request.POST)
    if not settings.is_valid():
        messages.error(request, _("Nothing was saved: correct the errors below."))
        return _page(request, settings)
    settings.save()
    messages.success(request, _("The settings of %(mailbox)s are saved; the next sync uses "
                                "them.") % {"mailbox": settings.profile.mailbox})
    return redirect(reverse("portal:my_settings") + f"#profile-{pk}")


@login_required
@require_POST
def folders(request: HttpRequest, pk: int, kind: str) -> JsonResponse:
    """The user's own mailbox's folders of one kind, for the "…" picker. A POST with the
    page's CSRF token, as in the admin: listing reaches out to the mail server."""
    profile = get_object_or_404(own_profiles(request.user), pk=pk)
    try:
        folder_kind = Kind(kind)
    except ValueError:
        raise Http404(_("No such kind of folder.")) from None
    if not may_list_folders(profile, folder_kind):
        raise Http404(_("These folders are not yours to choose."))
    return folders_response(profile, folder_kind.value)
