"""The Czech catalogue as data, for the tests that check it."""

from __future__ import annotations

import ast
from pathlib import Path

from django.conf import settings

CATALOG = Path(settings.BASE_DIR) / "locale" / "cs" / "LC_MESSAGES" / "django.po"
# The scripts' messages (the admin's JavaScript catalogue serves them).
SCRIPTS_CATALOG = CATALOG.with_name("djangojs.po")


def catalog_entries(catalog: Path = CATALOG) -> list[dict[str, object]]:
    """The Czech catalog's entries: msgid, msgid_plural, msgstr (by index), flags."""
    entries: list[dict[str, object]] = []
    entry: dict[str, object] = {}
    field = ""
    for line in [*catalog.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if entry:
                entries.append(entry)
            entry, field = {}, ""
        elif line.startswith("#,"):
            entry["flags"] = line
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            entry[field] = str(entry[field]) + ast.literal_eval(line)
        else:
            field, _space, value = line.partition(" ")
            entry[field] = ast.literal_eval(value)
    return entries[1:]   # the first is the header
