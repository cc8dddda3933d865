"""Talking to Microsoft Graph: app-only tokens (MSAL), throttling, `$batch`, errors in words.

- Tokens: MSAL's client-credentials flow with a client secret or a certificate (a PEM holding
  the private key and its certificate, stored where a secret would be). One MSAL application
  per connection and process, so its token cache serves every mailbox; MSAL hands out the
  cached token until shortly before it expires, then fetches a new one. A token Graph refuses
  (401) is dropped and fetched once again.
- A token endpoint of the connection's own (a national cloud, a proxy, a loopback test server)
  is reached through MSAL's pluggable HTTP client: MSAL accepts only https authorities on
  Microsoft's hosts, so it is given Microsoft's authority and its requests are sent on.
- Throttling: 429 and 503 are waited out as `Retry-After` says, within the run's budget
  (`MailboxAccess.throttle_budget_seconds`), then `Throttled`; at most 4 requests per mailbox
  are under way at once (Graph's limit for Outlook resources), however many threads ask.
- `$batch`: up to 20 requests in one, a result per request in the order given; requests
  throttled inside a batch are sent again after their wait.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from engine.mailbox.base import (
    AuthenticationFailed,
    ConnectionRefused,
    DnsFailure,
    FolderNotFound,
    ImpersonationDenied,
    MailboxAccess,
    MailboxError,
    MailboxNotFound,
    NetworkRefused,
    ServiceUnavailable,
    Throttled,
    TimedOut,
    TlsFailure,
    status_words,
    tls_reason,
)
from profiles.certificates import CERTIFICATE_PEM, PRIVATE_KEY_PEM, normalize_pem
from security.outbound import AddressRefused, checked_session

GRAPH_ROOT = "https://graph.microsoft.com/v1.0"
LOGIN_HOST = "https://login.microsoftonline.com"
BATCH_LIMIT = 20              # requests per $batch (Graph's limit)
CONCURRENCY = 4               # requests under way per mailbox (Graph's limit for Outlook)
TIMEOUT = 60                  # seconds per request
DEFAULT_RETRY_AFTER = 2.0     # when a 429/503 names no wait
IMMUTABLE_IDS = 'IdType="ImmutableId"'
CHUNK = 256 * 1024


# --- errors ---------------------------------------------------------------------------------
class GraphError(Exception):
    """A Graph (or token endpoint) answer >= 300 (a redirect is not followed)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        # Its text is the status alone: the server's words stay in `code` and `message`, for
        # the code that picks our words, and out of any log line or stored error.
        super().__init__(status_words(status))
        self.status, self.code, self.message = status, code, message


