"""The HTTP server: routing, auth, faults, dispatch, validation, capture, streaming."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import socket
import struct
import threading
import time
import traceback
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lxml import etree

from . import auth, control, oidc, schema, soap
from .affinity import AffinityLog
from .context import Context
from .faults import Fault, FaultInjector
from .graph import http as graph_http
from .graph.notifier import Notifier
from .graph.router import load_routes as load_graph_routes
from .graph.state import GraphState
from .ns import PARSER, M, S, T, local, mq, sub
from .operations import load_all
from .operations.attachments import StreamedContent
from .operations.notifications import EventStream
from .soap import EwsFault, error, response_root
from .store import Principal, Store

log = logging.getLogger("ewsim")
TOKEN_PATH = re.compile(r"^/([^/]+)/oauth2/v2\.0/token/?$")
OPENID_PATH = oidc.OPENID_PATH
SERVER_ERROR_PAGE = (b"<html><head><title>Runtime Error</title></head><body>"
                     b"<h1>Server Error in '/EWS' Application.</h1></body></html>")
STREAM_CHUNK = 3 * 64 * 1024   # multiple of 3: base64 chunks concatenate cleanly


class EwsServer:
    """Owns the store and settings; wraps a ThreadingHTTPServer."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency_ms: int = 0,
                 capture_dir: str | None = None, validate: bool = False,
                 auth_modes: set[str] | None = None,
                 notification_minute_seconds: float = 60.0, tls: bool = False,
                 tls_port: int = 0) -> None:
        self.store = Store()
        auth.register_store(self.store)
        self.faults = FaultInjector()
        self.counters: Counter[str] = Counter()      # EWS requests per operation
        # Ids asked per operation, across its requests (GetAttachment): with `counters`, how
        # many one request carried.
        self.ids_asked: Counter[str] = Counter()
        self.graph = GraphState()                   # Graph counters, concurrency, delta expiry
        self.affinity = AffinityLog()               # notification requests' server affinity
        # Graph change-notification subscriptions and their delivery threads.
        self.graph_notifier = Notifier(self.store)
        self.graph_notifier.attach()
        self.sent_log: list[dict[str, Any]] = []
        self.validation_errors: list[dict[str, Any]] = []
        self.internal_errors: list[dict[str, Any]] = []
        self.latency_ms = latency_ms
        self.capture_dir = Path(capture_dir) if capture_dir else None
        self._capture_seq = 0
        self.validate = validate
        self.auth_modes = auth_modes or {"basic", "ntlm", "bearer"}
        # Length of the "minute" in notification timeouts (pull Timeout, streaming
        # ConnectionTimeout, heartbeats); tests shorten it, reset() restores it.
        self.notification_minute_seconds = notification_minute_seconds
        self._default_minute_seconds = notification_minute_seconds
        self.operations = load_all()
        load_graph_routes()
        self.httpd = _HTTPServer((host, port), _Handler)
        self.httpd.ews = self
        self._thread: threading.Thread | None = None
        # Optional second listener with TLS on the same store: MSAL accepts only https
        # authorities. Clients trust `tls_ca_file` (a self-signed certificate).
        self.https_httpd: _TLSHTTPServer | None = None
        self._tls_thread: threading.Thread | None = None
        if tls:
            from .tls import certificate_files, server_context
            self.tls_ca_file: str | None = certificate_files()[0]
            self.https_httpd = _TLSHTTPServer((host, tls_port), _Handler)
            self.https_httpd.ews = self
            self.https_httpd.ssl_context = server_context()
        else:
            self.tls_ca_file = None

    @property
    def host(self) -> str:
        return str(self.httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/EWS/Exchange.asmx"

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}{graph_http.PREFIX}"

    @property
    def https_base_url(self) -> str | None:
        if self.https_httpd is None:
            return None
        return f"https://{self.host}:{self.https_httpd.server_address[1]}"

    def reset(self) -> None:
        with self.store.lock:
            self.store.reset()
            self.faults.clear()
            self.counters.clear()
            self.ids_asked.clear()
            self.graph.reset()
            self.graph_notifier.reset()      # after store.reset(): registers its listener again
            self.sent_log.clear()
            self.validation_errors.clear()
            self.internal_errors.clear()
            self.notification_minute_seconds = self._default_minute_seconds
            self.affinity.clear()
            self.affinity.strict = False

    def start(self) -> EwsServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="ewsim",
                                        daemon=True)
        self._thread.start()
        if self.https_httpd is not None:
            self._tls_thread = threading.Thread(target=self.https_httpd.serve_forever,
                                                name="ewsim-tls", daemon=True)
            self._tls_thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.store.notifications.close()   # open GetStreamingEvents end with Closed now
        self.graph_notifier.close()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.https_httpd is not None:
            self.https_httpd.shutdown()
            self.https_httpd.server_close()

    def capture(self, op: str, request: bytes, response: bytes) -> None:
        if self.capture_dir is None:
            return
        with self.store.lock:
            self._capture_seq += 1
            seq = self._capture_seq
        self.capture_dir.mkdir(parents=True, exist_ok=True)
        (self.capture_dir / f"{seq:04d}_{op}.xml").write_bytes(request)
        (self.capture_dir / f"{seq:04d}_{op}.response.xml").write_bytes(response)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    ews: EwsServer


