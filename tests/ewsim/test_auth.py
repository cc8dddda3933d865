from __future__ import annotations

import pytest
from exchangelib import (
    DELEGATE,
    IMPERSONATION,
    NTLM,
    OAUTH2,
    Account,
    Configuration,
    Identity,
    OAuth2Credentials,
)
from exchangelib.errors import (
    ErrorImpersonateUserDenied,
    ErrorInvalidExchangeImpersonationHeaderData,
    ErrorNonExistentMailbox,
    UnauthorizedError,
)

from .conftest import TZ, VERSION, make_account


def test_basic_auth_with_a_wrong_password_is_unauthorized(ewsim):
    account = make_account(ewsim, password="wrong")
    with pytest.raises(UnauthorizedError):
        account.root.refresh()


@pytest.mark.parametrize("username", ["EXAMPLE\\alice", "alice@example.com"])
def test_ntlm_authenticates_domain_and_email_logins(ewsim, username):
    account = make_account(ewsim, username=username, auth_type=NTLM)
    assert account.inbox.name == "Inbox"
    assert account.inbox.all().count() == 0   # second request rides the authenticated connection


def test_ntlm_with_a_wrong_password_is_unauthorized(ewsim):
    account = make_account(ewsim, username="EXAMPLE\\alice", password="nope", auth_type=NTLM)
    with pytest.raises(UnauthorizedError):
        account.root.refresh()


def test_impersonation_needs_the_right_to_impersonate(ewsim):
    ewsim.server.store.add_user("svc@example.com", "svc-pw", can_impersonate=["alice@example.com"])
    ewsim.server.store.add_user("bob@example.com", "bob-pw")
    ok = make_account(ewsim, "svc@example.com", "svc-pw", access_type=IMPERSONATION,
                      primary="alice@example.com")
    assert ok.inbox.name == "Inbox"
    denied = make_account(ewsim, "svc@example.com", "svc-pw", access_type=IMPERSONATION,
                          primary="bob@example.com")
    with pytest.raises(ErrorImpersonateUserDenied):
        denied.inbox.refresh()
    missing = make_account(ewsim, "svc@example.com", "svc-pw", access_type=IMPERSONATION,
                           primary="nobody@example.com")
    with pytest.raises(ErrorNonExistentMailbox):
        missing.inbox.refresh()


def _oauth_config(ewsim, secret="app-secret", identity=True):
    base = ewsim.base_url

    class SimOAuth2Credentials(OAuth2Credentials):
        @property
        def token_url(self):
            return f"{base}/{self.tenant_id}/oauth2/v2.0/token"

    creds = SimOAuth2Credentials(client_id="app-1", client_secret=secret, tenant_id="tenant-1",
                                 identity=Identity(primary_smtp_address="alice@example.com")
                                 if identity else None)
    return Configuration(service_endpoint=ewsim.url, credentials=creds, auth_type=OAUTH2,
                         version=VERSION)


def test_oauth2_client_credentials_with_impersonation(ewsim, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    ewsim.control.add_app("app-1", "app-secret", tenant="tenant-1")
    account = Account("alice@example.com", config=_oauth_config(ewsim), autodiscover=False,
                      access_type=IMPERSONATION, default_timezone=TZ, locale="en_US")
    assert account.contacts.name == "Contacts"


def test_an_app_only_token_without_impersonation_is_rejected(ewsim, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    ewsim.control.add_app("app-1", "app-secret", tenant="tenant-1")
    account = Account("alice@example.com", config=_oauth_config(ewsim, identity=False),
                      autodiscover=False, access_type=DELEGATE, default_timezone=TZ, locale="en_US")
    with pytest.raises(ErrorInvalidExchangeImpersonationHeaderData):
        account.contacts.refresh()