def error_from(status: int, body: Any) -> GraphError:
    """A GraphError from an answer's status and JSON body (`{"error": {"code", "message"}}`)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return GraphError(status, str(error.get("code") or ""), str(error.get("message") or ""))
    if isinstance(error, str):   # the token endpoint: {"error": "...", "error_description"}
        return GraphError(status, error, str(body.get("error_description") or ""))
    return GraphError(status, "", _short(str(body or "")))


def _short(text: str, limit: int = 300) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[:limit] + "…"


# Entra's answers to a token request that a person can act on, by their AADSTS code.
def _token_problem(error: GraphError, access: MailboxAccess) -> MailboxError:
    text = f"{error.code} {error.message}"
    lowered = text.lower()
    if "AADSTS700016" in text:
        return AuthenticationFailed(
            f"There is no application {access.client_id!r} in the tenant {access.tenant_id!r}: "
            "check the client id, and that the app is registered in this tenant.")
    if "AADSTS90002" in text or "AADSTS900023" in text or "authority configuration" in \
            lowered or ("tenant" in lowered and "not found" in lowered):
        return AuthenticationFailed(
            f"The tenant {access.tenant_id!r} does not exist: check the tenant id (a GUID, or "
            f"a domain such as contoso.onmicrosoft.com).")
    if "AADSTS7000215" in text or "AADSTS7000222" in text:
        return AuthenticationFailed(
            f"The client secret of the application {access.client_id!r} is wrong or has "
            "expired: create a new secret in Entra ID and store it here.")
    if "AADSTS700027" in text or "AADSTS700023" in text or "certificate" in text.lower():
        return AuthenticationFailed(
            f"The certificate of the application {access.client_id!r} was refused: upload its "
            "public certificate to the app registration in Entra ID.")
    if "AADSTS65001" in text or "consent" in text.lower():
        return _no_consent(access)
    # Only Entra's AADSTS number is repeated: the rest of the answer is the token endpoint's
    # own words, and a connection's token endpoint may be any server.
    number = re.search(r"AADSTS\d{1,9}", text)
    return AuthenticationFailed(f"Signing in as the application {access.client_id!r} failed "
                                f"({number.group(0) if number else status_words(error.status)}).")


def _no_consent(access: MailboxAccess) -> MailboxError:
    return ImpersonationDenied(
        f"The application {access.client_id!r} may not open {access.mailbox}: an administrator "
        "must grant it admin consent for the application permissions Mail.ReadWrite, "
        "Calendars.ReadWrite and Contacts.ReadWrite (and no application access policy may "
        "exclude this mailbox).")


def translate(exc: BaseException, access: MailboxAccess) -> MailboxError:
    """Whatever Graph, the token endpoint or the network raised, as a MailboxError in words.

    The error's code picks the words; what the server wrote (its message, its body) is never
    repeated, since a connection's Graph root or token endpoint may be any server."""
    if isinstance(exc, MailboxError):
        return exc
    if isinstance(exc, AddressRefused):
        return NetworkRefused(exc.message)
    host = urlsplit(access.endpoint or GRAPH_ROOT).hostname or access.endpoint
    if isinstance(exc, GraphError):
        code = exc.code
        if exc.status == 401:
            return AuthenticationFailed(
                f"Microsoft Graph refused the token of the application {access.client_id!r} "
                "(HTTP 401 Unauthorized).")
        if code == "MailboxNotEnabledForRESTAPI" or "MailboxNotEnabled" in code:
            return MailboxNotFound(
                f"The mailbox {access.mailbox} cannot be reached through Microsoft Graph: it "
                "has no Exchange Online licence, is inactive, or is hosted on-premises (sync "
                "it through an Exchange Server connection).")
        if exc.status == 403 or code in ("ErrorAccessDenied", "Authorization_RequestDenied"):
            return _no_consent(access)
        if (code in ("ErrorInvalidUser", "ResourceNotFound", "Request_ResourceNotFound",
                    "ErrorNonExistentMailbox", "MailboxNotFound") and "user" in \
                (code + exc.message).lower()) or code == "ErrorInvalidUser":
            return MailboxNotFound(f"There is no mailbox {access.mailbox} in this tenant.")
        if code in ("ErrorItemNotFound", "ErrorInvalidIdMalformed") and "folder" in \
                exc.message.lower():
            return FolderNotFound("The folder no longer exists in the mailbox: choose it again.")
        if exc.status in (429, 503) or code in ("ApplicationThrottled", "TooManyRequests"):
            return Throttled(f"{host} is busy and asked to slow down; the next run goes on.")
        if exc.status >= 500:
            return ServiceUnavailable(f"Microsoft Graph answered {status_words(exc.status)}; "
                                      "the next run tries again.")
        return MailboxError(f"Microsoft Graph answered with an error ({status_words(exc.status)}).")
    text = str(exc).lower()
    if isinstance(exc, requests.exceptions.SSLError) or "certificate verify" in text:
        return TlsFailure(f"The TLS connection to {host} failed{tls_reason(str(exc))}. Check "
                          "the certificate, or turn TLS verification off for this connection.")
    if isinstance(exc, requests.exceptions.Timeout):
        return TimedOut(f"{host} did not answer in time.")
    if isinstance(exc, requests.exceptions.ConnectionError | OSError):
        if "name or service not known" in text or "nameresolution" in text or \
                "getaddrinfo" in text or "nodename nor servname" in text:
            return DnsFailure(f"The server name {host} cannot be resolved (DNS).")
        if "refused" in text:
            return ConnectionRefused(f"{host} refused the connection: nothing listens on port "
                                     f"{urlsplit(access.endpoint).port or 443}.")
        return ServiceUnavailable(f"The connection to {host} broke off before an answer came.")
    return MailboxError(f"The connection to {host} failed ({type(exc).__name__}).")