class _TLSHTTPServer(_HTTPServer):
    tls = True
    ssl_context: Any

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the request's own thread, so a slow client
        # never stalls the accept loop.
        try:
            tls_socket = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError):
            return
        try:
            super().finish_request(tls_socket, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls_socket.close()


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive is required for NTLM's 3-request handshake (notes §3.1).
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the body waits for the
    # client's delayed ACK of the headers (~40 ms on Linux loopback) on every request.
    disable_nagle_algorithm = True
    server: _HTTPServer
    ntlm_ctx: Any = None
    ntlm_principal: Principal | None = None
    stream_fault: Fault | None = None     # a stream_reset fault for the stream this serves

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def finish(self) -> None:
        # The connection_reset fault closed the socket under us.
        with contextlib.suppress(OSError):
            super().finish()

    # --- plumbing -----------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str = "text/xml; charset=utf-8",
              headers: dict[str, str] | list[tuple[str, str]] | None = None) -> None:
        # Never send_error(): it adds Connection: close, which exchangelib turns into
        # ErrorServerBusy (notes §3.1).
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        items = headers.items() if isinstance(headers, dict) else headers or []
        for key, value in items:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data, default=str).encode(), "application/json")

    # --- verbs --------------------------------------------------------------------------
    def _base(self) -> str:
        scheme = "https" if getattr(self.server, "tls", False) else "http"
        return f"{scheme}://{self.headers.get('Host') or self.server.ews.host}"

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(path.query))
        if path.path.startswith("/_control"):
            self._control("GET", path.path, query)
        elif graph_http.is_graph_path(path.path):
            graph_http.serve(self, "GET", self._body())
        elif OPENID_PATH.match(path.path):
            tenant = OPENID_PATH.match(path.path).group(1)   # type: ignore[union-attr]
            with self.server.ews.store.lock:
                known = oidc.known_tenant(self.server.ews.store, tenant)
            if known:
                self._json(200, oidc.openid_configuration(self._base(), tenant))
            else:
                self._json(400, oidc.unknown_tenant(tenant))
        elif path.path == oidc.DISCOVERY_PATH:
            self._json(200, oidc.instance_discovery(self._base(), query))
        else:
            self._send(200, b"ewsim: POST SOAP to /EWS/Exchange.asmx", "text/plain")

    def do_DELETE(self) -> None:
        body = self._body()
        path = urllib.parse.urlsplit(self.path).path
        if graph_http.is_graph_path(path):
            graph_http.serve(self, "DELETE", body)
            return
        self._control("DELETE", path, {})

    def do_PATCH(self) -> None:
        body = self._body()
        path = urllib.parse.urlsplit(self.path).path
        if graph_http.is_graph_path(path):
            graph_http.serve(self, "PATCH", body)
            return
        self._control("PATCH", path, json.loads(body or b"{}"))

    def do_PUT(self) -> None:
        body = self._body()
        path = urllib.parse.urlsplit(self.path).path
        if graph_http.is_graph_path(path):
            graph_http.serve(self, "PUT", body)
            return
        self._control("PUT", path, json.loads(body or b"{}"))

    def do_POST(self) -> None:
        body = self._body()
        path = urllib.parse.urlsplit(self.path).path
        if graph_http.is_graph_path(path):
            graph_http.serve(self, "POST", body)
            return
        if path.startswith("/_control"):
            self._control("POST", path, json.loads(body or b"{}"))
            return
        match = TOKEN_PATH.match(path)
        if match:
            form = dict(urllib.parse.parse_qsl(body.decode()))
            basic = self.headers.get("Authorization", "")
            basic_value = basic[6:] if basic.lower().startswith("basic ") else None
            status, data = auth.issue_token(self.server.ews.store, form, basic_value,
                                            match.group(1))
            self._json(status, data)
            return
        self._ews(body)

    def _control(self, method: str, path: str, data: dict[str, Any]) -> None:
        try:
            self._json(200, control.handle(self.server.ews, method, path, data))
        except control.ControlError as exc:
            self._json(exc.status, {"error": str(exc)})
        except (KeyError, ValueError, TypeError) as exc:
            self._json(400, {"error": f"{type(exc).__name__}: {exc}"})

    # --- EWS ----------------------------------------------------------------------------
    def _ews(self, body: bytes) -> None:
        ews = self.server.ews
        result = auth.authenticate(ews.store, self, ews.auth_modes)
        if result.principal is None:
            self._send(401, b"", "text/plain",
                       [("WWW-Authenticate", c) for c in result.challenge])
            return
        try:
            envelope = etree.fromstring(body, PARSER)
            body_el = envelope.find(f"{{{S}}}Body")
            op_el = next(c for c in body_el if isinstance(c.tag, str))
        except (etree.XMLSyntaxError, StopIteration, TypeError, AttributeError):
            self._send(500, soap.fault("ErrorSchemaValidation",
                                       "The request failed schema validation."))
            return
        op = local(op_el)
        ews.counters[op] += 1
        fault = ews.faults.take(op)
        if fault is not None and self._apply_fault(fault, op, op_el, body):
            return
        if ews.latency_ms:
            time.sleep(ews.latency_ms / 1000)
        try:
            ctx = self._context(result.principal, envelope)
            ctx.secure = bool(getattr(self.server, "tls", False))
            handler = ews.operations.get(op)
            if handler is None:
                # Not ErrorInvalidRequest: that triggers exchangelib's version cascade.
                raise EwsFault("ErrorInvalidOperation", f"ewsim does not simulate {op}.")
            with ews.store.lock:
                out = handler(ctx, op_el)
        except EwsFault as exc:
            data = soap.fault(exc.code, exc.message, exc.back_off_ms)
            ews.capture(op, body, data)
            self._send(500, data)
            return
        except Exception as exc:
            ews.internal_errors.append({"operation": op, "error": repr(exc),
                                        "traceback": traceback.format_exc()})
            log.exception("ewsim: %s failed", op)
            self._send(500, soap.fault("ErrorInternalServerError", f"ewsim bug: {exc!r}"))
            return
        if isinstance(out, EventStream):
            out.serve(self, body)   # GetStreamingEvents: holds the connection, lock released
            return
        payload, streams = out if isinstance(out, tuple) else (out, [])
        self._respond(op, body, payload, streams, ctx.response_headers)

    def _context(self, principal: Principal, envelope: etree._Element) -> Context:
        ews = self.server.ews
        store = ews.store
        header = envelope.find(f"{{{S}}}Header")
        imp = header.find(f"{{{T}}}ExchangeImpersonation") if header is not None else None
        if imp is not None:
            sid = imp.find(f"{{{T}}}ConnectingSID")
            address = ""
            if sid is not None:
                for child in sid:
                    if local(child) in ("PrimarySmtpAddress", "SmtpAddress", "PrincipalName"):
                        address = (child.text or "").strip().lower()
            with store.lock:
                if address not in store.mailboxes:
                    raise EwsFault("ErrorNonExistentMailbox")
            if not principal.may_impersonate(address):
                raise EwsFault("ErrorImpersonateUserDenied")
            return Context(store, principal, address, True, dict(self.headers), ews)
        if principal.user is None:
            # App-only tokens must impersonate, like Exchange Online (issue #735).
            raise EwsFault("ErrorInvalidExchangeImpersonationHeaderData")
        mailbox = principal.user.address
        anchor = (self.headers.get("X-AnchorMailbox") or "").lower()
        if anchor and anchor in store.mailboxes and principal.user.may_open(anchor):
            mailbox = anchor
        return Context(store, principal, mailbox, False, dict(self.headers), ews)

    def _respond(self, op: str, request: bytes, payload: etree._Element,
                 streams: list[StreamedContent],
                 headers: list[tuple[str, str]] | None = None) -> None:
        ews = self.server.ews
        env = soap.envelope(payload)
        if ews.validate:
            errors = schema.validate_payload(payload)
            if errors:
                ews.validation_errors.append({"operation": op, "errors": errors,
                                              "response": etree.tostring(payload)[:4000]})
        data = soap.serialize(env)
        ews.capture(op, request, data)
        if not streams:
            self._send(200, data, headers=headers)
            return
        # GetAttachment: write base64 straight from the stored bytes, chunk by chunk,
        # so a 100 MB attachment is never copied whole (notes §3.4 GetAttachment).
        pieces: list[bytes | memoryview] = []
        total = 0
        rest = data
        for stream in streams:
            head, _, rest = rest.partition(stream.marker.encode())
            pieces.append(head)
            total += len(head) + 4 * ((len(stream.content) + 2) // 3)
        pieces.append(rest)
        total += len(rest)
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(total))
        for key, value in headers or []:
            self.send_header(key, value)
        self.end_headers()
        for i, stream in enumerate(streams):
            self.wfile.write(pieces[i])
            view = memoryview(stream.content)
            for pos in range(0, len(view), STREAM_CHUNK):
                self.wfile.write(base64.b64encode(view[pos:pos + STREAM_CHUNK]))
        self.wfile.write(pieces[-1])

    def _apply_fault(self, fault: Fault, op: str, op_el: etree._Element,
                     request: bytes) -> bool:
        """Answer with the injected fault; return False to continue normally (delay)."""
        p = fault.params
        kind = fault.kind
        retry = [("Retry-After", str(p.get("retry_after", 1)))]
        if kind == "delay":
            time.sleep(float(p.get("delay_ms", 100)) / 1000)
            return False
        if kind == "stream_reset":
            self.stream_fault = fault   # EventStream.serve breaks the connection mid-write
            return False
        if kind == "server_busy":
            self._send(500, soap.fault("ErrorServerBusy", soap.MESSAGES["ErrorServerBusy"],
                                       p.get("back_off_ms", 1000)))
        elif kind == "soap_fault":
            code = p.get("response_code", "ErrorInternalServerError")
            self._send(500, soap.fault(code, p.get("message", soap.MESSAGES.get(code, code)),
                                       p.get("back_off_ms")))
        elif kind == "http_500":
            self._send(500, SERVER_ERROR_PAGE, "text/html")
        elif kind == "http_500_plain":
            self._send(500, b"Internal Server Error", "text/plain")
        elif kind == "http_503":
            self._send(503, b"Service Unavailable", "text/plain", retry)
        elif kind == "http_429":
            self._send(429, b"Too Many Requests", "text/plain", retry)
        elif kind == "http_401":
            self._send(401, b"", "text/plain",
                       [("WWW-Authenticate", c) for c in auth.challenges({"basic"})])
        elif kind == "connection_reset":
            # SO_LINGER 0 makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
        else:
            self._respond(op, request, self._error_payload(fault, op, op_el), [])
        return True

    def _error_payload(self, fault: Fault, op: str, op_el: etree._Element) -> etree._Element:
        root, msgs = response_root(op)
        if fault.kind == "invalid_sync_state":
            msg = error(msgs, op, "ErrorInvalidSyncStateData")
            sub(msg, M, "SyncState")
            sub(msg, M, "IncludesLastItemInRange", "true")
            return root
        code = ("ErrorIrresolvableConflict" if fault.kind == "irresolvable_conflict"
                else fault.params.get("response_code", "ErrorItemNotFound"))
        count = 1
        for name in ("ItemIds", "ItemChanges", "Items", "FolderIds", "AttachmentIds",
                     "ParentFolderIds", "Attachments"):
            container = op_el.find(mq(name))
            if container is not None:
                count = max(1, sum(1 for c in container if isinstance(c.tag, str)))
                break
        for _ in range(count):
            error(msgs, op, code, fault.params.get("message"))
        return root
