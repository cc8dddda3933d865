"""The admin for the configuration: organizations, users, connections and sync profiles."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from console import admin_audit  # noqa: F401  (registers the audit log)
from console.admin_columns import synced_agendas
from console.admin_crm import CrmCapabilityInline  # (registers CRM connections too)
from console.admin_mailbox import (
    CONNECTION_FIELDSETS,
    FolderPickerInline,
    MailboxToolsMixin,
    folders_response,
)
from console.admin_setup import ProfileSetupMixin
from console.attachment_picker import AttachmentDirectoryInline, AttachmentPickerAdminMixin
from console.category_picker import CategoryPickerAdminMixin, CategoryPickerInline
from console.folder_change import FolderChangeInline
from console.forms import (
    CategoryPairingFormSet,
    ConnectionForm,
    ContactSettingsForm,
    MembershipFormSet,
    OneToOneInlineFormSet,
    ProfileForm,
    SecretInput,
    WriteOnlySecretForm,
)
from engine.admin_operations import OPERATION_ACTIONS, SyncOperationsMixin
from engine.crmstore.base import Capability
from engine.mailbox.diagnose import Target, connection_target, profile_target
from engine.records import Kind
from mailimport.smb_diagnose import check_share
from profiles.admin_scoping import OrganizationScopedAdmin, OrganizationScopedMixin
from profiles.models import (
    CalendarSettings,
    CategoryPairing,
    ContactSettings,
    MailboxConnection,
    MailFolder,
    MailSettings,
    Membership,
    Organization,
    SyncProfile,
)
from profiles.scoping import organization_of, sees_everything

User = get_user_model()


# Where an organization's attachments go: set by a superuser only, as its roots.
SHARE_FIELDS = ["attachment_storage", "share_username", "share_port",
                "share_requires_encryption"]


class OrganizationShareForm(WriteOnlySecretForm):
    secret_field = "share_password"
    has_secret_attribute = "has_share_secret"
    set_secret_method = "set_share_secret"

    share_password = forms.CharField(label=_("share password"), required=False, strip=False,
                                     widget=SecretInput())

    class Meta:
        model = Organization
        fields = "__all__"


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdmin):
    list_display = ["name", "attachment_storage", "created"]
    search_fields = ["name"]
    actions = ["test_attachment_share"]

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        # The share's password is the operator's, as the roots are: only a superuser's form
        # has the field at all (a read-only field would still take a posted value).
        if sees_everything(request.user):
            kwargs["form"] = OrganizationShareForm
        return super().get_form(request, obj, **kwargs)

    # A "Test the attachment share" button on the change page beside the action: a POST form
    # of its own (testing reaches out to the file server; a GET could be set off by any page).
    change_form_template = "admin/profiles/organization/change_form.html"

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(require_POST(self.test_share_view))
        return [path("<path:object_id>/test-share/", view,
                     name="profiles_organization_test_share"), *super().get_urls()]

    @admin.action(description=_("Test the attachment share"), permissions=["change"])
    def test_attachment_share(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        for organization in queryset:
            self._report_share(request, organization)

    def test_share_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        # Found through the organization-scoped queryset: another organization is answered
        # exactly like a missing one.
        organization = self.get_object(request, unquote(object_id))
        if organization is None:
            raise Http404(_("No such object."))
        if not self.has_change_permission(request, organization):
            raise PermissionDenied
        self._report_share(request, organization)
        return HttpResponseRedirect(reverse("admin:profiles_organization_change",
                                            args=[quote(organization.pk)],
                                            current_app=self.admin_site.name))

    def _report_share(self, request: HttpRequest, organization: Organization) -> None:
        if not organization.on_share():
            self.message_user(request, _("“%(organization)s” saves attachments in a local "
                                         "folder: there is no share to test.")
                              % {"organization": organization}, messages.WARNING)
            return
        report = check_share(organization)
        self.message_user(request, _("“%(organization)s”: %(message)s")
                          % {"organization": organization, "message": report.message},
                          messages.SUCCESS if report.ok else messages.ERROR)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return sees_everything(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return sees_everything(request.user)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None):  # type: ignore[no-untyped-def]
        readonly = list(super().get_readonly_fields(request, obj))
        if not sees_everything(request.user):
            # Shown, so they know where their attachments may go; never theirs to widen
            # towards another organization's files. Read-only fields are left out of the
            # form, so a value posted anyway is ignored.
            readonly += ["attachment_roots", *SHARE_FIELDS]
        return readonly

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        if not Organization.objects.exists():
            # A server's first organization is often its only one: offer it the server's
            # roots, in plain view, for the superuser to keep or narrow.
            initial.setdefault("attachment_roots", "\n".join(settings.ATTACHMENT_ROOTS))
        return initial


# --- users --------------------------------------------------------------------------------


class MembershipInline(OrganizationScopedMixin, admin.StackedInline):
    model = Membership
    formset = MembershipFormSet
    can_delete = False
    max_num = 1
    verbose_name_plural = _("organization")


admin.site.unregister(User)


@admin.register(User)
class OrganizationUserAdmin(OrganizationScopedMixin, UserAdmin):
    """Organization admins manage their own organization's users, and no one's privileges."""

    inlines = [MembershipInline]
    list_display = ["username", "email", "first_name", "last_name", "membership_organization",
                    "membership_role", "is_active"]
    list_select_related = ["membership__organization"]
    list_filter = ["is_active", "is_staff", "is_superuser", "membership__role",
                   "membership__organization"]
    limited_fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("Personal info"), {"fields": ("first_name", "last_name", "email")}),
        (_("Status"), {"fields": ("is_active", "last_login", "date_joined")}),
    )

    @admin.display(description=_("organization"), ordering="membership__organization__name")
    def membership_organization(self, user: Any) -> str:
        membership = getattr(user, "membership", None)
        return membership.organization.name if membership else "—"

    @admin.display(description=_("role"))
    def membership_role(self, user: Any) -> str:
        membership = getattr(user, "membership", None)
        return membership.get_role_display() if membership else "—"

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        queryset = super().get_queryset(request)
        if not sees_everything(request.user):
            queryset = queryset.filter(is_superuser=False)
        return queryset

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any):  # type: ignore[no-untyped-def]
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if db_field.name == "user_permissions":
            field.label_from_instance = permission_label
        return field

    def get_fieldsets(self, request: HttpRequest, obj: Any = None):  # type: ignore[no-untyped-def]
        if obj is not None and not sees_everything(request.user):
            return self.limited_fieldsets
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None):  # type: ignore[no-untyped-def]
        if sees_everything(request.user):
            return super().get_readonly_fields(request, obj)
        return ["last_login", "date_joined"]

    def get_list_filter(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        if sees_everything(request.user):
            return self.list_filter
        return ["is_active", "membership__role"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        organization = None if sees_everything(request.user) else organization_of(request.user)
        if organization is not None:
            # A user added by an organization admin belongs to that organization at once,
            # so it never drops out of sight before its membership form is saved.
            Membership.objects.get_or_create(user=obj, defaults={"organization": organization})

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        organization = None if sees_everything(request.user) else organization_of(request.user)
        instances = formset.save(commit=False)
        for instance in instances:
            if isinstance(instance, Membership) and organization is not None:
                instance.organization = organization
            instance.save()
        formset.save_m2m()


PERMISSION_ACTIONS = {"add": _("may add"), "change": _("may change"),
                      "delete": _("may delete"), "view": _("may view")}


def permission_label(permission: Permission) -> str:
    """A permission in the reader's language: Django stores its name in English ("Can add
    sync profile"), so it is told by its model's and action's translated names instead."""
    model = permission.content_type.model_class()
    action = permission.codename.partition("_")[0]
    if model is None or action not in PERMISSION_ACTIONS:
        return str(permission)
    return (f"{model._meta.app_config.verbose_name} | {model._meta.verbose_name} | "
            f"{PERMISSION_ACTIONS[action]}")


