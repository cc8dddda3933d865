from __future__ import annotations

import base64
import http.client
import logging

import pytest
import spnego
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


# --- NTLM messages out of order ----------------------------------------------------------
# [MS-NTHT] NTLM Over HTTP Protocol (IIS's NTLM, RFC 4559 with raw MS-NLMP messages),
# https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-ntht/
#   395fbc77-deed-4eb4-9d76-d2c82a6e22f8 :
# the handshake is bound to one connection, and a message the server cannot use (here an
# AUTHENTICATE with no NEGOTIATE before it on that connection, or bytes that are no NTLM
# message) is answered 401 with `WWW-Authenticate: NTLM`, the connection kept for a new
# handshake, never a dropped connection.

GET_INBOX = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
    b'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
    b'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
    b'<s:Header><t:RequestServerVersion Version="Exchange2016"/></s:Header><s:Body>'
    b'<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>'
    b'<m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>'
    b'</s:Body></s:Envelope>')


def _post(conn: http.client.HTTPConnection, token: bytes | None,
          scheme: str = "NTLM") -> tuple[int, list[str]]:
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    if token is not None:
        headers["Authorization"] = f"{scheme} {base64.b64encode(token).decode()}"
    conn.request("POST", "/EWS/Exchange.asmx", body=GET_INBOX, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status, response.headers.get_all("WWW-Authenticate") or []


def _challenge(values: list[str]) -> bytes:
    (value,) = [v for v in values if v.startswith("NTLM ")]
    return base64.b64decode(value[5:])


@pytest.fixture
def ntlm_connection(ewsim, caplog):
    caplog.set_level(logging.DEBUG, logger="ewsim")
    conn = http.client.HTTPConnection(ewsim.server.host, ewsim.server.port, timeout=10)
    yield conn
    conn.close()
    # Nothing went wrong inside the server: no exception logged (the `ewsim` fixture also
    # fails a test on any internal error it recorded).
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def _client() -> spnego.ContextProxy:
    return spnego.client("EXAMPLE\\alice", "alice-secret", protocol="ntlm")


def test_ntlm_authenticate_without_negotiate_is_401_and_the_connection_stays(
        ewsim, ntlm_connection, capfd):
    # A complete AUTHENTICATE message, made for a challenge another connection was given.
    elsewhere = http.client.HTTPConnection(ewsim.server.host, ewsim.server.port, timeout=10)
    client = _client()
    _status, values = _post(elsewhere, client.step())
    authenticate = client.step(_challenge(values))
    elsewhere.close()
    status, values = _post(ntlm_connection, authenticate)
    assert status == 401 and "NTLM" in values
    # The same connection then authenticates from the start.
    client = _client()
    status, values = _post(ntlm_connection, client.step())
    assert status == 401
    assert _post(ntlm_connection, client.step(_challenge(values)))[0] == 200
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("token", [b"garbage that is no NTLM message", b"", b"NTLMSSP\x00\x03",
                                   b"NTLMSSP\x00\x01\x00\x00\x00"])
def test_a_message_that_is_not_ntlm_is_401(ntlm_connection, capfd, token):
    status, values = _post(ntlm_connection, token)
    assert status == 401 and "NTLM" in values
    assert "Traceback" not in capfd.readouterr().err


def test_undecodable_base64_and_negotiate_scheme_are_401(ntlm_connection, capfd):
    for header in ("NTLM !!!not-base64", "Negotiate TlRMTVNTUAADAAAA"):
        ntlm_connection.request("POST", "/EWS/Exchange.asmx", body=GET_INBOX,
                                headers={"Authorization": header})
        response = ntlm_connection.getresponse()
        response.read()
        assert response.status == 401 and "NTLM" in response.headers.get_all("WWW-Authenticate")
    assert "Traceback" not in capfd.readouterr().err


def test_a_second_negotiate_restarts_the_handshake(ntlm_connection):
    client = _client()
    negotiate = client.step()
    assert _post(ntlm_connection, negotiate)[0] == 401
    status, values = _post(ntlm_connection, negotiate)   # the first challenge is dropped
    assert status == 401
    assert _post(ntlm_connection, client.step(_challenge(values)))[0] == 200
    # An AUTHENTICATE replayed on the authenticated connection is refused like any other.
    assert _post(ntlm_connection, b"NTLMSSP\x00\x03\x00\x00\x00" + bytes(60))[0] == 401
