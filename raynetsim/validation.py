"""Validates the request log against Raynet's specification (openapi.json) with openapi-core:
every request the simulator accepted and every answer it sent. Answers made by an injected
fault are skipped: they stand for a broken Raynet, not for the API.

The specification is a generated file with gaps openapi-core cannot look past; they are
mended here, in one place, each with its reason (see `_mend`)."""

from __future__ import annotations

import copy
import json
import urllib.parse
from functools import cache
from typing import Any

from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response as WerkzeugResponse

from . import spec

SERVER = "https://app.raynet.cz"     # the first of the specification's servers
ERROR_BODY = {"type": "object", "properties": {
    "success": {"type": "boolean"}, "message": {"type": "string"},
    "translatedMessage": {"type": "string"}, "type": {"type": "string"}}}


def _drop_date_time_formats(schema: Any) -> None:
    if isinstance(schema, dict):
        if schema.get("format") == "date-time":
            del schema["format"]
        for value in schema.values():
            _drop_date_time_formats(value)
    elif isinstance(schema, list):
        for value in schema:
            _drop_date_time_formats(value)


def _mend(document: dict[str, Any]) -> dict[str, Any]:
    paths = document["paths"]
    # 1. `GET /{entityName}/ext/{extId}/` (find a record by its external id) is described in
    #    the tag "Externí identifikátor" but missing from `paths`.
    paths["/{entityName}/ext/{extId}/"] = {"get": {
        "operationId": "extIdDetailGet",
        "parameters": [
            {"name": "entityName", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "extId", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "OK", "content": {"application/json": {
            "schema": {"type": "object"}}}}}}}
    for operations in paths.values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            # 2. Dates are typed `date-time` (RFC 3339), but info.description ("Datum a čas")
            #    makes `yyyy-MM-dd HH:mm` the default format, in requests and answers alike.
            _drop_date_time_formats(operation.get("requestBody"))
            # 4. Some path parameters say `required: false` (e.g. personId of
            #    /security/checktoken/…), which OpenAPI forbids and openapi-core refuses.
            for parameter in operation.get("parameters", ()):
                if parameter.get("in") == "path":
                    parameter["required"] = True
                # 6. The extId of `DELETE …/extId/{extId}` is typed integer, though external
                #    ids are text (`erp:123456789` in the specification's own example).
                # 7. Likewise the uuid of `DELETE /webhook/{uuid}/`, which PUT /webhook/ gives
                #    out as hex text.
                if parameter.get("name") in ("extId", "uuid") and parameter.get("in") == "path":
                    parameter["schema"] = {"type": "string"}
            # 3. Errors every operation can answer (401 bad login, 403 blocked address, 404,
            #    429 RequestLimitReached, 400) are described in info.description only.
            # 5. Answers without a body are declared `content: {}`, which openapi-core reads as
            #    a body that must be present (MissingData); without `content` it means none.
            for answer in operation["responses"].values():
                if answer.get("content") == {}:
                    del answer["content"]
            operation["responses"].setdefault("default", {
                "description": "Error", "content": {"application/json": {"schema": ERROR_BODY}}})
    return document


@cache
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(_mend(copy.deepcopy(spec.document())))


def _request(entry: dict[str, Any]) -> WerkzeugOpenAPIRequest:
    headers = {k: v for k, v in entry["headers"].items()
               if k.lower() not in ("host", "content-length")}
    builder = EnvironBuilder(method=entry["method"], base_url=SERVER, path=entry["path"],
                             query_string=entry["query"], headers=headers,
                             data=entry["body"].encode("utf-8"))
    return WerkzeugOpenAPIRequest(builder.get_request())


def _response(entry: dict[str, Any]) -> WerkzeugOpenAPIResponse:
    if entry["response"] is None:
        response = WerkzeugResponse(b"", status=entry["status"],
                                    headers=entry.get("response_headers") or {})
        response.headers.pop("Content-Type", None)
    else:
        response = WerkzeugResponse(json.dumps(entry["response"]), status=entry["status"],
                                    headers=entry.get("response_headers") or {},
                                    content_type="application/json")
    return WerkzeugOpenAPIResponse(response)


def problems(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What in the log the specification refuses; empty when everything is valid."""
    found = []
    for entry in entries:
        if entry.get("fault") or "status" not in entry:
            continue
        where = f"{entry['method']} {entry['path']}"
        if entry["query"]:
            where += "?" + urllib.parse.unquote(entry["query"])
        request = _request(entry)
        try:
            openapi().validate_request(request)
        except Exception as exc:
            found.append({"request": where, "error": _describe(exc)})
            continue
        try:
            openapi().validate_response(request, _response(entry))
        except Exception as exc:
            found.append({"response": where, "status": entry["status"],
                          "error": _describe(exc)})
    return found


def _describe(exc: Exception) -> str:
    causes = [repr(exc)]
    cause = exc.__cause__
    while cause is not None:
        causes.append(repr(cause)[:600])
        cause = cause.__cause__
    return " <- ".join(causes)
