"""The HTTP server: the API under /api/v2/ behind faults, sign-in and the request budget,
the control API under /_control/, and the request log the tests validate."""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
import traceback
import urllib.parse
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import api, control
from .auth import AuthFailure, LoginGuard, authenticate
from .budget import LIMIT_REACHED, Budget
from .clock import Clock
from .dates import render
from .faults import Fault, FaultInjector
from .formatting import dates_as_text, encode
from .store import Store
from .webhooks import WebhookSender, payload

log = logging.getLogger("raynetsim")
API_PREFIX = "/api/v2"
REQUEST_LOG_SIZE = 100_000


class RaynetServer:
    """Owns the store, the clock, the budget, the faults and the webhook sender."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency_ms: int = 0) -> None:
        self.store = Store()
        self.clock = Clock()
        self.guard = LoginGuard()
        self.budget = Budget()
        self.faults = FaultInjector()
        self.webhooks = WebhookSender(self.clock, self._remove_webhooks)
        self.counters: Counter[str] = Counter()
        # Bounded, so that a long-running demo or benchmark does not grow without end; a
        # test is far from it (each test starts from reset()).
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.internal_errors: list[dict[str, Any]] = []
        self.latency_ms = latency_ms
        self._default_latency_ms = latency_ms
        # API requests being answered now, and the most at once since the last reset: what a
        # client sending in parallel is held to (tests, the benchmarks).
        self.in_flight = 0
        self.peak_in_flight = 0
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.raynet = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}{API_PREFIX}/"

    def reset(self) -> None:
        with self.store.lock:
            self.store.reset()
            self.clock.reset()
            self.guard.reset()
            self.budget.reset()
            self.faults.clear()
            self.webhooks.reset()
            self.webhooks.paused = False
            self.webhooks.per_url_interval = 1.0
            self.counters.clear()
            self.request_log.clear()
            self.internal_errors.clear()
            self.latency_ms = self._default_latency_ms
            self.peak_in_flight = self.in_flight

    def start(self) -> RaynetServer:
        self.webhooks.start()
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="raynetsim",
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.webhooks.start()
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.webhooks.stop()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _remove_webhooks(self, url: str) -> None:
        with self.store.lock:
            for instance in self.store.instances.values():
                for hook_id in [h.uuid for h in instance.webhooks.values() if h.url == url]:
                    del instance.webhooks[hook_id]

    def announce(self, instance_name: str, author: str,
                 events: list[tuple[str, str, int, list[str]]]) -> None:
        """Queue the webhook deliveries of a request's record changes."""
        with self.store.lock:
            instance = self.store.instances.get(instance_name)
            hooks = list(instance.webhooks.values()) if instance else []
        if instance is None:
            return
        created_at = render(self.clock.now(), instance.zone, iso=True) or ""
        for event, entity, entity_id, ext_ids in events:
            for hook in hooks:
                if event in hook.events:
                    self.webhooks.enqueue(hook.url, hook.secret_token, payload(
                        event, author, instance.name, entity, entity_id, ext_ids, created_at))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "raynetsim"
    # Headers and body go out in separate writes; with Nagle on, the body waits for the
    # client's delayed ACK of the headers (~40 ms on Linux loopback) on every request, which
    # would hide the latency a test or benchmark sets.
    disable_nagle_algorithm = True

    @property
    def sim(self) -> RaynetServer:
        return self.server.raynet  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        try:
            if url.path.startswith("/_control/"):
                self._control(method, url, body)
            elif url.path.startswith(API_PREFIX + "/"):
                with _InFlight(self.sim):
                    self._api(method, url, body)
            else:
                self._send(404, {"success": False, "message": "Not found"})
        except ConnectionError:
            pass
        except Exception as exc:
            self.sim.internal_errors.append({"path": self.path, "error": repr(exc),
                                             "traceback": traceback.format_exc()})
            self._send(500, {"success": False, "message": f"raynetsim: {exc!r}"})

    def _control(self, method: str, url: urllib.parse.SplitResult, body: bytes) -> None:
        data = json.loads(body or b"{}") if method != "GET" else dict(
            urllib.parse.parse_qsl(url.query))
        try:
            self._send(200, control.handle(self.sim, method, url.path, data))
        except control.ControlError as exc:
            self._send(exc.status, {"error": str(exc)})

    def _api(self, method: str, url: urllib.parse.SplitResult, body: bytes) -> None:
        sim = self.sim
        if sim.latency_ms:
            time.sleep(sim.latency_ms / 1000)
        path = url.path[len(API_PREFIX):]
        entry: dict[str, Any] = {"method": method, "path": url.path, "query": url.query,
                                 "headers": dict(self.headers.items()),
                                 "body": body.decode("utf-8", "replace"), "fault": None}
        # Matched against the method, the path and the query (if any): "GET /api/v2/person/"
        # finds every list of persons, "GET /api/v2/person/\?.*id%5BIN%5D" those by id.
        fault = sim.faults.take(f"{method} {url.path}" + (f"?{url.query}" if url.query else ""))
        if fault is not None and fault.kind != "delay":
            entry["fault"] = fault.kind
            sim.request_log.append(entry)
            self._fault(fault)
            return
        if fault is not None:
            time.sleep(float(fault.params.get("delay_ms", 1000)) / 1000)
        status, answer, headers, events = self._answer(method, path, url.query, body, entry)
        entry.update(status=status, response=answer, response_headers=headers)
        sim.request_log.append(entry)
        with sim.store.lock:     # Counter's += is not atomic across handler threads
            sim.counters[f"{method} {_route_name(path)}"] += 1
        if events:
            # Queued before the answer goes out: a client that saw its change accepted
            # finds the delivery queued (the sending itself is the delivery thread's).
            sim.announce(self.headers.get("X-Instance-Name") or "", entry["user"], events)
        self._send(status, answer, headers)

    def _answer(self, method: str, path: str, query_text: str, body: bytes,
                entry: dict[str, Any]) -> tuple[int, Any, dict[str, str], list[Any]]:
        sim = self.sim
        now = sim.clock.now()
        query = dict(urllib.parse.parse_qsl(query_text, keep_blank_values=True))
        with sim.store.lock:
            try:
                instance, user = authenticate(sim.store, sim.guard, self.client_address[0], now,
                                              self.headers.get("Authorization"),
                                              self.headers.get("X-Instance-Name"))
            except AuthFailure as failure:
                known = sim.store.instances.get(self.headers.get("X-Instance-Name") or "")
                headers = sim.budget.headers(known.name, known.daily_limit, now) if known \
                    else {}
                return failure.status, {"success": False, "message": failure.message,
                                        "translatedMessage": failure.translated}, headers, []
            entry["user"] = user.email
            allowed, headers = sim.budget.spend(instance.name, instance.daily_limit, now)
            if not allowed:
                return 429, dict(LIMIT_REACHED), headers, []
            call = api.ApiCall(store=sim.store, instance=instance, user=user, now=now,
                               query=query, body=body,
                               content_type=self.headers.get("Content-Type") or "")
            try:
                status, answer = api.dispatch(method, path, call)
            except api.ApiError as exc:
                return exc.status, exc.body, headers, []
            text = dates_as_text(answer, instance.zone, query.get("dateFormat") == "ISO8601")
            return status, text, headers, [(*e,) for e in call.events]

    def _fault(self, fault: Fault) -> None:
        if fault.kind == "connection_reset":
            # SO_LINGER 0: the close sends a TCP RST instead of an orderly FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if fault.kind == "http_429":
            self._send(429, dict(LIMIT_REACHED),
                       {"Retry-After": str(fault.params.get("retry_after", 1))})
            return
        status = 503 if fault.kind == "http_503" else 500
        headers = {"Retry-After": str(fault.params.get("retry_after", 1))} if status == 503 \
            else {}
        self._send(status, {"success": False, "message": "InternalServerError"}, headers)

    def _send(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        raw = b"" if data is None else encode(data)
        self.send_response(status)
        if data is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)


class _InFlight:
    """Counts an API request as in flight while it is answered (latency included)."""

    def __init__(self, sim: RaynetServer) -> None:
        self.sim = sim

    def __enter__(self) -> None:
        with self.sim.store.lock:
            self.sim.in_flight += 1
            self.sim.peak_in_flight = max(self.sim.peak_in_flight, self.sim.in_flight)

    def __exit__(self, *exc: object) -> None:
        with self.sim.store.lock:
            self.sim.in_flight -= 1


def _route_name(path: str) -> str:
    """`/person/12/extId/` → `/person/{id}/extId/` and `/person/ext/exchange:AA…/` →
    `/person/ext/{extId}/`, to count requests per kind."""
    parts = path.split("/")
    return "/".join("{id}" if part.isdigit() else "{extId}" if index and parts[index - 1]
                    == "ext" else part for index, part in enumerate(parts))
