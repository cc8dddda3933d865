"""A real notification endpoint for the subscription tests: a tiny HTTP server on loopback.

It answers Graph's validation handshake (echoing validationToken, or answering wrongly when
told to) and records every notification POST; `fail` makes the next POSTs answer 500.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []          # notification bodies, in arrival order
        self.validations: list[str] = []               # paths that were validated
        self.tokens: list[str] = []                    # the validation tokens, decoded
        self.validation_mode = "echo"                  # echo | wrong | status500 | html
        self.fail = 0                                  # answer this many POSTs with 500
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                if "validationToken" in query:
                    receiver._validate(self, query["validationToken"])
                    return
                with receiver.lock:
                    failing = receiver.fail > 0
                    if failing:
                        receiver.fail -= 1
                    else:
                        receiver.posts.append({"path": self.path, **json.loads(body)})
                        receiver.arrived.notify_all()
                self.send_response(500 if failing else 202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _validate(self, handler: BaseHTTPRequestHandler, token: str) -> None:
        with self.lock:
            self.validations.append(handler.path.split("?")[0])
            self.tokens.append(token)
            mode = self.validation_mode
        status, content_type, text = 200, "text/plain; charset=utf-8", token
        if mode == "wrong":
            text = "not-the-token"
        elif mode == "status500":
            status = 500
        elif mode == "html":
            content_type = "text/html"
        data = text.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def url(self, path: str = "/notify") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def notifications(self, path: str = "/notify") -> list[dict[str, Any]]:
        with self.lock:
            return [n for post in self.posts if post["path"] == path for n in post["value"]]

    def wait_for(self, count: int, path: str = "/notify", timeout: float = 10.0
                 ) -> list[dict[str, Any]]:
        """Wait until `count` notifications arrived on `path`; return them all."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                got = [n for post in self.posts if post["path"] == path
                       for n in post["value"]]
                if len(got) >= count or time.monotonic() >= deadline:
                    return got
                self.arrived.wait(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
