"""Admin tools that reach a mailbox live: "Test connection" and the folder picker.

Both read the configuration first and only then go out to the network, so no database work
(and no transaction) is held open while a server takes its time to answer. Both answer POSTs
only: a request that reaches out must come from our own page with its CSRF token, never from
an <img src> or a link on some other site an administrator happens to open.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.forms import BaseFormSet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import URLPattern, path, reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from console.forms import EWS_ONLY_FIELDS, GRAPH_ONLY_FIELDS, OAUTH_FIELDS
from engine.mailbox import backend_class
from engine.mailbox.base import FolderInfo, MailboxBackend, MailboxError
from engine.mailbox.diagnose import DEFAULT_TIMEOUT, Report, Target, profile_target, run
from engine.records import Kind

# Several connections tested at once are tested side by side, within reason.
PARALLEL_TESTS = 4


class MailboxToolsMixin:
    """Mixed into a ModelAdmin whose objects lead to a mailbox: a "Test connection" action and
    a button of the same name on the change page."""

    change_form_template = "admin/profiles/change_form_with_test.html"
    actions = ["test_connection"]

    def test_target(self, obj: Any) -> Target:
        """Which mailbox, with which credentials, testing `obj` opens."""
        raise NotImplementedError

    def get_urls(self) -> list[URLPattern]:
        opts = self.opts  # type: ignore[attr-defined]
        # admin_view adds the CSRF check; require_POST makes it apply (GETs are never checked).
        view = self.admin_site.admin_view(  # type: ignore[attr-defined]
            require_POST(self.test_connection_view))
        return [
            path("<path:object_id>/test-connection/", view,
                 name=f"{opts.app_label}_{opts.model_name}_test_connection"),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def changeable_object(self, request: HttpRequest, object_id: str) -> models.Model:
        """The object, found through the organization-scoped queryset: another organization's
        object is answered exactly like a missing one."""
        obj = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if obj is None:
            raise Http404(_("No such object."))
        if not self.has_change_permission(request, obj):  # type: ignore[attr-defined]
            raise PermissionDenied
        return obj

    @admin.action(description=gettext_lazy("Test connection"), permissions=["change"])
    def test_connection(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        self._test_and_report(request, list(queryset))

    def test_connection_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self.changeable_object(request, object_id)
        self._test_and_report(request, [obj])
        opts = self.opts  # type: ignore[attr-defined]
        return HttpResponseRedirect(reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change", args=[quote(obj.pk)],
            current_app=self.admin_site.name))  # type: ignore[attr-defined]

    def _test_and_report(self, request: HttpRequest, objects: list[Any]) -> None:
        targets = [self.test_target(obj) for obj in objects]
        language = translation.get_language()

        def run_in_language(target: Target) -> Report:
            # The active language is per thread: the worker speaks the administrator's.
            with translation.override(language):
                return run(target)

        with ThreadPoolExecutor(max_workers=PARALLEL_TESTS) as pool:
            reports = list(pool.map(run_in_language, targets))
        for obj, report in zip(objects, reports, strict=True):
            text = _("“%(object)s”: %(message)s") % {"object": obj, "message": report.message}
            if report.mailbox and report.mailbox != str(obj):
                text += " " + _("(Tested with the mailbox %(mailbox)s.)") % {
                    "mailbox": report.mailbox}
            self.message_user(  # type: ignore[attr-defined]
                request, text, messages.SUCCESS if report.ok else messages.ERROR)


# --- the connection form -----------------------------------------------------------------------
# Each kind's own fields in a fieldset of its own, which connection_kind.js shows for that kind
# only (and the Entra ID app's where OAuth is used); ConnectionForm ignores what does not apply.
CONNECTION_FIELDSETS = (
    (None, {"fields": ("organization", "name", "kind")}),
    (gettext_lazy("Exchange Server (EWS)"), {
        "classes": ("connection-kind-ews",), "fields": EWS_ONLY_FIELDS}),
    (gettext_lazy("Exchange Online (Microsoft Graph)"), {
        "classes": ("connection-kind-graph",), "fields": GRAPH_ONLY_FIELDS}),
    (gettext_lazy("OAuth 2.0 app (Entra ID)"), {
        "classes": ("connection-oauth",), "fields": OAUTH_FIELDS}),
    (gettext_lazy("Secret and TLS"), {"fields": ("secret", "verify_tls")}),
)


# --- the folder picker --------------------------------------------------------------------------
def folder_list_url(profile: Any, kind: Kind) -> str:
    return reverse("admin:profiles_syncprofile_folders", args=[quote(profile.pk), kind.value])


def add_folder_list_url(kind: Kind) -> str:
    """The add form's folder list (console.admin_setup): asked with the form's own fields."""
    return reverse("admin:profiles_syncprofile_add_folders", args=[kind.value])


@contextlib.contextmanager
def picker_mailbox(target: Target) -> Iterator[MailboxBackend]:
    """The target's mailbox, opened for a picker an administrator is waiting on; a
    MailboxError says in words why it cannot be."""
    if target.access is None:
        raise MailboxError(target.problem)
    try:
        backend = backend_class(target.kind)
    except NotImplementedError:
        raise MailboxError(_("Mailboxes of this kind of connection cannot be read yet.")) \
            from None
    # The administrator is waiting for the list: throttling is not waited out for long.
    access = dataclasses.replace(target.access, throttle_budget_seconds=min(
        target.access.throttle_budget_seconds, DEFAULT_TIMEOUT))
    with backend(access) as mailbox:
        yield mailbox


def list_folders(target: Target, kind: Kind) -> list[FolderInfo]:
    """The mailbox's folders of `kind`, read live; a MailboxError says in words why not."""
    with picker_mailbox(target) as mailbox:
        return mailbox.list_folders(kind)


