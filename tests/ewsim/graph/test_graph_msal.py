"""MSAL itself (the backend's library) runs against the simulator's TLS listener."""

from __future__ import annotations

import pytest

from .client import Graph

msal = pytest.importorskip("msal")


@pytest.fixture(autouse=True)
def _trust_only_the_simulator(monkeypatch):
    # requests lets these variables override a session's `verify` (psf/requests#3829),
    # which is how MSAL passes the simulator's certificate on.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def _app(ewsim, secret: str = "app-secret", tenant: str = "tenant-1"):
    return msal.ConfidentialClientApplication(
        "app-1", client_credential=secret, authority=f"{ewsim.https_base_url}/{tenant}",
        verify=ewsim.tls_ca_file, instance_discovery=False)


def test_msal_client_credentials_token_opens_graph_and_is_cached(ewsim):
    ewsim.control.add_app("app-1", "app-secret", tenant="tenant-1")
    app = _app(ewsim)
    result = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
    assert "access_token" in result, result
    graph = Graph(ewsim, result["access_token"])
    assert graph.get("mailFolders/inbox").status == 200
    again = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
    assert again["access_token"] == result["access_token"]
    assert again.get("token_source") == "cache"


def test_msal_reports_wrong_secret_and_unknown_tenant(ewsim):
    ewsim.control.add_app("app-1", "app-secret", tenant="tenant-1")
    wrong = _app(ewsim, secret="nope").acquire_token_for_client(
        scopes=["https://graph.microsoft.com/.default"])
    assert wrong["error"] == "invalid_client"
    assert wrong["error_description"].startswith("AADSTS7000215")
    # Tenant discovery answers 400 AADSTS90002; MSAL turns that into this ValueError.
    with pytest.raises(ValueError, match="double check your tenant"):
        _app(ewsim, tenant="no-such-tenant")


def test_msal_certificate_credential_is_accepted_and_another_key_refused(ewsim):
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    def make() -> tuple[str, str, str]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app-1")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(7).not_valid_before(now)
                .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        return (key_pem, cert.public_bytes(serialization.Encoding.PEM).decode(),
                cert.fingerprint(hashes.SHA1()).hex())   # MSAL sends it as x5t

    key_pem, cert_pem, thumbprint = make()
    ewsim.control.add_app("app-1", "", tenant="tenant-1", certificate=cert_pem)

    def ask(credential: dict) -> dict:
        app = msal.ConfidentialClientApplication(
            "app-1", client_credential=credential, authority=f"{ewsim.https_base_url}/tenant-1",
            verify=ewsim.tls_ca_file, instance_discovery=False)
        return app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])

    assert "access_token" in ask({"private_key": key_pem, "thumbprint": thumbprint})
    assert "access_token" in ask({"private_key": key_pem, "public_certificate": cert_pem})
    other_key, _other_cert, other_thumbprint = make()
    refused = ask({"private_key": other_key, "thumbprint": other_thumbprint})
    assert refused["error"] == "invalid_client"
    assert refused["error_description"].startswith("AADSTS700027")
