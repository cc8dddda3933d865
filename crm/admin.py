"""The admin for the built-in CRM store, confined to the user's organization."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.describe import (
    day_text,
    moment_text,
    occurrences_text,
    recipients_lines,
    recurrence_text,
    zone_of,
)
from crm.event_form import EventForm
from crm.models import (
    Change,
    ClassificationNode,
    Company,
    CrmUser,
    Document,
    DocumentCategory,
    Email,
    Event,
    EventCategory,
    EventStatus,
    Person,
    PersonCompany,
)
from crm.tracking import RevisionCounter
from profiles.admin_scoping import OrganizationScopedAdmin, OrganizationScopedMixin
from profiles.scoping import sees_everything

ADDRESS_FIELDS = [
    tuple(f"{kind}_{part}" for part in ("street", "city", "region", "postal_code", "country"))
    for kind in ("business", "home", "other")
]


@admin.register(CrmUser)
class CrmUserAdmin(OrganizationScopedAdmin):
    list_display = ["name", "login", "email", "active", "organization"]
    list_filter = ["active", "organization"]
    search_fields = ["name", "login", "email"]


@admin.register(Company)
class CompanyAdmin(OrganizationScopedAdmin):
    list_display = ["name", "web_page", "phone", "organization", "revision"]
    list_filter = ["organization"]
    search_fields = ["name"]
    readonly_fields = ["revision"]


class PersonCompanyInline(OrganizationScopedMixin, admin.TabularInline):
    model = PersonCompany
    extra = 0
    autocomplete_fields = ["company"]


@admin.register(Person)
class PersonAdmin(OrganizationScopedAdmin):
    list_display = ["display_name", "email1", "phone_mobile", "job_title", "owner",
                    "organization", "revision"]
    list_filter = ["organization", "owner", "classification_nodes"]
    list_select_related = ["owner"]
    search_fields = ["first_name", "last_name", "email1", "email2", "email3"]
    inlines = [PersonCompanyInline]
    autocomplete_fields = ["owner", "assigned_users", "classification_nodes"]
    readonly_fields = ["revision", "origin_item_id"]
    fieldsets = (
        (None, {"fields": ("organization", ("title", "first_name", "middle_name", "last_name",
                                            "suffix"), ("job_title", "department"),
                           ("owner", "assigned_users"), "classification_nodes")}),
        ("E-mail and web", {"fields": ("email1", "email2", "email3", "web_page")}),
        ("Phones", {"fields": (("phone_business", "phone_business2"),
                               ("phone_home", "phone_mobile"),
                               ("phone_business_fax", "phone_other"))}),
        ("Business address", {"fields": ADDRESS_FIELDS[0]}),
        ("Home address", {"fields": ADDRESS_FIELDS[1]}),
        ("Other address", {"fields": ADDRESS_FIELDS[2]}),
        ("Note", {"fields": ("note", "origin_item_id", "revision")}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None):  # type: ignore[no-untyped-def]
        fieldsets = super().get_fieldsets(request, obj)
        if sees_everything(request.user):
            return fieldsets
        first_title, first = fieldsets[0]
        fields = tuple(f for f in first["fields"] if f != "organization")
        return ((first_title, {**first, "fields": fields}), *fieldsets[1:])


@admin.register(ClassificationNode)
class ClassificationNodeAdmin(OrganizationScopedAdmin):
    list_display = ["__str__", "organization"]
    list_filter = ["organization"]
    search_fields = ["name"]
    list_select_related = ["parent", "parent__parent", "organization"]


@admin.register(EventCategory, EventStatus, DocumentCategory)
class NamedAdmin(OrganizationScopedAdmin):
    list_display = ["name", "organization"]
    list_filter = ["organization"]
    search_fields = ["name"]


# Long subjects are cut in the change lists, so that a list fits a 1366-px-wide screen.
TITLE_LENGTH = 60


def lines(items: list[str]) -> SafeString:
    return format_html_join("", "<div>{}</div>", ((item,) for item in items)) or "—"


@admin.register(Event)
class EventAdmin(OrganizationScopedAdmin):
    form = EventForm
    list_display = ["title", "when", "owner", "category", "status", "private", "organization"]
    list_filter = ["organization", "category", "status", "private", "all_day"]
    list_select_related = ["owner", "category", "status", "organization"]
    search_fields = ["subject", "location", "uid"]
    date_hierarchy = "start"
    autocomplete_fields = ["persons", "companies"]
    raw_id_fields = ["recurrence_master"]
    # A series' rule and its deleted occurrences are the sync's to write: edited as JSON by
    # hand they could break the series in every mailbox, so people read them in words.
    exclude = ["recurrence", "deleted_occurrences"]
    readonly_fields = ["repeats", "deleted_occurrence_list", "revision", "origin_item_id"]

    def changeform_view(self, request: HttpRequest, object_id: str | None = None,
                        form_url: str = "", extra_context: dict[str, Any] | None = None
                        ) -> HttpResponse:
        # The page's own clock is the event's zone too: the date widgets' "Now" and their
        # "you are N hours ahead of the server" note then speak of the times shown.
        event = self.get_object(request, unquote(object_id)) if object_id else None
        zone = zone_of(event.time_zone) if event is not None else timezone.get_current_timezone()
        with timezone.override(zone):
            response = super().changeform_view(request, object_id, form_url, extra_context)
            if isinstance(response, TemplateResponse):
                response.render()   # now, while the zone is the event's (it renders lazily)
            return response

    @admin.display(description=gettext_lazy("subject"), ordering="subject")
    def title(self, event: Event) -> str:
        return Truncator(str(event)).chars(TITLE_LENGTH)

    @admin.display(description=gettext_lazy("when"), ordering="start")
    def when(self, event: Event) -> str:
        """Start and end on the event's own wall clock, with the zone's name."""
        zone = zone_of(event.time_zone)
        start, end = event.start.astimezone(zone), event.end.astimezone(zone)
        if event.all_day:   # ends at the midnight after its last day
            last = (end - dt.timedelta(microseconds=1)).date() if end > start else start.date()
            days = day_text(start.date()) if last == start.date() else _(
                "%(first)s – %(last)s") % {"first": day_text(start.date()), "last": day_text(last)}
            return _("%(days)s, all day") % {"days": days}
        until = end.strftime("%H:%M") if start.date() == end.date() else moment_text(end, zone)
        return _("%(start)s – %(end)s (%(zone)s)") % {
            "start": moment_text(start, zone), "end": until, "zone": event.time_zone or "UTC"}

    @admin.display(description=gettext_lazy("repeats"))
    def repeats(self, event: Event) -> str:
        return recurrence_text(event.recurrence) or _("no (a single event)")

    @admin.display(description=gettext_lazy("deleted occurrences"))
    def deleted_occurrence_list(self, event: Event) -> SafeString:
        return lines(occurrences_text(event.deleted_occurrences or [], event.time_zone))


@admin.register(Email)
class EmailAdmin(OrganizationScopedAdmin):
    list_display = ["title", "sender_address", "received_at", "organization"]
    list_filter = ["organization"]
    search_fields = ["subject", "sender_address", "message_id"]
    autocomplete_fields = ["persons", "companies"]
    filter_horizontal = ["users"]
    date_hierarchy = "received_at"
    # Filled by the mail import from the message's headers; people read them, not edit them.
    exclude = ["recipients"]
    readonly_fields = ["recipient_list"]

    @admin.display(description=gettext_lazy("subject"), ordering="subject")
    def title(self, email: Email) -> str:
        return Truncator(str(email)).chars(TITLE_LENGTH)

    @admin.display(description=gettext_lazy("recipients"))
    def recipient_list(self, email: Email) -> SafeString:
        # The importer keeps bare addresses: the e-mail's CRM persons put names to theirs.
        names = {address.casefold(): person.display_name for person in email.persons.all()
                 for address in (person.email1, person.email2, person.email3) if address}
        return lines(recipients_lines(email.recipients, names))


@admin.register(Document)
class DocumentAdmin(OrganizationScopedAdmin):
    list_display = ["original_name", "path", "category", "size", "created", "organization"]
    list_filter = ["organization", "category"]
    list_select_related = ["category", "organization"]
    search_fields = ["original_name", "path", "sha256"]
    raw_id_fields = ["email"]


class ReadOnlyForSuperusers(admin.ModelAdmin):
    """Tracking internals: visible to superusers for diagnosis, written only by the code."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return sees_everything(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return sees_everything(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Change)
class ChangeAdmin(ReadOnlyForSuperusers):
    list_display = ["kind", "object_id", "revision", "deleted", "changed_at", "organization"]
    list_filter = ["kind", "deleted", "organization"]
    list_select_related = ["organization"]
    show_full_result_count = False


@admin.register(RevisionCounter)
class RevisionCounterAdmin(ReadOnlyForSuperusers):
    list_display = ["organization", "value"]
