"""Raw EWS requests for the streaming tests: exact headers, and a socket the test can drop."""

from __future__ import annotations

import base64
import socket
import ssl
import time
import urllib.parse

import requests

from ewsim.ns import M, S, T
from ewsim.testing import SimHandle


def envelope(body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{S}" xmlns:m="{M}" '
            f'xmlns:t="{T}"><s:Header><t:RequestServerVersion Version="Exchange2016"/>'
            f'</s:Header><s:Body>{body}</s:Body></s:Envelope>').encode()


def subscribe_body(kind: str = "Streaming") -> bytes:
    timeout = "<t:Timeout>10</t:Timeout>" if kind == "Pull" else ""
    return envelope(f'<m:Subscribe><m:{kind}SubscriptionRequest><t:FolderIds>'
                    f'<t:DistinguishedFolderId Id="inbox"/></t:FolderIds><t:EventTypes>'
                    f'<t:EventType>CreatedEvent</t:EventType></t:EventTypes>{timeout}'
                    f'</m:{kind}SubscriptionRequest></m:Subscribe>')


def streaming_body(sub_id: str, minutes: int = 1) -> bytes:
    return envelope(f'<m:GetStreamingEvents><m:SubscriptionIds><t:SubscriptionId>{sub_id}'
                    f'</t:SubscriptionId></m:SubscriptionIds><m:ConnectionTimeout>{minutes}'
                    f'</m:ConnectionTimeout></m:GetStreamingEvents>')


def get_events_body(sub_id: str, watermark: str) -> bytes:
    return envelope(f'<m:GetEvents><m:SubscriptionId>{sub_id}</m:SubscriptionId>'
                    f'<m:Watermark>{watermark}</m:Watermark></m:GetEvents>')


def post(sim: SimHandle, body: bytes, **headers: str) -> requests.Response:
    """POST as Alice with exactly these extra headers (`X_AnchorMailbox` for X-AnchorMailbox)."""
    sent = {"Content-Type": "text/xml; charset=utf-8",
            **{k.replace("_", "-"): v for k, v in headers.items()}}
    return requests.post(sim.url, data=body, auth=(sim.user, sim.password), headers=sent,
                         timeout=30)


def open_stream(sim: SimHandle, sub_id: str, minutes: int = 1,
                tls: bool = False) -> tuple[socket.socket, bytes]:
    """GetStreamingEvents on a bare socket (over TLS: ewsim's https listener), read up to
    the stream's first ConnectionStatus; the test closes the socket when it wants the
    client gone."""
    body = streaming_body(sub_id, minutes)
    login = base64.b64encode(f"{sim.user}:{sim.password}".encode()).decode()
    head = (f"POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: {sim.server.host}\r\n"
            f"Authorization: Basic {login}\r\nContent-Type: text/xml; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    if tls:
        port = urllib.parse.urlsplit(sim.https_base_url).port
        context = ssl.create_default_context(cafile=sim.tls_ca_file)
        sock: socket.socket = context.wrap_socket(
            socket.create_connection((sim.server.host, port), timeout=10),
            server_hostname=sim.server.host)
    else:
        sock = socket.create_connection((sim.server.host, sim.server.port), timeout=10)
    sock.sendall(head + body)
    received = b""
    while b"ConnectionStatus>OK" not in received or not received.endswith(b"Envelope>\r\n"):
        data = sock.recv(65536)
        if not data:
            raise AssertionError(f"the stream ended before its first status: {received!r}")
        received += data
    return sock, received


def read_until_closed(sock: socket.socket) -> bytes:
    """Whatever the server still sends until it closes or resets the connection."""
    received = b""
    while True:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return received
        if not data:
            return received
        received += data


def wait_detached(sim: SimHandle, sub_id: str, timeout: float = 5.0) -> float:
    """Until no connection holds the subscription any more; returns the seconds it took."""
    hub = sim.server.store.notifications
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with sim.server.store.lock:
            sub = hub.subscriptions.get(sub_id)
            if sub is not None and sub.expires_at is not None:
                return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError("the stream still holds the subscription")
