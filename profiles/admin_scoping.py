"""An admin base class that confines organization administrators to their organization.

Every list, every object page and every choice field is filtered; an object of another
organization is simply not found (404), as if it did not exist.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
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
            filters = [f for f in filters if f != self.organization_field]
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
