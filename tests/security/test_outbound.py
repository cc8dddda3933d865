"""The outbound address policy: an organization's administrator cannot make this server
connect into the operator's network (Redis, the database, the metadata service, a private
range), by an EWS URL, a token endpoint, a Graph root, a name that resolves there, or a
redirect. Refused addresses get nothing: a listener counts the connections it accepts.

The suite's settings allow 127.0.0.0/8 for ewsim, through the operator's switch
(MAILBOX_ALLOWED_NETWORKS); these tests narrow it to 127.0.0.1 and aim at 127.0.0.2, a
second loopback address that stands for any address the operator has not opened.
"""

from __future__ import annotations

import dataclasses
import http.server
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
from django.contrib.auth.models import User
from django.core import checks
from django.test import Client, override_settings
from exchangelib.protocol import BaseProtocol

from engine.mailbox.base import Auth, MailboxAccess, NetworkRefused
from engine.mailbox.diagnose import diagnose
from engine.mailbox.ews import EwsMailbox
from engine.mailbox.graph import GraphMailbox
from ewsim.testing import SimHandle
from profiles.models import MailboxConnection, Organization
from security.outbound import AddressRefused, CheckedAdapter, checked_session, judge, parse_networks
from tests.engine.mailbox.graph_access import graph_access

ONLY_EWSIM = ["127.0.0.1/32"]
ELSEWHERE = "127.0.0.2"      # loopback, but not in ONLY_EWSIM


class Listener:
    """A TCP port that counts the connections made to it (and answers nothing)."""

    def __init__(self, host: str) -> None:
        self.sock = socket.create_server((host, 0))
        self.sock.settimeout(0.2)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def elsewhere() -> Iterator[Listener]:
    listener = Listener(ELSEWHERE)
    yield listener
    listener.close()


@contextmanager
def allowed(networks: list[str]) -> Iterator[None]:
    with override_settings(MAILBOX_ALLOWED_NETWORKS=networks):
        yield


def ews_access(url: str, **values: object) -> MailboxAccess:
    return MailboxAccess(**{"mailbox": "alice@example.com", "endpoint": url, "auth": Auth.BASIC,
                            "username": "svc@example.com", "secret": "svc-Pa55-outbound",
                            "impersonate": True, "throttle_budget_seconds": 2.0,
                            **values})  # type: ignore[arg-type]


# --- the rule ----------------------------------------------------------------------------------
@pytest.mark.parametrize("address", [
    "169.254.169.254",          # the cloud metadata service
    "169.254.1.1", "fe80::1",   # link-local
    "0.0.0.0", "::", "0.1.2.3",  # unspecified, "this network"
    "224.0.0.1", "ff02::1",     # multicast
    "240.0.0.1", "255.255.255.255",   # reserved, broadcast
    "::ffff:169.254.169.254",   # the metadata address written as IPv6
])
def test_link_local_unspecified_multicast_and_reserved_addresses_are_always_refused(
        address: str) -> None:
    everything = parse_networks(["0.0.0.0/0", "::/0"])
    verdict = judge(ipaddress.ip_address(address), everything)
    assert (verdict.allowed, verdict.always_refused) == (False, True)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "::1", "10.1.2.3", "172.16.0.5", "192.168.1.1", "100.64.0.1", "fd00::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1",
])
def test_loopback_and_private_addresses_are_refused_unless_the_operator_allows_them(
        address: str) -> None:
    assert not judge(ipaddress.ip_address(address), ()).allowed
    opened = parse_networks(["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12",
                             "192.168.0.0/16", "100.64.0.0/10", "fd00::/8"])
    assert judge(ipaddress.ip_address(address), opened).allowed


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1", "52.96.0.1"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert judge(ipaddress.ip_address(address), ()).allowed


def test_a_malformed_allowed_network_is_told_at_start_up() -> None:
    with allowed(["10.0.0.0/8", "not-a-network"]):
        errors = [e for e in checks.run_checks() if e.id == "security.E001"]
    assert len(errors) == 1 and "not-a-network" in errors[0].msg


# --- Test connection ---------------------------------------------------------------------------
def test_test_connection_names_the_refused_address_and_sends_nothing(elsewhere: Listener) -> None:
    with allowed(ONLY_EWSIM):
        report = diagnose(ews_access(f"http://{ELSEWHERE}:{elsewhere.port}/EWS/Exchange.asmx"))
    assert (report.ok, report.reason) == (False, "network_policy")
    assert f"{ELSEWHERE} is an address this server may not reach" in report.message
    assert "ask the server's operator to allow that network" in report.message
    assert elsewhere.accepted == 0


def test_a_name_that_resolves_to_a_refused_address_is_refused_too() -> None:
    listener = Listener("127.0.0.1")
    try:
        with allowed([]):
            report = diagnose(ews_access(f"http://localhost:{listener.port}/EWS/Exchange.asmx"))
        assert (report.ok, report.reason) == (False, "network_policy")
        assert "localhost resolves to" in report.message
        assert listener.accepted == 0
    finally:
        listener.close()


