"""The user pages carry a strict Content-Security-Policy, and their templates obey it."""

from __future__ import annotations

import re
from pathlib import Path

from django.urls import reverse

from security.csp import USER_PAGES_POLICY
from tests.base import BaseTestCase

TEMPLATES = Path(__file__).resolve().parents[2] / "portal" / "templates"
# What the policy forbids in a page: inline scripts and styles and event handler attributes.
INLINE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=", re.I)


class ContentSecurityPolicyTests(BaseTestCase):
    def test_the_sign_in_page_and_the_dashboard_carry_the_policy(self) -> None:
        page = self.client.get(reverse("portal:login"))
        assert page["Content-Security-Policy"] == USER_PAGES_POLICY
        self.client.force_login(self.dave)
        dashboard = self.client.get(reverse("portal:dashboard"))
        assert dashboard.status_code == 200
        assert "script-src 'self'" in dashboard["Content-Security-Policy"]
        assert "style-src 'self'" in dashboard["Content-Security-Policy"]

    def test_a_missing_page_carries_it_too(self) -> None:
        assert "Content-Security-Policy" in self.client.get("/no-such-page/")

    def test_the_admin_is_left_to_its_own_inline_styles(self) -> None:
        assert "Content-Security-Policy" not in self.client.get("/admin/login/")

    def test_the_policy_forbids_inline_code_and_framing(self) -> None:
        assert "'unsafe-inline'" not in USER_PAGES_POLICY
        assert "'unsafe-eval'" not in USER_PAGES_POLICY
        assert "frame-ancestors 'none'" in USER_PAGES_POLICY


def test_no_user_page_template_has_inline_script_or_style() -> None:
    templates = sorted(TEMPLATES.rglob("*.html"))
    assert len(templates) > 10
    offending = {str(path.relative_to(TEMPLATES)): INLINE.findall(path.read_text())
                 for path in templates}
    assert not {name: found for name, found in offending.items() if found}


def test_the_inline_pattern_finds_what_the_policy_would_block() -> None:
    for snippet in ("<script>alert(1)</script>", '<p style="color:red">', "<style>p{}</style>",
                    '<a onclick="x()">'):
        assert INLINE.search(snippet), snippet
    assert not INLINE.search('<script src="/static/portal/dashboard.js" defer></script>')
