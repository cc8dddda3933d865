"""HTTP authentication: Basic, NTLM (pyspnego acceptor, connection-bound) and OAuth2 bearer.

NTLM: pyspnego's acceptor reads credentials from the file named by NTLM_USER_FILE
(process-global). We keep one file for the whole process holding the users of every
live simulator, rewritten when it changes (notes §3.1 Auth modes).
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
import threading
import weakref
from typing import Any

from . import ids
from .store import Principal, Store

log = logging.getLogger("ewsim")
_ntlm_lock = threading.Lock()
_ntlm_stores: weakref.WeakSet[Store] = weakref.WeakSet()
_ntlm_file: str | None = None
_ntlm_content: str | None = None


def register_store(store: Store) -> None:
    _ntlm_stores.add(store)


def _sync_ntlm_file() -> None:
    global _ntlm_file, _ntlm_content
    lines: list[str] = []
    for store in list(_ntlm_stores):
        with store.lock:
            for user in store.users.values():
                # ':user@x:pw' for e-mail logins (exchangelib sends '\user@x'), plus DOMAIN:account.
                lines.append(f":{user.address}:{user.password}")
                if user.domain:
                    lines.append(f"{user.domain}:{user.account}:{user.password}")
                lines.append(f":{user.account}:{user.password}")
    content = "\n".join(lines) + "\n"
    with _ntlm_lock:
        if _ntlm_file is None:
            fd, _ntlm_file = tempfile.mkstemp(prefix="ewsim-ntlm-", suffix=".txt")
            os.close(fd)
        os.environ["NTLM_USER_FILE"] = _ntlm_file
        if content != _ntlm_content:
            tmp = _ntlm_file + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(content)
            os.replace(tmp, _ntlm_file)
            _ntlm_content = content


class AuthResult:
    def __init__(self, principal: Principal | None = None,
                 challenge: list[str] | None = None) -> None:
        self.principal = principal
        self.challenge = challenge or []   # WWW-Authenticate values for a 401


def challenges(modes: set[str]) -> list[str]:
    out = []
    if "ntlm" in modes:
        out.append("NTLM")
    if "basic" in modes:
        out.append('Basic realm="ewsim"')
    if "bearer" in modes:
        out.append('Bearer authorization_uri="https://login.microsoftonline.com/common"')
    return out


def authenticate(store: Store, handler: Any, modes: set[str]) -> AuthResult:
    """Authenticate one request. `handler` keeps NTLM state for its TCP connection."""
    header = handler.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if not header:
        # IIS-style connection auth: later requests on an NTLM-authenticated connection
        # carry no Authorization header at all (notes §3.1).
        principal = getattr(handler, "ntlm_principal", None)
        if principal is not None:
            return AuthResult(principal)
        return AuthResult(challenge=challenges(modes))
    if scheme == "basic" and "basic" in modes:
        try:
            login, _, password = base64.b64decode(value).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return AuthResult(challenge=challenges(modes))
        with store.lock:
            user = store.find_user(login)
        if user is not None and user.password == password:
            return AuthResult(Principal(user=user))
        return AuthResult(challenge=challenges(modes))
    if scheme == "bearer" and "bearer" in modes:
        with store.lock:
            principal = store.tokens.get(value.strip())
        if principal is not None:
            return AuthResult(principal)
        return AuthResult(challenge=challenges(modes))
    if scheme in ("ntlm", "negotiate") and "ntlm" in modes:
        return _ntlm_step(store, handler, value.strip(), modes)
    return AuthResult(challenge=challenges(modes))


def _ntlm_step(store: Store, handler: Any, token: str, modes: set[str]) -> AuthResult:
    import spnego

    try:
        raw = base64.b64decode(token)
    except ValueError:
        return AuthResult(challenge=challenges(modes))
    # Message type 1 (NEGOTIATE) starts a new handshake on this connection.
    if raw[8:9] == b"\x01" or getattr(handler, "ntlm_ctx", None) is None:
        _sync_ntlm_file()
        handler.ntlm_ctx = spnego.server(protocol="ntlm")
        handler.ntlm_principal = None
    ctx = handler.ntlm_ctx
    try:
        out = ctx.step(raw)
    except Exception as exc:
        # A message out of order (AUTHENTICATE with no NEGOTIATE before it on this
        # connection) or not NTLM at all: pyspnego's parsers raise SpnegoError, ValueError,
        # struct.error... as the bytes lead them. IIS answers any of it 401 and keeps the
        # connection, so the client may start again; the handshake state is dropped.
        log.debug("ewsim: NTLM message refused: %r", exc)
        handler.ntlm_ctx = None
        return AuthResult(challenge=challenges(modes))
    if not ctx.complete:
        return AuthResult(challenge=[f"NTLM {base64.b64encode(out or b'').decode()}"])
    handler.ntlm_ctx = None
    with store.lock:
        user = store.find_user(ctx.client_principal or "")
    if user is None:
        return AuthResult(challenge=challenges(modes))
    handler.ntlm_principal = Principal(user=user)
    return AuthResult(handler.ntlm_principal)


def issue_token(store: Store, form: dict[str, str], basic: str | None,
                tenant: str) -> tuple[int, dict[str, Any]]:
    """The client-credentials / ROPC token endpoint `/{tenant}/oauth2/v2.0/token`.

    Client secret (form or Basic) or client assertion (a JWT signed with the app's
    certificate, what MSAL sends for certificate credentials). Errors as Entra ID words
    them: unknown tenant AADSTS90002, unknown app AADSTS700016, wrong secret AADSTS7000215.
    """
    from . import oidc

    client_id = form.get("client_id", "")
    secret = form.get("client_secret", "")
    if basic:
        client_id, _, secret = base64.b64decode(basic).decode().partition(":")
    with store.lock:
        if not oidc.known_tenant(store, tenant):
            return 400, {**oidc.unknown_tenant(tenant), "error": "invalid_request"}
        app = store.apps.get(client_id)
        if app is None or app.tenant.lower() not in (tenant.lower(), "common"):
            return 400, {"error": "unauthorized_client",
                         "error_description": f"AADSTS700016: Application with identifier "
                                              f"'{client_id}' was not found in the directory "
                                              f"'{tenant}'."}
        assertion = form.get("client_assertion")
        if assertion is not None:
            if form.get("client_assertion_type") != oidc.JWT_BEARER:
                return 400, {"error": "invalid_request",
                             "error_description": "AADSTS50027: Invalid client assertion "
                                                  "type."}
            problem = oidc.check_assertion(app, assertion)
            if problem is not None:
                return 401, {"error": "invalid_client", "error_description": problem}
        elif app.client_secret != secret:
            return 401, {"error": "invalid_client",
                         "error_description": "AADSTS7000215: Invalid client secret provided."}
        grant = form.get("grant_type")
        if grant == "client_credentials":
            principal = Principal(app=app)
        elif grant == "password":
            user = store.find_user(form.get("username", ""))
            if user is None or user.password != form.get("password"):
                return 400, {"error": "invalid_grant",
                             "error_description": "AADSTS50126: Invalid username or password."}
            principal = Principal(user=user)
        else:
            return 400, {"error": "unsupported_grant_type"}
        access = ids.token()
        store.tokens[access] = principal
    return 200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                 "access_token": access, "scope": form.get("scope", "")}
