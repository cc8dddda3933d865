"""App-only tokens for Microsoft Graph (MSAL's client-credentials flow).

- A client secret or a certificate (a PEM holding the private key and its certificate, stored
  where a secret would be). One MSAL application per connection and process, so its token
  cache serves every mailbox; MSAL hands out the cached token until shortly before it
  expires, then fetches a new one.
- A token endpoint of the connection's own (a national cloud, a proxy, a loopback test server)
  is reached through MSAL's pluggable HTTP client: MSAL accepts only https authorities on
  Microsoft's hosts, so it is given Microsoft's authority and its requests are sent on.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from engine.mailbox import GRAPH_ROOT
from engine.mailbox.base import AuthenticationFailed, MailboxAccess
from engine.mailbox.graph_errors import GraphError, token_problem, translate
from engine.mailbox.graph_session import Session
from profiles.certificates import CERTIFICATE_PEM, PRIVATE_KEY_PEM, normalize_pem

LOGIN_HOST = "https://login.microsoftonline.com"


def client_credential(secret: str) -> str | dict[str, str]:
    """What MSAL takes: the client secret as it is, or a certificate's key and certificate
    (MSAL computes the SHA-256 thumbprint Entra expects from the certificate)."""
    pasted = PRIVATE_KEY_PEM.search(secret or "")
    if pasted is None:
        return secret
    secret = normalize_pem(secret)
    # A key whose BEGIN and END lines differ is no PEM block to normalize: MSAL is given it
    # as pasted, and refuses it in its own words.
    key = PRIVATE_KEY_PEM.search(secret) or pasted
    cert = CERTIFICATE_PEM.search(secret)
    if cert is None:
        raise AuthenticationFailed("The stored certificate holds a private key but no "
                                   "certificate: store both, in PEM.")
    return {"private_key": key.group(0), "public_certificate": cert.group(0)}


class _TokenEndpointSession(Session):
    """MSAL's HTTP client for a token endpoint of the connection's own: requests MSAL sends
    to Microsoft's authority go to `token_url` instead, and the authority's metadata (which
    MSAL asks before anything) is answered here from that endpoint."""

    def __init__(self, authority: str, token_url: str, verify: bool) -> None:
        super().__init__()
        self.authority, self.token_url = authority, token_url
        self.verify = verify

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if url.startswith(self.authority) and url.endswith("/.well-known/openid-configuration"):
            answer = requests.Response()
            answer.status_code = 200
            answer._content = json.dumps({
                "authorization_endpoint": f"{self.authority}/oauth2/v2.0/authorize",
                "token_endpoint": f"{self.authority}/oauth2/v2.0/token",
                "issuer": f"{self.authority}/v2.0"}).encode()
            answer.headers["Content-Type"] = "application/json"
            answer.url = url
            return answer
        if url.startswith(f"{self.authority}/oauth2/v2.0/token"):
            url = self.token_url
        return super().request(method, url, *args, **kwargs)


@dataclass
class _App:
    app: Any
    scope: str


_apps: dict[tuple[str, ...], _App] = {}
_apps_lock = threading.Lock()


def _scope(endpoint: str) -> str:
    host = urlsplit(endpoint).hostname or ""
    if not host or host in ("localhost",) or host.startswith("127.") or host == "::1":
        return "https://graph.microsoft.com/.default"
    return f"https://{host}/.default"


TOKEN_PATH = "/oauth2/v2.0/token"


def _authority(access: MailboxAccess) -> tuple[str, Session]:
    """The authority MSAL is given, and its HTTP client. Microsoft's by default; an https
    token endpoint of the connection's own is its authority (a national cloud, a proxy);
    a plain-http one (a test server on this machine) is reached behind Microsoft's."""
    session: Session
    url = access.token_url
    if url.startswith("https://") and url.rstrip("/").endswith(TOKEN_PATH):
        session = Session()
        session.verify = access.verify_tls
        return url.rstrip("/")[:-len(TOKEN_PATH)], session
    authority = f"{LOGIN_HOST}/{access.tenant_id or 'organizations'}"
    if url:
        return authority, _TokenEndpointSession(authority, url, access.verify_tls)
    session = Session()
    session.verify = access.verify_tls
    return authority, session


def _app(access: MailboxAccess) -> _App:
    """The MSAL application of a connection (one per process: its token cache is shared)."""
    import msal

    secret_hash = hashlib.sha256(access.secret.encode()).hexdigest()
    key = (access.tenant_id, access.client_id, secret_hash, access.token_url,
           access.endpoint, access.settings_version, str(access.verify_tls))
    with _apps_lock:
        found = _apps.get(key)
        if found is not None:
            return found
        authority, http_client = _authority(access)
        try:
            app = msal.ConfidentialClientApplication(
                access.client_id, client_credential=client_credential(access.secret),
                authority=authority, http_client=http_client, instance_discovery=False,
                token_cache=msal.TokenCache())
        except ValueError as exc:
            # MSAL reads the authority's metadata first: an unknown tenant fails here.
            raise token_problem(GraphError(400, "invalid_request", str(exc)), access) from exc
        found = _apps[key] = _App(app, _scope(access.endpoint or GRAPH_ROOT))
        return found


def forget_tokens(access: MailboxAccess) -> None:
    """Drop a connection's cached tokens (Graph refused one)."""
    with _apps_lock:
        for key in [k for k in _apps if k[:2] == (access.tenant_id, access.client_id)]:
            del _apps[key]


def token(access: MailboxAccess) -> str:
    entry = _app(access)
    try:
        result = entry.app.acquire_token_for_client(scopes=[entry.scope])
    except ValueError as exc:
        raise token_problem(GraphError(400, "invalid_request", str(exc)), access) from exc
    except requests.RequestException as exc:
        raise translate(exc, access) from exc
    if "access_token" not in result:
        raise token_problem(GraphError(400, str(result.get("error") or ""),
                                        str(result.get("error_description") or "")), access)
    return str(result["access_token"])
