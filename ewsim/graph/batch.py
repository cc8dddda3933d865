"""JSON batching: `POST /$batch` with up to 20 requests, each answered with its own status.

Requests run one after the other in the order given (`dependsOn` is accepted and, as
the order already satisfies it, needs nothing more). Each one goes through the same
routing as a direct request: access checks, concurrency, faults, counters. Binary
answers come back base64-encoded, as Graph returns them inside a batch.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..store import Principal
from .context import GraphRequest, GraphResponse
from .errors import GraphError
from .router import dispatch, error_response

MAX_REQUESTS = 20
WRITES = {"POST", "PATCH", "PUT"}


def _sub_request(spec: Any) -> GraphRequest:
    if not isinstance(spec, dict) or not spec.get("id") or not spec.get("method") \
            or not isinstance(spec.get("url"), str):
        raise GraphError(400, "BadRequest", "Invalid batch payload format.")
    headers = {str(k): str(v) for k, v in (spec.get("headers") or {}).items()}
    lower = {k.lower() for k in headers}
    method = str(spec["method"]).upper()
    body: bytes = b""
    if method in WRITES and spec.get("body") is not None:
        if "content-type" not in lower:
            raise GraphError(400, "BadRequest", f"Write request id : {spec['id']} does not "
                                                f"contain Content-Type header or body.")
        raw = spec["body"]
        body = json.dumps(raw).encode() if isinstance(raw, dict | list) else \
            base64.b64decode(str(raw))
    url = spec["url"]
    if url.startswith(("http://", "https://")):
        raise GraphError(400, "BadRequest", "Invalid request URL: batch request URLs are "
                                            "relative to the version segment.")
    if not url.startswith("/"):
        url = "/" + url
    return GraphRequest.build(method, url, headers, body)


def _answer(request_id: str, response: GraphResponse) -> dict[str, Any]:
    out: dict[str, Any] = {"id": request_id, "status": response.status,
                           "headers": dict(response.headers)}
    if response.body is None:
        return out
    if isinstance(response.body, bytes | memoryview):
        out["headers"]["Content-Type"] = response.content_type
        out["body"] = base64.b64encode(bytes(response.body)).decode()
    else:
        out["headers"]["Content-Type"] = "application/json; odata.metadata=minimal; " \
                                         "odata.streaming=true; IEEE754Compatible=false; " \
                                         "charset=utf-8"
        out["body"] = response.body
    return out


def handle_batch(server: Any, principal: Principal, request: GraphRequest,
                 base_url: str) -> GraphResponse:
    if request.method != "POST":
        return error_response(GraphError(405, "Request_BadRequest",
                                         "The HTTP method is not allowed for $batch."))
    try:
        data = request.json()
        specs = data.get("requests")
        if not isinstance(specs, list) or not specs:
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(specs) > MAX_REQUESTS:
            raise GraphError(400, "BadRequest",
                             f"Limit of {MAX_REQUESTS} requests exceeded.")
        seen: set[str] = set()
        parsed: list[tuple[str, GraphRequest]] = []
        for spec in specs:
            sub = _sub_request(spec)
            request_id = str(spec["id"])
            if request_id in seen:
                raise GraphError(400, "BadRequest",
                                 f"Batch request id '{request_id}' is not unique.")
            seen.add(request_id)
            parsed.append((request_id, sub))
    except GraphError as exc:
        return error_response(exc)
    answers = []
    for request_id, sub in parsed:
        if sub.path.rstrip("/") == "/$batch":
            response = error_response(GraphError(400, "BadRequest",
                                                 "A $batch cannot contain another $batch."))
        else:
            response = dispatch(server, principal, sub, base_url)
        answers.append(_answer(request_id, response))
    return GraphResponse(200, {"responses": answers})