# --- Retry-After ------------------------------------------------------------------------------
def retry_after(value: str | None, default: float = DEFAULT_RETRY_AFTER,
                now: float | None = None) -> float:
    """Seconds to wait, from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None or not str(value).strip():
        return default
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return default
    if when is None:
        return default
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Budget:
    """The waiting for throttling a run may spend, shared by its threads."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds

    def wait(self, seconds: float, host: str) -> None:
        if time.monotonic() + seconds > self.deadline:
            raise Throttled(f"{host} kept asking to slow down for longer than this run may "
                            f"wait ({int(self.seconds)} s); the next run goes on.")
        time.sleep(seconds)


# --- tokens -------------------------------------------------------------------------------------
def client_credential(secret: str) -> str | dict[str, str]:
    """What MSAL takes: the client secret as it is, or a certificate's key and certificate
    (MSAL computes the SHA-256 thumbprint Entra expects from the certificate)."""
    key = PRIVATE_KEY_PEM.search(secret or "")
    if key is None:
        return secret
    secret = normalize_pem(secret)
    key = PRIVATE_KEY_PEM.search(secret)
    assert key is not None
    cert = CERTIFICATE_PEM.search(secret)
    if cert is None:
        raise AuthenticationFailed("The stored certificate holds a private key but no "
                                   "certificate: store both, in PEM.")
    return {"private_key": key.group(0), "public_certificate": cert.group(0)}


class Session(requests.Session):
    """A session whose `verify` holds per request: requests lets REQUESTS_CA_BUNDLE and
    friends override a session's `verify = False` (psf/requests#3829)."""

    def __init__(self) -> None:
        super().__init__()
        checked_session(self)   # every connection through the outbound address policy

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("verify", self.verify)
        kwargs.setdefault("timeout", TIMEOUT)
        # Graph and the identity platform answer where they are asked: a redirect means the
        # URL is not theirs, and is reported (by its status) rather than followed.
        kwargs.setdefault("allow_redirects", False)
        return super().request(method, url, *args, **kwargs)


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
            raise _token_problem(GraphError(400, "invalid_request", str(exc)), access) from exc
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
        raise _token_problem(GraphError(400, "invalid_request", str(exc)), access) from exc
    except requests.RequestException as exc:
        raise translate(exc, access) from exc
    if "access_token" not in result:
        raise _token_problem(GraphError(400, str(result.get("error") or ""),
                                        str(result.get("error_description") or "")), access)
    return str(result["access_token"])


# --- the client ---------------------------------------------------------------------------
_slots: dict[tuple[str, str], threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def _slot(access: MailboxAccess) -> threading.BoundedSemaphore:
    """The mailbox's concurrency limit, shared by every object and thread of this process."""
    key = (access.endpoint, access.mailbox.lower())
    with _slots_lock:
        if key not in _slots:
            _slots[key] = threading.BoundedSemaphore(CONCURRENCY)
        return _slots[key]


@dataclass
class BatchResult:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self) -> GraphError:
        return error_from(self.status, self.body)


@dataclass(frozen=True)
class BatchRequest:
    method: str
    url: str              # relative to the API root: "/users/a@b/contacts/ID"
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def chunked(items: Sequence[Any], size: int = BATCH_LIMIT) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def batch_payload(requests_: Sequence[BatchRequest], prefer: str) -> dict[str, Any]:
    """The JSON of one `$batch` (ids are the positions, so answers map back in order)."""
    payload = []
    for index, request in enumerate(requests_):
        entry: dict[str, Any] = {"id": str(index), "method": request.method, "url": request.url,
                                 "headers": {"Prefer": prefer, **request.headers}}
        if request.body is not None:
            entry["body"] = request.body
            entry["headers"].setdefault("Content-Type", "application/json")
        payload.append(entry)
    return {"requests": payload}


def batch_results(answer: dict[str, Any], count: int) -> list[BatchResult]:
    """The answers of a `$batch`, in the order of its requests (Graph answers in any order);
    a request Graph did not answer comes back as a 500 of its own."""
    results = [BatchResult(500, {"error": {"code": "NoAnswer",
                                           "message": "The batch held no answer for it."}})
               for _ in range(count)]
    for response in answer.get("responses") or []:
        try:
            index = int(response.get("id"))
        except (TypeError, ValueError):
            continue
        if 0 <= index < count:
            headers = {str(k).lower(): str(v) for k, v in (response.get("headers") or {}).items()}
            results[index] = BatchResult(int(response.get("status") or 500),
                                         response.get("body"), headers)
    return results


