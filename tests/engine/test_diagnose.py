"""The "Test connection" check names each failure in plain words, against real sockets and ewsim."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.mailbox.base import Auth
from engine.mailbox.diagnose import Report, Target, diagnose, run
from ewsim.testing import SimHandle
from tests.engine.conftest import access_to

FAST = 0.5   # seconds: every failure below must be named well within this


def _steps(report: Report) -> list[tuple[str, bool]]:
    return [(step.name, step.ok) for step in report.steps]


# --- servers the tests start ------------------------------------------------------------------
class _Serving:
    def __init__(self, server: http.server.HTTPServer, scheme: str, path: str) -> None:
        self.server = server
        self.url = f"{scheme}://127.0.0.1:{server.server_address[1]}{path}"
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _WebPage(http.server.BaseHTTPRequestHandler):
    """A web server that is not EWS: every request gets "404 Not Found" as HTML."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<html><body><h1>Not Found</h1></body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _proxy_to(target: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Proxy(http.server.BaseHTTPRequestHandler):
        """Terminates TLS and passes each POST on to ewsim, as a reverse proxy would."""

        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() in ("authorization", "content-type", "soapaction")}
            request = urllib.request.Request(target, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    status, data, answer_headers = answer.status, answer.read(), answer.headers
            except urllib.error.HTTPError as exc:
                status, data, answer_headers = exc.code, exc.read(), exc.headers
            self.send_response(status)
            for key, value in answer_headers.items():
                if key.lower() in ("content-type", "www-authenticate"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Proxy


def _self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server-side TLS context with a throwaway certificate no one trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.example.test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.fixture
def not_ews() -> Iterator[_Serving]:
    serving = _Serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WebPage), "http",
                       "/EWS/Exchange.asmx")
    yield serving
    serving.stop()


@pytest.fixture
def self_signed_ewsim(ewsim: SimHandle, tmp_path: Path) -> Iterator[_Serving]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _proxy_to(ewsim.url))
    server.socket = _self_signed_context(tmp_path).wrap_socket(server.socket, server_side=True)
    serving = _Serving(server, "https", "/EWS/Exchange.asmx")
    yield serving
    serving.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel completes them) but never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- the failures, one by one -----------------------------------------------------------------
def test_an_unknown_host_name_is_a_dns_failure(ewsim: SimHandle) -> None:
    report = diagnose(access_to(ewsim, endpoint="https://nonexistent.invalid/EWS/Exchange.asmx"),
                      timeout=FAST)
    assert (report.ok, report.reason) == (False, "dns")
    assert "nonexistent.invalid cannot be resolved" in report.message
    assert _steps(report) == [("dns", False)]


def test_a_closed_port_is_a_refused_connection(ewsim: SimHandle) -> None:
    port = _closed_port()
    report = diagnose(access_to(ewsim, endpoint=f"http://127.0.0.1:{port}/EWS/Exchange.asmx"),
                      timeout=FAST)
    assert report.reason == "refused"
    assert f"refused the connection on port {port}" in report.message
    assert _steps(report) == [("dns", True), ("tcp", False)]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_server_that_never_answers_times_out_after_the_given_timeout(
        ewsim: SimHandle, silent_port: int, scheme: str) -> None:
    started = time.monotonic()
    report = diagnose(access_to(ewsim, endpoint=f"{scheme}://127.0.0.1:{silent_port}/EWS/"),
                      timeout=FAST)
    assert report.reason == "timeout"
    assert "did not answer within 0.5 seconds" in report.message
    assert time.monotonic() - started < 5 * FAST
    assert _steps(report)[-1] == ("tls" if scheme == "https" else "http", False)


def test_a_plain_http_port_spoken_to_as_https_is_a_tls_error(ewsim: SimHandle) -> None:
    report = diagnose(access_to(ewsim, endpoint=ewsim.url.replace("http://", "https://")),
                      timeout=FAST)
    assert report.reason == "tls"
    assert "TLS handshake" in report.message and "http://" in report.message


def test_an_untrusted_certificate_is_a_tls_error_naming_the_verify_setting(
        ewsim: SimHandle, self_signed_ewsim: _Serving) -> None:
    report = diagnose(access_to(ewsim, endpoint=self_signed_ewsim.url), timeout=FAST)
    assert report.reason == "tls"
    assert "certificate of 127.0.0.1 is not trusted" in report.message
    assert "verify TLS certificates" in report.message


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
def test_with_verification_off_an_untrusted_certificate_reaches_the_mailbox(
        ewsim: SimHandle, self_signed_ewsim: _Serving) -> None:
    report = diagnose(access_to(ewsim, endpoint=self_signed_ewsim.url, verify_tls=False))
    assert (report.ok, report.reason) == (True, "ok"), report.message
    assert [name for name, ok in _steps(report) if ok] == ["dns", "tcp", "tls", "http", "mailbox"]


def test_a_wrong_password_is_an_authentication_failure_within_seconds(ewsim: SimHandle) -> None:
    started = time.monotonic()
    report = diagnose(access_to(ewsim, secret="wrong"))
    assert report.reason == "auth"
    assert "Authentication failed" in report.message
    assert time.monotonic() - started < 3
    assert _steps(report)[-1] == ("mailbox", False)


def test_ntlm_with_a_wrong_password_is_an_authentication_failure(ewsim: SimHandle) -> None:
    report = diagnose(access_to(ewsim, auth=Auth.NTLM, username="EXAMPLE\\alice",
                                secret="wrong"))
    assert report.reason == "auth"


def test_a_service_account_without_the_right_is_told_impersonation_is_denied(
        ewsim: SimHandle) -> None:
    ewsim.control.add_user("svc@example.com", "svc-secret", can_impersonate=[])
    report = diagnose(access_to(ewsim, username="svc@example.com", secret="svc-secret",
                                impersonate=True))
    assert report.reason == "impersonation"
    assert "may not impersonate alice@example.com" in report.message


def test_a_mailbox_that_does_not_exist_is_named(ewsim: SimHandle) -> None:
    ewsim.control.add_user("svc@example.com", "svc-secret", can_impersonate=["*"])
    report = diagnose(access_to(ewsim, mailbox="nobody@example.com", username="svc@example.com",
                                secret="svc-secret", impersonate=True))
    assert report.reason == "mailbox"
    assert "nobody@example.com" in report.message


def test_a_web_server_that_is_not_ews_is_told_apart(ewsim: SimHandle, not_ews: _Serving) -> None:
    report = diagnose(access_to(ewsim, endpoint=not_ews.url), timeout=FAST)
    assert report.reason == "service"
    assert "does not answer as an Exchange Web Services endpoint" in report.message
    assert ("http", True) in _steps(report)


def test_success_names_the_mailbox_and_the_server_version(ewsim: SimHandle) -> None:
    report = diagnose(access_to(ewsim))
    assert (report.ok, report.reason, report.mailbox) == (True, "ok", "alice@example.com")
    assert report.server_version.startswith("Exchange2016")
    assert "The connection works" in report.message
    assert report.server_version in report.message


def test_a_kind_without_a_backend_is_not_tested(ewsim: SimHandle) -> None:
    report = diagnose(access_to(ewsim), kind="imap")
    assert (report.ok, report.reason) == (False, "unsupported")


def test_a_target_without_a_mailbox_reports_what_to_enter_without_any_network() -> None:
    report = run(Target(None, "ews", "Write the user name as an e-mail address."))
    assert (report.ok, report.reason, report.steps) == (False, "setup", [])
    assert report.message == "Write the user name as an e-mail address."
