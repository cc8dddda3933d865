"""Test connection on an Exchange Online (Microsoft Graph) connection: each thing an
administrator can get wrong in Entra ID or Exchange Online is named in words, against
ewsim's Graph front door and its identity platform (MSAL signs in for real)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from engine.mailbox.diagnose import diagnose
from engine.mailbox.graph import GraphMailbox
from ewsim.testing import SimHandle
from tests.engine.mailbox.graph_access import CLIENT_ID, TENANT, graph_access


def _certificate() -> tuple[str, str]:
    """A fresh key and its self-signed certificate, both PEM (as an admin makes one)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crm-sync")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def test_a_working_connection_signs_in_and_opens_the_mailbox(ewsim: SimHandle) -> None:
    report = diagnose(graph_access(ewsim), "graph")
    assert report.ok, report.message
    assert report.server_version == "Microsoft Graph v1.0"
    assert [s.name for s in report.steps] == ["dns", "tcp", "http", "mailbox"]


def test_missing_admin_consent_says_which_permissions_to_grant(ewsim: SimHandle) -> None:
    access = graph_access(ewsim)
    ewsim.control.set_app(CLIENT_ID, admin_consent=False)
    report = diagnose(access, "graph")
    assert (report.ok, report.reason) == (False, "impersonation")
    assert "admin consent" in report.message and "Mail.ReadWrite" in report.message


def test_a_wrong_tenant_is_named(ewsim: SimHandle) -> None:
    access = graph_access(ewsim)
    wrong = dataclasses.replace(
        access, tenant_id="fabrikam-tenant",
        token_url=f"{ewsim.https_base_url}/fabrikam-tenant/oauth2/v2.0/token")
    report = diagnose(wrong, "graph")
    assert (report.ok, report.reason) == (False, "auth")
    assert "The tenant 'fabrikam-tenant' does not exist" in report.message


def test_a_wrong_secret_is_named(ewsim: SimHandle) -> None:
    access = dataclasses.replace(graph_access(ewsim), secret="not-the-secret")
    report = diagnose(access, "graph")
    assert (report.ok, report.reason) == (False, "auth")
    assert "client secret" in report.message and "wrong or has expired" in report.message


def test_an_app_registered_in_another_tenant_is_named(ewsim: SimHandle) -> None:
    access = graph_access(ewsim)
    ewsim.control.add_app("0f0e0d0c-0b0a-4908-8706-050403020100", "other",
                          tenant="fabrikam-tenant")
    wrong = dataclasses.replace(access, client_id="0f0e0d0c-0b0a-4908-8706-050403020100",
                                secret="other")
    report = diagnose(wrong, "graph")
    assert (report.ok, report.reason) == (False, "auth")
    assert "There is no application" in report.message


def test_a_mailbox_that_does_not_exist_is_named(ewsim: SimHandle) -> None:
    access = dataclasses.replace(graph_access(ewsim), mailbox="nobody@example.com")
    report = diagnose(access, "graph")
    assert (report.ok, report.reason) == (False, "mailbox")
    assert "There is no mailbox nobody@example.com" in report.message


def test_a_mailbox_without_an_exchange_online_licence_is_named(ewsim: SimHandle) -> None:
    access = graph_access(ewsim)
    ewsim.control.set_mailbox(ewsim.user, rest_enabled=False)
    report = diagnose(access, "graph")
    assert (report.ok, report.reason) == (False, "mailbox")
    assert "no Exchange Online licence" in report.message


def test_a_certificate_signs_in_instead_of_a_secret(ewsim: SimHandle) -> None:
    key, cert = _certificate()
    access = dataclasses.replace(graph_access(ewsim), secret=key + cert)
    ewsim.control.set_app(CLIENT_ID, certificate=cert, client_secret="")
    assert diagnose(access, "graph").ok

    _, other = _certificate()   # the app registration holds another certificate
    ewsim.control.set_app(CLIENT_ID, certificate=other)
    refused = diagnose(dataclasses.replace(access, settings_version="other"), "graph")
    assert (refused.ok, refused.reason) == (False, "auth")
    assert "certificate" in refused.message


def test_a_refused_token_is_fetched_again_once(ewsim: SimHandle) -> None:
    """Tokens are cached per connection; one Graph no longer takes is replaced, not kept."""
    access = graph_access(ewsim)
    with GraphMailbox(access) as mailbox:
        mailbox.check()
    ewsim.control.expire_tokens()
    with GraphMailbox(access) as mailbox:
        assert mailbox.check().mailbox == ewsim.user
        assert mailbox.requests_made == 2   # the refused request, and the one after


@pytest.mark.parametrize("tenant", [TENANT])
def test_tokens_are_reused_across_mailbox_objects(ewsim: SimHandle, tenant: str) -> None:
    access = graph_access(ewsim)
    issued_before = len(ewsim.server.store.tokens)
    for _ in range(3):
        with GraphMailbox(access) as mailbox:
            mailbox.check()
    assert len(ewsim.server.store.tokens) - issued_before == 1


def test_a_graph_url_that_is_no_web_address_says_to_leave_it_blank(ewsim: SimHandle) -> None:
    access = dataclasses.replace(graph_access(ewsim), endpoint="graph.microsoft.com")
    report = diagnose(access, "graph")
    assert (report.ok, report.reason) == (False, "setup")
    assert "leave it blank" in report.message