class GraphClient:
    """Requests to one mailbox's Graph resources (`/users/{mailbox}`)."""

    def __init__(self, access: MailboxAccess, budget: Budget) -> None:
        self.access, self.budget = access, budget
        self.root = (access.endpoint or GRAPH_ROOT).rstrip("/")
        self.user = f"/users/{access.mailbox}"
        self.session = checked_session(Session(), pool_connections=2,
                                       pool_maxsize=CONCURRENCY)
        self.session.verify = access.verify_tls
        self.slot = _slot(access)
        self.host = urlsplit(self.root).hostname or self.root
        self._count_lock = threading.Lock()
        self.requests = 0

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.root + path

    def _send(self, method: str, url: str, *, prefer: str, stream: bool = False,
              **kwargs: Any) -> requests.Response:
        """One request, its token refreshed once if refused, throttling waited out."""
        refreshed = False
        extra = kwargs.pop("headers", None) or {}
        while True:
            headers = {"Authorization": f"Bearer {token(self.access)}", "Prefer": prefer,
                       **extra}
            try:
                with self.slot:
                    response = self.session.request(method, url, headers=headers,
                                                    stream=stream, timeout=TIMEOUT, **kwargs)
                    if not stream:
                        _ = response.content   # read while the slot is held
            except requests.RequestException as exc:
                raise translate(exc, self.access) from exc
            with self._count_lock:
                self.requests += 1
            if response.status_code == 401 and not refreshed:
                response.close()
                forget_tokens(self.access)
                refreshed = True
                continue
            if response.status_code in (429, 503):
                wait = retry_after(response.headers.get("Retry-After"))
                response.close()
                self.budget.wait(wait, self.host)
                continue
            return response

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
             body: Any = None, prefer: str = IMMUTABLE_IDS,
             headers: dict[str, str] | None = None) -> Any:
        """A JSON request; its JSON answer (None for 204), or GraphError."""
        response = self._send(method, self.url(path), prefer=prefer, params=params,
                              json=body, headers=dict(headers or {}))
        return self._json(response)

    def _json(self, response: requests.Response) -> Any:
        try:
            data = response.json() if response.content else None
        except ValueError:
            data = response.text
        if response.status_code >= 300:
            raise error_from(response.status_code, data)
        return data

    @contextlib.contextmanager
    def stream(self, path: str) -> Iterator[requests.Response]:
        """A GET whose body is read in chunks (attachments, MIME): never whole in memory."""
        response = self._send("GET", self.url(path), prefer=IMMUTABLE_IDS, stream=True)
        try:
            if response.status_code >= 300:
                raise error_from(response.status_code, _safe_json(response))
            yield response
        finally:
            response.close()

    def put_bytes(self, path: str, data: bytes, content_type: str) -> Any:
        response = self._send("PUT", self.url(path), prefer=IMMUTABLE_IDS, data=data,
                              headers={"Content-Type": content_type})
        return self._json(response)

    def batch(self, requests_: Sequence[BatchRequest],
              prefer: str = IMMUTABLE_IDS) -> list[BatchResult]:
        """Send `requests_` in `$batch`es of 20; a result per request, in order. Requests
        throttled inside a batch are sent again after the longest wait they were given."""
        results: list[BatchResult | None] = [None] * len(requests_)
        pending = list(range(len(requests_)))
        while pending:
            throttled: list[int] = []
            wait = 0.0
            for chunk in chunked(pending):
                answer = self.call("POST", "/$batch", body=batch_payload(
                    [requests_[i] for i in chunk], prefer))
                for index, result in zip(chunk, batch_results(answer or {}, len(chunk)),
                                         strict=True):
                    if result.status in (429, 503):
                        throttled.append(index)
                        wait = max(wait, retry_after(result.headers.get("retry-after")))
                    else:
                        results[index] = result
            if throttled:
                self.budget.wait(wait, self.host)
            pending = throttled
        return [r for r in results if r is not None]

    def pages(self, path: str, params: dict[str, Any] | None = None,
              prefer: str = IMMUTABLE_IDS) -> Iterator[dict[str, Any]]:
        """A collection, page by page (following @odata.nextLink)."""
        url: str | None = path
        while url:
            data = self.call("GET", url, params=params if url == path else None, prefer=prefer)
            yield data
            url = data.get("@odata.nextLink")


def _safe_json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
