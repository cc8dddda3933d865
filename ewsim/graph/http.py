"""The HTTP side of the Graph front door: bearer auth, request parsing, writing answers.

Binary answers (`/$value`) are written in chunks from the stored bytes after the store
lock is released, so a large attachment is never copied whole.
"""

from __future__ import annotations

import json
import socket
import struct
import uuid
from typing import Any

from ..store import Principal
from .context import GraphRequest, GraphResponse
from .errors import GraphError
from .router import ConnectionResetFault, dispatch, error_response

PREFIX = "/graph/v1.0"
CHUNK = 64 * 1024


def is_graph_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def bearer_principal(server: Any, authorization: str) -> Principal:
    scheme, _, token = authorization.partition(" ")
    if not authorization:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    if scheme.lower() != "bearer" or not token.strip():
        raise GraphError(401, "InvalidAuthenticationToken",
                         "IDX14100: JWT is not well formed, there are no dots (.).")
    token = token.strip()
    with server.store.lock:
        principal = server.store.tokens.get(token)
    if principal is not None:
        return principal
    if token in server.graph.expired_tokens:
        raise GraphError(401, "InvalidAuthenticationToken",
                         "Lifetime validation failed, the token is expired.")
    raise GraphError(401, "InvalidAuthenticationToken",
                     "Access token validation failure. Invalid audience.")


def serve(handler: Any, method: str, body: bytes) -> None:
    """Answer one Graph request on `handler` (ewsim's BaseHTTPRequestHandler)."""
    server = handler.server.ews
    target = handler.path[len(PREFIX):] or "/"
    request = GraphRequest.build(method, target, dict(handler.headers.items()), body,
                                 handler.headers.get_all("Prefer") or [])
    host = handler.headers.get("Host") or f"{server.host}:{handler.server.server_address[1]}"
    scheme = "https" if getattr(handler.server, "tls", False) else "http"
    base_url = f"{scheme}://{host}{PREFIX}"
    try:
        principal = bearer_principal(server, handler.headers.get("Authorization", ""))
        response = dispatch(server, principal, request, base_url)
    except GraphError as exc:
        response = error_response(exc)
    except ConnectionResetFault:
        # SO_LINGER 0 makes close() send RST instead of FIN.
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))
        handler.close_connection = True
        handler.connection.close()
        return
    applied = applied_preferences(request, response)
    if applied:
        response.headers.setdefault("Preference-Applied", applied)
    write(handler, response, request.headers.get("client-request-id"))


def applied_preferences(request: GraphRequest, response: GraphResponse) -> str:
    """Graph names the preferences it honoured in Preference-Applied."""
    if response.status >= 400:
        return ""
    parts = []
    if request.prefer.get("idtype", "").lower() == "immutableid":
        parts.append('IdType="ImmutableId"')
    if "odata.maxpagesize" in request.prefer and isinstance(response.body, dict) \
            and "value" in response.body:
        parts.append(f"odata.maxpagesize={request.prefer['odata.maxpagesize']}")
    if "outlook.timezone" in request.prefer:
        parts.append(f'outlook.timezone="{request.prefer["outlook.timezone"]}"')
    return ", ".join(parts)


def encode(response: GraphResponse) -> bytes:
    if response.body is None:
        return b""
    if isinstance(response.body, bytes | memoryview):
        return bytes(response.body)
    return json.dumps(response.body, ensure_ascii=False, separators=(",", ":")).encode()


def write(handler: Any, response: GraphResponse, client_request_id: str | None) -> None:
    request_id = str(uuid.uuid4())
    headers = {"request-id": request_id, "client-request-id": client_request_id or request_id,
               **response.headers}
    handler.send_response(response.status)
    if isinstance(response.body, bytes | memoryview):
        view = memoryview(response.body)
        handler.send_header("Content-Type", response.content_type)
        handler.send_header("Content-Length", str(len(view)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        for pos in range(0, len(view), CHUNK):
            handler.wfile.write(view[pos:pos + CHUNK])
        return
    data = encode(response)
    if data:
        handler.send_header("Content-Type", response.content_type)
    handler.send_header("Content-Length", str(len(data)))
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.end_headers()
    if data:
        handler.wfile.write(data)
