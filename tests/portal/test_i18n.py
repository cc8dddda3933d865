"""The user pages in Czech: the browser's language, the language switch, a complete
catalog in the product's Czech terms."""

from __future__ import annotations

import gettext
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from tests.portal.base import PortalTestCase
from tests.portal.catalog import SCRIPTS_CATALOG, catalog_entries


class CzechTestCase(PortalTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.sign_in(self.dave)
        # A Czech request leaves Czech active in this thread: the tests after these would
        # read Czech messages where they expect the default language.
        self.addCleanup(translation.activate, settings.LANGUAGE_CODE)

    def test_the_browsers_language_chooses_czech(self) -> None:
        self.make_run(self.daves, errors=5)
        page = self.client.get(reverse("portal:dashboard"), headers={"accept-language": "cs"})
        self.assertContains(page, '<html lang="cs">')
        for text in ("Synchronizovat nyní", "Historie synchronizace", "Možné duplicity",
                     "Přehled", "Kontakty", "Kalendář", "Analyzovat", "Poslední běh",
                     "5 chyb", "Úspěch", "Odhlásit se"):
            self.assertContains(page, text)
        self.assertNotContains(page, "Sync now")

    def test_english_stays_the_default(self) -> None:
        page = self.client.get(reverse("portal:dashboard"), headers={"accept-language": "de"})
        self.assertContains(page, '<html lang="en">')
        self.assertContains(page, "Sync now")

    def test_the_language_switch_keeps_the_choice(self) -> None:
        response = self.client.post(reverse("set_language"),
                                    {"language": "cs", "next": reverse("portal:history")})
        self.assertRedirects(response, reverse("portal:history"))
        assert self.client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "cs"
        page = self.client.get(reverse("portal:history"), headers={"accept-language": "en"})
        self.assertContains(page, "Historie synchronizace")
        self.assertContains(page, '<option value="cs" lang="cs" selected>česky</option>',
                            html=False)

    def test_czech_plurals_follow_czech_grammar(self) -> None:
        with translation.override("cs"):
            from django.utils.translation import ngettext

            forms = [ngettext("%(n)s error", "%(n)s errors", n) % {"n": n} for n in (1, 3, 5)]
        assert forms == ["1 chyba", "3 chyby", "5 chyb"]

    def test_the_live_status_and_the_other_pages_speak_czech_too(self) -> None:
        headers = {"accept-language": "cs"}
        status = self.client.get(reverse("portal:status") + f"?profile={self.daves.pk}",
                                 headers=headers).json()
        assert "Neprobíhá" in status["rows"][0]["cells"]["now"]
        for name, text in (("portal:history", "Filtrovat historii"),
                           ("portal:duplicates", "Ponechat odděleně"),
                           ("portal:password_change", "Změnit heslo")):
            self.make_candidate(self.daves)
            self.assertContains(self.client.get(reverse(name), headers=headers), text)
        self.client.logout()
        self.assertContains(self.client.get(reverse("portal:login"), headers=headers),
                            "Přihlásit se")

    def test_the_product_terms_are_the_manuals(self) -> None:
        with translation.override("cs"):
            from django.utils.translation import gettext

            assert gettext("attachment category") == "kategorie přílohy"
            assert gettext("Two-way") == "Obousměrná synchronizace"
            assert gettext("check for changes every (minutes)") == \
                "kontrolovat změny každých (minut)"

    def test_the_czech_catalog_is_complete_and_compiled(self) -> None:
        entries = catalog_entries()
        assert len(entries) > 500
        untranslated = [e["msgid"] for e in entries
                        if "fuzzy" in str(e.get("flags", ""))
                        or not all(value for key, value in e.items() if key.startswith("msgstr"))]
        assert not untranslated, untranslated
        with translation.override("cs"):
            from django.utils.translation import gettext, pgettext

            stale = [e["msgid"] for e in entries if "msgstr" in e
                     and (pgettext(str(e["msgctxt"]), str(e["msgid"])) if e.get("msgctxt")
                          else gettext(str(e["msgid"]))) != e["msgstr"]]
        assert not stale, f"run manage.py compilemessages: {stale[:5]}"


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="gettext is not installed")
def test_every_message_of_the_source_is_in_the_czech_catalog(tmp_path: Path) -> None:
    # A copy of the project, its catalog made afresh from the source (manage.py
    # makemessages): no message there may be missing from the catalog kept in the repository.
    base = Path(settings.BASE_DIR)
    for name in ("manage.py", "syncsite", "profiles", "console", "crm", "engine", "mailimport",
                 "portal", "security", "templates", "locale"):
        source = base / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
        else:
            shutil.copy(source, tmp_path / name)
    made = subprocess.run([sys.executable, "manage.py", "makemessages", "-l", "cs",
                           "--no-obsolete"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "DEBUG": "true",
                               "VAR_DIR": str(tmp_path / "var"),
                               "DJANGO_SETTINGS_MODULE": "syncsite.settings"}, check=False)
    assert made.returncode == 0, made.stderr
    fresh = catalog_entries(tmp_path / "locale" / "cs" / "LC_MESSAGES" / "django.po")
    kept = {(e["msgid"], e.get("msgctxt")) for e in catalog_entries()}
    missing = [e["msgid"] for e in fresh if (e["msgid"], e.get("msgctxt")) not in kept
               or "fuzzy" in str(e.get("flags", ""))]
    assert not missing, f"run manage.py makemessages -l cs and translate: {missing[:10]}"


def test_every_message_of_the_scripts_is_translated() -> None:
    # The scripts call gettext("…") (the admin's JavaScript catalogue) for what they show.
    base = Path(settings.BASE_DIR)
    # A helper by another name would hide its messages from makemessages (and this test).
    aliased = [script.name for script in base.glob("*/static/**/*.js")
               if re.search(r"const (?!gettext\b)\w+ = \(text\) => .*window\.gettext",
                            script.read_text(encoding="utf-8"))]
    assert not aliased, f"call the translation helper gettext in: {aliased}"
    used = {message for script in base.glob("*/static/**/*.js")
            for message in re.findall(r'gettext\("((?:[^"\\]|\\.)*)"\)',
                                      script.read_text(encoding="utf-8"))}
    assert used, "no script message found: is the pattern still right?"
    translated = {e["msgid"]: e.get("msgstr") for e in catalog_entries(SCRIPTS_CATALOG)
                  if "fuzzy" not in str(e.get("flags", ""))}
    missing = sorted(m for m in used if not translated.get(m))
    assert not missing, f"run manage.py makemessages -d djangojs -l cs and translate: {missing}"
    with SCRIPTS_CATALOG.with_suffix(".mo").open("rb") as compiled:
        served = gettext.GNUTranslations(compiled)
    stale = [m for m in used if served.gettext(m) != translated[m]]
    assert not stale, f"run manage.py compilemessages: {stale}"
