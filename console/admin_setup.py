"""Setting up a new sync profile in the admin: it starts inactive, and its folders can be
picked before its first save.

The add form's folder picker asks with the form's own connection, mailbox and (for a
connection without an account of its own) mailbox user name and password, as typed. The rules
of the change page's picker hold: POST only, so the CSRF check applies; the connection is
looked up among the administrator's organization's only (another organization's is answered
like a missing one, and nothing is sent); the request leaves through the outbound address
policy of the mailbox backend, to the connection's stored URL only.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from console.admin_mailbox import folders_response
from profiles.admin_scoping import restrict_to_organization
from profiles.models import MailboxConnection, SyncProfile
from profiles.setup import ACTIVE_HELP, ACTIVE_ON_ADD_HELP

ADD_FOLDERS_URL_NAME = "profiles_syncprofile_add_folders"


class ProfileSetupMixin:
    """Mixed into SyncProfileAdmin: "active" unticked on the add form, and the add form's
    folder picker."""

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)  # type: ignore[misc]
        initial.setdefault("active", False)
        return initial

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any):  # type: ignore[no-untyped-def]
        form = super().get_form(request, obj, **kwargs)  # type: ignore[misc]
        if "active" in form.base_fields:
            form.base_fields["active"].help_text = ACTIVE_HELP if obj is not None \
                else ACTIVE_ON_ADD_HELP
        return form

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "GET":
            profile = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
            if profile is not None and not profile.active:
                # Said at the top, not only beside the checkbox: a profile left inactive by
                # mistake never syncs, and nothing else on the page shows it.
                messages.warning(request, _(
                    "This profile is inactive: nothing syncs it. When its folders and options "
                    "are set, tick “active” and save."))
        return super().change_view(  # type: ignore[misc]
            request, object_id, form_url, extra_context)

    def get_urls(self) -> list[URLPattern]:
        # Before the admin's own, whose catch-all would read it as an object id; no
        # "/folders/" in it, which the change page's picker URL ends with.
        view = self.admin_site.admin_view(  # type: ignore[attr-defined]
            require_POST(self.add_folders_view))
        return [path("add-folders/<str:kind>/", view, name=ADD_FOLDERS_URL_NAME),
                *super().get_urls()]  # type: ignore[misc]

    def add_folders_view(self, request: HttpRequest, kind: str) -> JsonResponse:
        """The folders of the mailbox the add form names, for its "…" folder picker (JSON)."""
        if not self.has_add_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        profile = unsaved_profile(request)
        if isinstance(profile, str):
            return JsonResponse({"error": profile}, status=400)
        return folders_response(profile, kind)


def unsaved_profile(request: HttpRequest) -> SyncProfile | str:
    """The profile the add form describes so far, or in words what it still lacks."""
    data = request.POST
    connection = restrict_to_organization(MailboxConnection.objects.all(), request).filter(
        pk=data.get("connection") if str(data.get("connection", "")).isdigit() else None
    ).first()
    if connection is None:
        return _("Choose the connection above first.")
    mailbox = data.get("mailbox", "").strip().lower()
    try:
        validate_email(mailbox)
    except ValidationError:
        return _("Give the mailbox's SMTP address above first.")
    profile = SyncProfile(connection=connection, mailbox=mailbox,
                          mailbox_username=data.get("mailbox_username", "").strip())
    if not connection.uses_own_credentials:
        if not profile.mailbox_username or not data.get("mailbox_secret"):
            return _("The connection “%(name)s” signs in with each profile's own credentials: "
                     "give the mailbox user name and password above first.") % {
                "name": connection.name}
        profile.set_mailbox_secret(data["mailbox_secret"])
    return profile
