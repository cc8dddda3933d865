"""The event form of the CRM admin: times shown and entered on the event's own wall clock.

Events are stored in UTC with the zone they were made in (`Event.time_zone`). The admin's
default would show them in the server's zone; a person editing a meeting made in Prague thinks
in Prague time, so the form converts between UTC and the event's zone, and its labels say which.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import cache
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin import widgets
from django.core.exceptions import ValidationError
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.describe import zone_of
from crm.models import Event

ZONED_FIELDS = ("start", "end", "original_start")


@cache
def _zone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class WallClockField(forms.SplitDateTimeField):
    """A date and a time read as written: the form, not the server's zone, says where."""

    widget = widgets.AdminSplitDateTime

    def compress(self, data_list: list[Any]) -> dt.datetime | None:
        if not data_list or data_list[0] in self.empty_values or (
                data_list[1] in self.empty_values):
            return super().compress(data_list)   # its own "enter a date and a time" errors
        return dt.datetime.combine(*data_list)


def on_wall_clock(naive: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """`naive` as a time in `zone`; a time the clocks skip (spring forward) is refused."""
    aware = naive.replace(tzinfo=zone)
    if aware.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise ValidationError(_("%(time)s does not exist in %(zone)s: the clocks skip it.")
                              % {"time": naive.strftime("%H:%M"), "zone": str(zone)})
    return aware


class EventForm(forms.ModelForm):
    start = WallClockField(label=gettext_lazy("start"))
    end = WallClockField(label=gettext_lazy("end"))
    original_start = WallClockField(label=gettext_lazy("original start of the occurrence"),
                                    required=False)
    time_zone = forms.ChoiceField(
        label=gettext_lazy("time zone"), required=False, help_text=gettext_lazy(
            "The zone the event was made in: its times are shown and entered in it."))

    class Meta:
        model = Event
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance.time_zone if self.instance.pk else settings.TIME_ZONE
        choices = _zone_choices()
        if stored and (stored, stored) not in choices:
            choices = [(stored, stored), *choices]
        if not stored:   # made somewhere without a zone: its times are UTC
            choices = [("", _("none (UTC)")), *choices]
        self.fields["time_zone"].choices = choices
        self.initial["time_zone"] = stored
        zone = zone_of(stored)
        for name in ZONED_FIELDS:
            field = self.fields.get(name)
            value = getattr(self.instance, name) if self.instance.pk else None
            if value is not None:
                # Naive on the event's wall clock: the widget shows it unconverted.
                self.initial[name] = value.astimezone(zone).replace(tzinfo=None)
            if field is not None:
                field.label = capfirst(_("%(field)s (%(zone)s)") % {
                    "field": field.label, "zone": stored or "UTC"})

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # The zone chosen in this same form: changing the zone keeps the times as typed.
        zone = zone_of(cleaned.get("time_zone") or "")
        for name in ZONED_FIELDS:
            value = cleaned.get(name)
            if isinstance(value, dt.datetime) and value.tzinfo is None:
                try:
                    cleaned[name] = on_wall_clock(value, zone)
                except ValidationError as exc:
                    self.add_error(name, exc)
        return cleaned
