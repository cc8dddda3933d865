"""Who sees what: own profiles only; an organization administrator sees their organization;
another object's id is answered with 404; actions are POST-only and CSRF-protected."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse
from django_q.models import OrmQ

from engine.models import DuplicateCandidate
from tests.portal.base import PortalTestCase


class AccessTestCase(PortalTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.daves_run = self.make_run(self.daves)
        self.eves_run = self.make_run(self.eves)
        self.charlies_run = self.make_run(self.charlies)
        self.daves_pair = self.make_candidate(self.daves)
        self.eves_pair = self.make_candidate(self.eves)
        self.charlies_pair = self.make_candidate(self.charlies)

    # --- what each one's pages list ---------------------------------------------------------
    def _pages(self) -> str:
        return "".join(self.client.get(reverse(name)).content.decode()
                       for name in ("portal:dashboard", "portal:history", "portal:duplicates"))

    def test_a_user_sees_only_their_own_profiles_runs_and_duplicates(self) -> None:
        self.sign_in(self.dave)
        pages = self._pages()
        assert "dave@acme.example" in pages
        assert "eve@acme.example" not in pages and "charlie@globex.example" not in pages
        assert reverse("portal:run", args=[self.daves_run.pk]) in pages
        assert reverse("portal:run", args=[self.eves_run.pk]) not in pages
        assert reverse("portal:link", args=[self.daves_pair.pk]) in pages
        assert reverse("portal:link", args=[self.eves_pair.pk]) not in pages

    def test_an_organization_administrator_sees_their_organization_and_not_another(
            self) -> None:
        self.sign_in(self.bob)
        pages = self._pages()
        assert "dave@acme.example" in pages and "eve@acme.example" in pages
        assert "charlie@globex.example" not in pages
        assert reverse("portal:link", args=[self.eves_pair.pk]) in pages
        assert reverse("portal:link", args=[self.charlies_pair.pk]) not in pages

    def test_the_other_organizations_administrator_sees_only_his(self) -> None:
        self.sign_in(self.charlie)
        pages = self._pages()
        assert "charlie@globex.example" in pages
        assert "dave@acme.example" not in pages and "eve@acme.example" not in pages

    def test_the_superuser_sees_every_organization(self) -> None:
        self.sign_in(self.alice)
        pages = self._pages()
        for mailbox in ("dave@acme.example", "eve@acme.example", "charlie@globex.example"):
            assert mailbox in pages

    def test_exports_are_scoped_like_the_pages(self) -> None:
        self.sign_in(self.dave)
        for name in ("portal:history_csv", "portal:duplicates_csv"):
            body = b"".join(self.client.get(reverse(name)).streaming_content).decode()
            assert "dave@acme.example" in body
            assert "eve@acme.example" not in body and "charlie@globex.example" not in body

    # --- another object's id: 404, like a missing one ---------------------------------------
    def _object_urls(self, run: int, profile: int, pair: int) -> list[tuple[str, str]]:
        return [("get", reverse("portal:run", args=[run])),
                ("get", reverse("portal:run_items_csv", args=[run])),
                ("get", reverse("portal:status") + f"?profile={profile}"),
                ("post", reverse("portal:sync_now", args=[profile])),
                ("post", reverse("portal:analyze", args=[profile])),
                ("post", reverse("portal:link", args=[pair])),
                ("post", reverse("portal:keep_apart", args=[pair]))]

    def _statuses(self, urls: list[tuple[str, str]]) -> list[int]:
        return [getattr(self.client, method)(url).status_code for method, url in urls]

    def test_a_user_gets_404_for_anothers_objects_in_the_same_organization(self) -> None:
        self.sign_in(self.dave)
        assert self._statuses(self._object_urls(
            self.eves_run.pk, self.eves.pk, self.eves_pair.pk)) == [404] * 7
        assert self._statuses(self._object_urls(99999, 99999, 99999)) == [404] * 7
        assert not OrmQ.objects.exists()
        assert self.eves_pair.decision == DuplicateCandidate.Decision.OPEN
        self.eves_pair.refresh_from_db()
        assert self.eves_pair.decision == DuplicateCandidate.Decision.OPEN

    def test_an_organization_administrator_gets_404_for_another_organization(self) -> None:
        self.sign_in(self.bob)
        assert self._statuses(self._object_urls(
            self.charlies_run.pk, self.charlies.pk, self.charlies_pair.pk)) == [404] * 7
        assert not OrmQ.objects.exists()

    def test_an_organization_administrator_may_act_on_their_organizations_objects(
            self) -> None:
        self.sign_in(self.bob)
        statuses = self._statuses(self._object_urls(
            self.eves_run.pk, self.eves.pk, self.eves_pair.pk))
        assert statuses == [200, 200, 200, 302, 302, 302, 302]
        assert OrmQ.objects.exists()

    def test_one_foreign_profile_among_own_ones_makes_the_status_404(self) -> None:
        self.sign_in(self.dave)
        url = reverse("portal:status")
        assert self.client.get(f"{url}?profile={self.daves.pk}").status_code == 200
        assert self.client.get(
            f"{url}?profile={self.daves.pk}&profile={self.eves.pk}").status_code == 404
        assert self.client.get(f"{url}?profile=abc").status_code == 404

    # --- signing in, POST only, CSRF ----------------------------------------------------------
    def test_every_page_asks_an_anonymous_visitor_to_sign_in(self) -> None:
        urls = [reverse(name) for name in ("portal:dashboard", "portal:history",
                                           "portal:history_csv", "portal:duplicates",
                                           "portal:duplicates_csv", "portal:status",
                                           "portal:password_change",
                                           "portal:password_changed")]
        urls += [url for _method, url in self._object_urls(
            self.daves_run.pk, self.daves.pk, self.daves_pair.pk)]
        for url in urls:
            for method in ("get", "post"):
                response = getattr(self.client, method)(url)
                assert response.status_code == 302, (method, url)
                assert response["Location"].startswith(reverse("portal:login")), url
        assert not OrmQ.objects.exists()

    def test_actions_refuse_get(self) -> None:
        self.sign_in(self.dave)
        for method, url in self._object_urls(self.daves_run.pk, self.daves.pk,
                                             self.daves_pair.pk):
            if method == "post":
                assert self.client.get(url).status_code == 405, url
        for name in ("portal:dashboard", "portal:history", "portal:duplicates"):
            assert self.client.post(reverse(name)).status_code == 405
        assert not OrmQ.objects.exists()

    def test_actions_need_the_csrf_token(self) -> None:
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.dave)
        for method, url in self._object_urls(self.daves_run.pk, self.daves.pk,
                                             self.daves_pair.pk):
            if method == "post":
                assert client.post(url).status_code == 403, url
        assert client.post(reverse("portal:logout")).status_code == 403
        assert not OrmQ.objects.exists()
        self.daves_pair.refresh_from_db()
        assert self.daves_pair.decision == DuplicateCandidate.Decision.OPEN

    def test_an_inactive_user_sees_nothing(self) -> None:
        self.sign_in(self.dave)
        self.dave.is_active = False
        self.dave.save()
        response = self.client.get(reverse("portal:dashboard"))
        assert response.status_code == 302   # signed out by the auth backend
