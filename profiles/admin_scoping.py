"""An admin base class that confines organization administrators to their organization.

Every list, every object page and every choice field is filtered; an object of another
organization is simply not found (404), as if it did not exist. That holds for the ways the
admin names related objects too: raw-id inputs, autocomplete inputs and list filters.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin import widgets
from django.contrib.admin.utils import get_fields_from_path, reverse_field_path
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models
from django.http import Http404, HttpRequest

from profiles.scoping import is_organization_admin, organization_of, sees_everything


def _organization_path(model: type[models.Model]) -> str | None:
    """The lookup from `model` to its Organization, declared as `organization_path`."""
    if model is get_user_model():
        return "membership__organization"
    return getattr(model, "organization_path", None)


def restrict_to_organization(queryset: models.QuerySet, request: HttpRequest) -> models.QuerySet:
    if sees_everything(request.user):
        return queryset
    path = _organization_path(queryset.model)
    organization = organization_of(request.user)
    if path is None or organization is None or not is_organization_admin(request.user):
        return queryset.none()
    if path == "":
        return queryset.filter(pk=organization.pk)
    return queryset.filter(**{path: organization})


class OrganizationScopedMixin:
    """Mixed into ModelAdmin and InlineModelAdmin classes of organization-owned models."""

    # Models whose `organization` field an organization admin never chooses: it is theirs.
    organization_field = "organization"
    # A URL typed without a scheme means https (Django 6's default, chosen now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def _allowed(self, request: HttpRequest) -> bool:
        return sees_everything(request.user) or is_organization_admin(request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request) and self._owns(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request) and self._owns(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request) and self._owns(request, obj)

    def _owns(self, request: HttpRequest, obj: Any) -> bool:
        if obj is None or sees_everything(request.user):
            return True
        model = type(obj)
        return restrict_to_organization(model._default_manager.filter(pk=obj.pk), request).exists()

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        return restrict_to_organization(super().get_queryset(request), request)

    def _get_obj_does_not_exist_redirect(self, request: HttpRequest, opts: Any, object_id: str):  # type: ignore[no-untyped-def]
        # Another organization's object is answered exactly like a missing one, with a 404,
        # so its existence is not revealed.
        raise Http404(f"No {opts.verbose_name} with the id {object_id!r}.")

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):  # type: ignore[no-untyped-def]
        # The same choice of widget as Django's, with a raw-id input that names only objects
        # of the field's (scoped) choices.
        if ("widget" not in kwargs and db_field.name in self.raw_id_fields
                and db_field.name not in self.get_autocomplete_fields(request)):
            kwargs["widget"] = ScopedForeignKeyRawIdWidget(
                db_field.remote_field, self.admin_site, using=kwargs.get("using"))
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        return _restrict_choices(formfield, request)

    def formfield_for_manytomany(self, db_field, request: HttpRequest, **kwargs):  # type: ignore[no-untyped-def]
        formfield = super().formfield_for_manytomany(db_field, request, **kwargs)
        return _restrict_choices(formfield, request)

    def get_exclude(self, request: HttpRequest, obj: Any = None):  # type: ignore[no-untyped-def]
        exclude = list(super().get_exclude(request, obj) or [])
        if not sees_everything(request.user) and self._has_organization_field():
            exclude.append(self.organization_field)
        return exclude

    def _has_organization_field(self) -> bool:
        return any(f.name == self.organization_field for f in self.model._meta.fields)

    def get_list_filter(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        filters = list(super().get_list_filter(request))
        if not sees_everything(request.user):
            filters = [_scoped_list_filter(self.model, f) for f in filters
                       if f != self.organization_field]
        return filters


def _restrict_choices(formfield, request: HttpRequest):  # type: ignore[no-untyped-def]
    if formfield is not None and hasattr(formfield, "queryset"):
        formfield.queryset = restrict_to_organization(formfield.queryset, request)
    return formfield


class OrganizationScopedAdmin(OrganizationScopedMixin, admin.ModelAdmin):
    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any):  # type: ignore[no-untyped-def]
        form_class = super().get_form(request, obj, **kwargs)
        if sees_everything(request.user) or not self._has_organization_field():
            return form_class
        return _form_for_organization(
            form_class, self.organization_field, organization_of(request.user)
        )


def _form_for_organization(form_class: type, field: str, organization: Any) -> type:
    """The form with the organization set before validation, not merely before saving.

    Set early, the model's clean() can compare organizations, and uniqueness per
    organization is checked by the form instead of failing in the database.
    """

    class OrganizationForm(form_class):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            setattr(self.instance, field, organization)

        def _get_validation_exclusions(self) -> set[str]:
            return super()._get_validation_exclusions() - {field}

    OrganizationForm.__name__ = form_class.__name__
    return OrganizationForm


class ScopedForeignKeyRawIdWidget(widgets.ForeignKeyRawIdWidget):
    """A raw-id input that names only an object its form field offers.

    Django's looks the label up through the model's default manager, so an id put in the URL
    (`add/?email=<id>`) or posted back showed another organization's object by name, with a
    link. Here the lookup goes through the field's choices, already limited to the
    administrator's organization; any other id is shown bare, as one that does not exist.
    """

    def label_and_url_for_value(self, value: Any) -> tuple[str, str]:
        # ModelChoiceField keeps `choices` in step with its queryset (also per form copy).
        queryset = getattr(getattr(self, "choices", None), "queryset", None)
        if queryset is None:
            return "", ""
        key = self.rel.get_related_field().name
        try:
            offered = queryset.using(self.db).filter(**{key: value}).exists()
        except (ValueError, TypeError, ValidationError):
            return "", ""
        return super().label_and_url_for_value(value) if offered else ("", "")


class OrganizationRelatedFieldListFilter(admin.RelatedFieldListFilter):
    """A list filter by a related object offering only the administrator's organization's.

    Django's offers every object of the related model, whoever owns it, by name.
    """

    def field_choices(self, field, request: HttpRequest, model_admin):  # type: ignore[no-untyped-def]
        ordering = self.field_admin_ordering(field, request, model_admin)
        # The field's own limit, which a limit passed to get_choices() would replace.
        own_limit = (field.get_limit_choices_to() if hasattr(field, "get_limit_choices_to")
                     else field.limit_choices_to)
        related = field.related_model._default_manager.complex_filter(own_limit or {})
        in_scope = restrict_to_organization(related, request).values("pk")
        return field.get_choices(include_blank=False, ordering=ordering,
                                 limit_choices_to=models.Q(pk__in=in_scope))


class OrganizationAllValuesFieldListFilter(admin.AllValuesFieldListFilter):
    """A list filter by the values of a field, offering only values of the organization's.

    For a field reached through a relation (`profile__mailbox`), Django's takes the values from
    every object of the related model, whoever owns it.
    """

    def __init__(self, field, request: HttpRequest, params, model, model_admin, field_path):  # type: ignore[no-untyped-def]
        super().__init__(field, request, params, model, model_admin, field_path)
        parent_model, _ = reverse_field_path(model, field_path)
        if parent_model is not model:
            values = restrict_to_organization(parent_model._default_manager.all(), request)
            self.lookup_choices = (values.distinct().order_by(field.name)
                                   .values_list(field.name, flat=True))


_SCOPED_LIST_FILTERS: dict[type, type] = {
    admin.RelatedFieldListFilter: OrganizationRelatedFieldListFilter,
    admin.AllValuesFieldListFilter: OrganizationAllValuesFieldListFilter,
}


def _scoped_list_filter(model: type[models.Model], list_filter: Any) -> Any:
    """`list_filter` with the filter class Django would use replaced by its scoped version.

    Filters by a related object or by the values of a field are scoped; the others offer
    fixed choices (booleans, a field's choices, dates) or are custom classes, whose choices are
    their author's to scope.
    """
    if isinstance(list_filter, str):
        field = get_fields_from_path(model, list_filter)[-1]
        django_class = _default_list_filter_class(field)
        return (list_filter, _SCOPED_LIST_FILTERS.get(django_class, django_class))
    if isinstance(list_filter, (list, tuple)):
        path, filter_class = list_filter
        return (path, _SCOPED_LIST_FILTERS.get(filter_class, filter_class))
    return list_filter


def _default_list_filter_class(field: Any) -> type:
    """The class FieldListFilter.create() picks for `field` (the last entry matches any)."""
    return next(filter_class for test, filter_class
                in admin.FieldListFilter._field_list_filters if test(field))
