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