# --- connections --------------------------------------------------------------------------


@admin.register(MailboxConnection)
class MailboxConnectionAdmin(MailboxToolsMixin, OrganizationScopedAdmin):
    form = ConnectionForm
    list_display = ["name", "organization", "kind", "auth_type", "access", "ews_url",
                    "verify_tls", "profile_count"]
    list_filter = ["kind", "auth_type", "access", "verify_tls", "organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "ews_url", "username", "tenant_id"]
    fieldsets = CONNECTION_FIELDSETS

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        return super().get_queryset(request).annotate(number_of_profiles=models.Count("profiles"))

    @admin.display(description=_("profiles"), ordering="number_of_profiles")
    def profile_count(self, connection: Any) -> int:
        return connection.number_of_profiles

    @admin.display(description=_("change notifications"))
    def change_notifications(self, connection: Any) -> str:
        from engine.graph_watch import state

        return state(connection.profiles.all()) if connection.pk else "-"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None):  # type: ignore[no-untyped-def]
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "change_notifications"] if _is_graph(obj) else readonly

    def get_fieldsets(self, request: HttpRequest, obj: Any = None):  # type: ignore[no-untyped-def]
        fieldsets = list(super().get_fieldsets(request, obj))
        if _is_graph(obj):
            # Whether Graph posts its changes here, and why not (engine/graph_watch.py).
            fieldsets.append((_("Change notifications"), {"fields": ("change_notifications",)}))
        if sees_everything(request.user):
            return fieldsets
        return _without_field(fieldsets, "organization")

    def test_target(self, connection: Any) -> Target:
        return connection_target(connection)


def _is_graph(connection: Any) -> bool:
    return connection is not None and connection.pk is not None and connection.kind == "graph"


def _without_field(fieldsets: Any, name: str) -> list:
    return [
        (title, {**options, "fields": tuple(f for f in options["fields"] if f != name)})
        for title, options in fieldsets
    ]


# --- sync profiles ------------------------------------------------------------------------


class AgendaInline(OrganizationScopedMixin, admin.StackedInline):
    formset = OneToOneInlineFormSet
    can_delete = False
    max_num = 1
    min_num = 1


