"""The Microsoft identity platform documents MSAL reads before it asks for a token.

`GET /{tenant}/v2.0/.well-known/openid-configuration` (tenant discovery) and
`GET /common/discovery/instance` (instance discovery, used only when a client points
MSAL's `instance_discovery` at it). MSAL requires https authorities, so these are
useful on ewsim's TLS listener (`EwsServer(tls=True)`); the endpoints they announce use
the scheme and host the request came in on. Client assertions (certificate credentials)
are checked here too.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.parse
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .store import App, Store

OPENID_PATH = re.compile(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration/?$")
DISCOVERY_PATH = "/common/discovery/instance"
GENERIC_TENANTS = {"common", "organizations", "consumers"}
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def known_tenant(store: Store, tenant: str) -> bool:
    return tenant.lower() in GENERIC_TENANTS or any(
        app.tenant.lower() == tenant.lower() for app in store.apps.values())


def unknown_tenant(tenant: str) -> dict[str, Any]:
    return {"error": "invalid_tenant",
            "error_description": f"AADSTS90002: Tenant '{tenant}' not found. Check to make "
                                 f"sure you have the correct tenant ID and are signing into "
                                 f"the correct cloud."}


def openid_configuration(base: str, tenant: str) -> dict[str, Any]:
    authority = f"{base}/{tenant}"
    return {
        "token_endpoint": f"{authority}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                  "client_secret_basic"],
        "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/{tenant}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{authority}/oauth2/v2.0/devicecode",
        "http_logout_supported": True, "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{authority}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "ver"],
        "tenant_region_scope": "EU", "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net", "msgraph_host": "graph.microsoft.com",
    }


def instance_discovery(base: str, query: dict[str, str]) -> dict[str, Any]:
    endpoint = query.get("authorization_endpoint", "")
    path = urllib.parse.urlsplit(endpoint).path.split("/")
    tenant = path[1] if len(path) > 1 and path[1] else "common"
    host = urllib.parse.urlsplit(base).netloc
    return {"tenant_discovery_endpoint":
            f"{base}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host,
                          "aliases": [host]}]}


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_assertion(app: App, assertion: str) -> str | None:
    """Verify a client assertion JWT (RS256 or PS256) against the app's certificate.

    Returns None when valid, else the AADSTS error text Entra ID answers.
    """
    if not app.certificate_pem:
        return ("AADSTS700027: The certificate with identifier used to sign the client "
                "assertion is not registered on application.")
    try:
        head_b64, payload_b64, sig_b64 = assertion.split(".")
        header = json.loads(_b64(head_b64))
        payload = json.loads(_b64(payload_b64))
        signature = _b64(sig_b64)
    except (ValueError, TypeError):
        return "AADSTS50027: JWT token is invalid or malformed."
    cert = x509.load_pem_x509_certificate(app.certificate_pem.encode())
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return "AADSTS700027: Only RSA certificates are supported."
    alg = header.get("alg")
    pad: padding.AsymmetricPadding
    if alg == "RS256":
        pad = padding.PKCS1v15()
    elif alg == "PS256":
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size)
    else:
        return f"AADSTS5002730: Invalid JWT token. Unsupported algorithm {alg!r}."
    try:
        key.verify(signature, f"{head_b64}.{payload_b64}".encode(), pad, hashes.SHA256())
    except InvalidSignature:
        return "AADSTS700027: Client assertion contains an invalid signature."
    if payload.get("iss") != app.client_id or payload.get("sub") != app.client_id:
        return "AADSTS700023: Client assertion audience claim does not match the issuer."
    if float(payload.get("exp", 0)) < time.time():
        return "AADSTS700024: Client assertion is not within its valid time range."
    return None
