"""Sign-in throttling on the user pages and in the admin: per account and per address, with a
lockout window, one clear message, and the same answer whether or not the account exists."""

from __future__ import annotations

import datetime as dt

from django.test import RequestFactory, override_settings
from django.urls import reverse

from security.client_address import client_address
from security.models import SignInFailure
from tests.base import BaseTestCase

LOCKED = "Too many failed sign-in attempts"
USER_LOGIN = reverse("portal:login")
ADMIN_LOGIN = "/admin/login/"


class SignInThrottlingTests(BaseTestCase):
    def _sign_in(self, username: str, password: str, *, url: str = USER_LOGIN,
                 address: str = "198.51.100.1"):  # type: ignore[no-untyped-def]
        self.client.logout()
        return self.client.post(url, {"username": username, "password": password},
                                REMOTE_ADDR=address)

    def _fail(self, username: str, times: int, **kwargs: str) -> None:
        for _ in range(times):
            answer = self._sign_in(username, "wrong guess", **kwargs)
            assert answer.status_code == 200

    def test_the_sixth_attempt_is_refused_even_with_the_right_password(self) -> None:
        self._fail("dave", 4)
        self._fail("dave", 1)   # the fifth failure locks the account
        answer = self._sign_in("dave", self.password)
        assert answer.status_code == 200
        assert LOCKED in answer.content.decode()
        assert "Try again in 15 minutes" in answer.content.decode()
        assert "_auth_user_id" not in self.client.session

    def test_the_lockout_is_said_in_czech_to_a_czech_browser(self) -> None:
        self._fail("dave", 5)
        self.client.logout()
        answer = self.client.post(USER_LOGIN, {"username": "dave", "password": self.password},
                                  REMOTE_ADDR="198.51.100.1", HTTP_ACCEPT_LANGUAGE="cs")
        assert "Příliš mnoho neúspěšných pokusů o přihlášení. Zkuste to znovu za 15 minut." \
            in answer.content.decode()

    def test_below_the_limit_the_right_password_signs_in_and_wipes_the_count(self) -> None:
        self._fail("dave", 4)
        assert self._sign_in("dave", self.password).status_code == 302
        self._fail("dave", 4)   # counted afresh: four more are still allowed
        assert self._sign_in("dave", self.password).status_code == 302

    def test_an_unknown_account_gets_the_same_answers_as_a_real_one(self) -> None:
        real, unknown = [], []
        for _ in range(6):
            real.append(self._sign_in("dave", "wrong guess").content.decode())
            unknown.append(self._sign_in("nobody", "wrong guess").content.decode())
        token = 'name="csrfmiddlewaretoken" value="'

        def without_tokens(page: str) -> str:
            return "".join(part.split('"', 1)[-1] for part in page.split(token)).replace(
                "dave", "NAME").replace("nobody", "NAME")

        assert [without_tokens(p) for p in real] == [without_tokens(p) for p in unknown]
        assert LOCKED in real[-1]

    def test_the_account_is_counted_whatever_its_letter_case(self) -> None:
        for name in ("dave", "Dave", " DAVE", "dAve", "DavE"):
            self._sign_in(name, "wrong guess")
        assert LOCKED in self._sign_in("dave", self.password).content.decode()

    def test_the_lockout_ends_when_the_failures_leave_the_window(self) -> None:
        self._fail("dave", 5)
        assert LOCKED in self._sign_in("dave", self.password).content.decode()
        SignInFailure.objects.update(at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        assert self._sign_in("dave", self.password).status_code == 302

    @override_settings(SIGNIN_FAILURES_PER_ADDRESS=6)
    def test_one_address_guessing_many_accounts_is_locked_out(self) -> None:
        for name in ("a1", "a2", "a3", "a4", "a5", "a6"):
            self._sign_in(name, "wrong guess", address="203.0.113.9")
        refused = self._sign_in("dave", self.password, address="203.0.113.9")
        assert LOCKED in refused.content.decode()
        # Dave himself, from elsewhere, is not hindered by the guesser.
        assert self._sign_in("dave", self.password, address="198.51.100.2").status_code == 302

    def test_the_admin_sign_in_is_throttled_and_shares_the_count(self) -> None:
        self._fail("bob", 3)
        self._fail("bob", 2, url=ADMIN_LOGIN)
        answer = self._sign_in("bob", self.password, url=ADMIN_LOGIN)
        assert answer.status_code == 200
        assert LOCKED in answer.content.decode()
        assert "_auth_user_id" not in self.client.session

    def test_a_staff_sign_in_to_the_admin_still_works(self) -> None:
        assert self._sign_in("bob", self.password, url=ADMIN_LOGIN).status_code == 302

    def test_neither_user_names_nor_addresses_are_stored_in_the_clear(self) -> None:
        self._sign_in("my-password-typed-as-name", "wrong guess", address="192.0.2.77")
        stored = list(SignInFailure.objects.values_list("key", flat=True))
        assert len(stored) == 2
        assert not any("my-password" in key or "192.0.2.77" in key for key in stored)


@override_settings(TRUSTED_PROXIES=["127.0.0.1"])
def test_the_client_address_is_read_through_trusted_proxies_only() -> None:
    factory = RequestFactory()
    through_nginx = factory.get("/", REMOTE_ADDR="127.0.0.1",
                                HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.7")
    assert client_address(through_nginx) == "203.0.113.7"
    # Anyone else may write anything into the header: it is not believed.
    direct = factory.get("/", REMOTE_ADDR="198.51.100.4", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert client_address(direct) == "198.51.100.4"
    assert client_address(factory.get("/", REMOTE_ADDR="127.0.0.1")) == "127.0.0.1"