class CalendarSettingsInline(FolderChangeInline, FolderPickerInline, CrmCapabilityInline,
                             AgendaInline):
    model = CalendarSettings
    folder_kind = Kind.CALENDAR
    needs_capability = {"imported_status": Capability.EVENT_STATUSES}
    fieldsets = (
        (None, {"fields": ("direction", ("days_past", "days_future"),
                           ("folder_path", "folder_id"))}),
        (_("Which events"), {"fields": ("scope", "skip_private", "default_category",
                                     "imported_status")}),
        (_("Links and deletions"), {"fields": ("link_attendees", "link_attendee_companies",
                                            "deletion_policy")}),
    )


class CategoryPairingInline(CategoryPickerInline, OrganizationScopedMixin, admin.TabularInline):
    model = CategoryPairing
    category_fields = {"exchange_category": False}
    formset = CategoryPairingFormSet
    extra = 0
    verbose_name_plural = _("calendar category pairings (CRM category = Exchange category)")


class ContactSettingsInline(CategoryPickerInline, FolderChangeInline, FolderPickerInline,
                            CrmCapabilityInline, AgendaInline):
    model = ContactSettings
    folder_kind = Kind.CONTACTS
    needs_capability = {"classification_node": Capability.CLASSIFICATION}
    choice_needs_capability = {("scope", ContactSettings.Scope.BRANCH): Capability.CLASSIFICATION}
    category_fields = {"only_categories": True}
    form = ContactSettingsForm
    fields = ["direction", ("folder_path", "folder_id"), "only_categories", "scope",
              "classification_node", "deletion_policy"]


class MailSettingsInline(AttachmentDirectoryInline, AgendaInline):
    model = MailSettings
    fieldsets = (
        (None, {"fields": ("received_within_days", "unmatched")}),
        (_("Attachments"), {"fields": ("save_attachments", "attachment_directory",
                                    "attachment_category", "attachment_types",
                                    "max_attachment_mb")}),
    )


class MailFolderInline(FolderPickerInline, OrganizationScopedMixin, admin.TabularInline):
    model = MailFolder
    folder_kind = Kind.MAIL
    fields = ["folder_path", "folder_id"]
    extra = 0
    verbose_name_plural = _("mail folders to import (none chosen: Inbox and Sent Items)")


@admin.register(SyncProfile)
class SyncProfileAdmin(AttachmentPickerAdminMixin, CategoryPickerAdminMixin, ProfileSetupMixin,
                       SyncOperationsMixin, MailboxToolsMixin,
                       OrganizationScopedAdmin):
    form = ProfileForm
    inlines = [CalendarSettingsInline, CategoryPairingInline, ContactSettingsInline,
               MailSettingsInline, MailFolderInline]
    actions = ["test_connection", *OPERATION_ACTIONS]
    list_display = ["mailbox", "user", "crm_user", "organization", "connection",
                    "interval_minutes", "active", synced_agendas]
    list_filter = ["active", "sync_calendar", "sync_contacts", "import_mail",
                   "conflict_policy", "organization"]
    list_select_related = ["user", "crm_user", "organization", "connection"]
    search_fields = ["mailbox", "user__username", "user__email", "crm_user__name"]
    raw_id_fields: list[str] = []
    fieldsets = (
        (None, {"fields": ("organization", "mailbox", "user", "crm_user", "active")}),
        (_("Mailbox access"), {"fields": ("connection", "mailbox_username", "mailbox_secret")}),
        (_("General"), {"fields": ("interval_minutes", ("sync_calendar", "sync_contacts",
                                                     "import_mail"))}),
        (_("Policies"), {"fields": ("conflict_policy", ("mass_delete_min_items",
                                                     "mass_delete_min_percent"),
                                 "mass_create_min_items")}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None):  # type: ignore[no-untyped-def]
        fieldsets = super().get_fieldsets(request, obj)
        if sees_everything(request.user):
            return fieldsets
        return _without_field(fieldsets, "organization")

    def _create_formsets(self, request: HttpRequest, obj: Any, change: bool):  # type: ignore[no-untyped-def]
        # The pairings' rule depends on the calendar inline's scope: let them see each other.
        formsets, inline_instances = super()._create_formsets(request, obj, change)
        for formset in formsets:
            formset.sibling_formsets = formsets
        return formsets, inline_instances

    class Media:
        js = ["profiles/folder_picker.js", "profiles/attachment_picker.js"]
        css = {"all": ["profiles/folder_picker.css", "profiles/attachment_picker.css"]}

    def get_urls(self) -> list[URLPattern]:
        # Listing reaches out to the mailbox: POST only, so the CSRF check applies.
        view = self.admin_site.admin_view(require_POST(self.folders_view))
        return [
            path("<path:object_id>/folders/<str:kind>/", view, name="profiles_syncprofile_folders"),
            *super().get_urls(),
        ]

    def folders_view(self, request: HttpRequest, object_id: str, kind: str) -> JsonResponse:
        """The profile's mailbox folders of one kind, for the "…" folder picker (JSON)."""
        return folders_response(self.changeable_object(request, object_id), kind)

    def test_target(self, profile: Any) -> Target:
        return profile_target(profile)