def test_the_answer_is_the_same_whether_or_not_the_port_answers(elsewhere: Listener) -> None:
    # Otherwise the test would tell which of the operator's ports are open.
    closed = Listener(ELSEWHERE)
    closed.close()
    with allowed(ONLY_EWSIM):
        answers = [diagnose(ews_access(f"http://{ELSEWHERE}:{port}/")).message
                   for port in (elsewhere.port, closed.port)]
    assert answers[0].replace(str(elsewhere.port), "") == answers[1].replace(str(closed.port), "")
    assert elsewhere.accepted == 0


def test_the_metadata_address_is_refused_even_when_every_network_is_allowed() -> None:
    started = time.monotonic()
    with allowed(["0.0.0.0/0", "::/0"]):
        report = diagnose(ews_access("http://169.254.169.254/latest/meta-data/"))
    assert (report.ok, report.reason) == (False, "network_policy")
    assert "never connects to" in report.message
    assert time.monotonic() - started < 2, "refused before any connection was tried"


@pytest.mark.django_db
def test_a_superuser_is_no_exception(elsewhere: Listener) -> None:
    organization = Organization.objects.create(name="Acme")
    connection = MailboxConnection(
        organization=organization, name="Internal", ews_url=f"http://{ELSEWHERE}:"
        f"{elsewhere.port}/EWS/Exchange.asmx", auth_type="basic", username="svc@example.com")
    connection.set_secret("svc-Pa55-outbound")
    connection.save()
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    with allowed(ONLY_EWSIM):
        page = client.post(
            f"/admin/profiles/mailboxconnection/{connection.pk}/test-connection/", follow=True)
    assert "this server may not reach" in page.content.decode()
    assert elsewhere.accepted == 0


# --- every outbound path of the backends --------------------------------------------------------
def test_the_ews_backend_refuses_a_refused_endpoint(elsewhere: Listener) -> None:
    with allowed(ONLY_EWSIM), pytest.raises(NetworkRefused, match="may not reach"), \
            EwsMailbox(ews_access(f"http://{ELSEWHERE}:{elsewhere.port}/EWS/Exchange.asmx")) \
            as mailbox:
        mailbox.check()
    assert elsewhere.accepted == 0


def test_the_ews_backend_refuses_a_refused_token_endpoint(ewsim: SimHandle,
                                                          elsewhere: Listener) -> None:
    access = ews_access(ewsim.url, auth=Auth.OAUTH2, username="", tenant_id="contoso",
                        client_id="5b4f2a6e-1c3d-4e8f-9a0b-7c6d5e4f3a2b",
                        token_url=f"http://{ELSEWHERE}:{elsewhere.port}/token")
    with allowed(ONLY_EWSIM), pytest.raises(NetworkRefused, match="may not reach"), \
            EwsMailbox(access) as mailbox:
        mailbox.check()
    assert elsewhere.accepted == 0


def test_the_graph_backend_refuses_a_refused_graph_root(ewsim: SimHandle,
                                                        elsewhere: Listener) -> None:
    access = graph_access(ewsim, endpoint=f"http://{ELSEWHERE}:{elsewhere.port}/v1.0")
    with allowed(ONLY_EWSIM), pytest.raises(NetworkRefused, match="may not reach"), \
            GraphMailbox(access) as mailbox:
        mailbox.check()
    assert elsewhere.accepted == 0


def test_the_graph_backend_refuses_a_refused_token_endpoint(ewsim: SimHandle,
                                                            elsewhere: Listener) -> None:
    access = graph_access(ewsim)
    access = dataclasses.replace(access, token_url=f"http://{ELSEWHERE}:{elsewhere.port}/t")
    with allowed(ONLY_EWSIM), pytest.raises(NetworkRefused, match="may not reach"), \
            GraphMailbox(access) as mailbox:
        mailbox.check()
    assert elsewhere.accepted == 0


def test_exchangelib_and_the_change_listener_connect_only_through_the_policy() -> None:
    # exchangelib (syncs, the listener's streaming subscriptions, its OAuth token requests)
    # makes every session with this one adapter class.
    assert issubclass(BaseProtocol.HTTP_ADAPTER_CLS, CheckedAdapter)


# --- redirects ---------------------------------------------------------------------------------
class _Redirect(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_redirect_to_a_refused_address_is_not_followed(elsewhere: Listener) -> None:
    handler = type("Handler", (_Redirect,), {
        "target": f"http://{ELSEWHERE}:{elsewhere.port}/internal"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with allowed(ONLY_EWSIM), checked_session(requests.Session()) as session, \
                pytest.raises(AddressRefused):
            session.get(f"http://127.0.0.1:{server.server_port}/start", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert elsewhere.accepted == 0