def folders_response(profile: Any, kind: str) -> JsonResponse:
    try:
        folder_kind = Kind(kind)
    except ValueError:
        raise Http404(_("No such kind of folder.")) from None
    target = profile_target(profile)
    try:
        folders = list_folders(target, folder_kind)
    except MailboxError as exc:
        return JsonResponse({"error": exc.message}, status=502)
    return JsonResponse({"kind": folder_kind.value, "folders": [
        {"id": f.id, "path": f.path, "name": f.path.rsplit("/", 1)[-1],
         "depth": f.path.count("/"), "parent_id": f.parent_id, "total": f.total}
        for f in folders]})


class FolderPickerInline:
    """An inline with a folder_path/folder_id pair filled by the "…" folder picker.

    The path is what people read; the id is what the engine uses. Both are read-only inputs
    (still submitted, unlike disabled ones): the picker sets them together, so they never
    disagree.
    """

    folder_kind: Kind

    def get_formset(self, request: HttpRequest, obj: Any = None,
                    **kwargs: Any) -> type[BaseFormSet]:
        formset = super().get_formset(request, obj, **kwargs)  # type: ignore[misc]
        fields = formset.form.base_fields
        if "folder_path" not in fields:   # shown read-only (no change permission)
            return formset
        adding = obj is None or not obj.pk
        url = add_folder_list_url(self.folder_kind) if adding \
            else folder_list_url(obj, self.folder_kind)
        hint = _("Choose it with the “…” button: the folders of the mailbox, connection and "
                 "credentials given above are listed.") if adding \
            else _("Choose it with the “…” button.")
        fields["folder_path"].widget.attrs.update({
            "readonly": True, "class": "vTextField folder-picker-path",
            "data-folder-kind": self.folder_kind.value, "data-folder-list-url": url,
            "data-folder-hint": hint,
        })
        if adding:
            # Nothing is saved yet: the picker sends the form's connection and mailbox along.
            fields["folder_path"].widget.attrs["data-folder-with-form"] = "1"
        fields["folder_path"].help_text = hint
        if "folder_id" in fields:
            fields["folder_id"].widget.attrs.update(
                {"readonly": True, "class": "folder-picker-id", "tabindex": "-1"})
        return formset
