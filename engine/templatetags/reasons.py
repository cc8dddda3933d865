"""`{{ text|reason }}`: a reason or message the engine wrote in English, in the reader's
language (engine/reasons.py)."""

from __future__ import annotations

from django import template

from engine.reasons import describe

register = template.Library()


@register.filter
def reason(text: str) -> str:
    return describe(text or "")
