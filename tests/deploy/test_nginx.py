"""The sample nginx.conf in front of the installation's gunicorn, over real TLS.

Skipped where nginx is not installed (Debian: nginx-light is enough). The sample is used as it
is but for what only an installed machine has: its ports (80 and 443 become free loopback
ports), the certificate (a self-signed one for the site's name), gunicorn's port, STATIC_ROOT
and certbot's web root. Each replaced text must be found, so the sample cannot drift from
what is tested.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.deploy.installation import (
    HOST,
    STARTUP_LIMIT,
    Installation,
    Response,
    fetch,
    sign_in,
    stop,
)
from tests.deploy.samples import SAMPLES, env_example

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")


@dataclass
class Proxy:
    http_port: int
    https_port: int
    certificate: Path

    def request(self, method: str, path: str, headers: dict[str, str],
                body: str | None = None) -> Response:
        context = ssl.create_default_context(cafile=str(self.certificate))
        connection = http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=60,
                                                 context=context)
        return fetch(connection, method, path, {"Host": HOST, **headers}, body)

    def plain_request(self, path: str) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=60)
        return fetch(connection, "GET", path, {"Host": HOST})


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(HOST), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return certificate_path, key_path


def _free_port() -> int:
    # The port is free now; nginx takes it a moment later (nothing else here binds ports).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _replaced(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in text, f"nginx.conf no longer contains {old!r}"
        text = text.replace(old, new)
    return text


def _site_config(installation: Installation, proxy: Proxy, key: Path, webroot: Path) -> str:
    text = (SAMPLES / "nginx.conf").read_text()
    text = "\n".join(line for line in text.splitlines() if "listen [::]:" not in line)
    static_root = env_example()["STATIC_ROOT"].rstrip("/")
    return _replaced(text, {
        "listen 80;": f"listen 127.0.0.1:{proxy.http_port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{proxy.https_port} ssl;",
        f"/etc/letsencrypt/live/{HOST}/fullchain.pem": str(proxy.certificate),
        f"/etc/letsencrypt/live/{HOST}/privkey.pem": str(key),
        "http://127.0.0.1:8000": f"http://127.0.0.1:{installation.port}",
        f"{static_root}/": f"{installation.static_root}/",
        "/var/www/html": str(webroot),
    })


def _listening(process: subprocess.Popen[bytes], log: Path, port: int) -> bool:
    """Wait until nginx accepts connections (True) or has exited (False)."""
    deadline = time.monotonic() + STARTUP_LIMIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nginx did not listen within {STARTUP_LIMIT:.0f} s:\n{log.read_text()}")


def _main_config(directory: Path) -> str:
    """The frame Debian's /etc/nginx/nginx.conf gives every site, in the test's directory."""
    # Started as root, nginx's workers would run as nobody, who cannot enter the test's
    # private temporary directory (on a server they run as www-data and read STATIC_ROOT).
    workers_user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    return f"""
        {workers_user}
        daemon off;
        pid {directory}/nginx.pid;
        error_log stderr;
        events {{}}
        http {{
            types {{ text/css css; text/javascript js; }}
            access_log off;
            client_body_temp_path {directory}/body;
            proxy_temp_path {directory}/proxy;
            fastcgi_temp_path {directory}/fastcgi;
            uwsgi_temp_path {directory}/uwsgi;
            scgi_temp_path {directory}/scgi;
            include {directory}/crmsync.conf;
        }}
    """


@pytest.fixture(scope="module")
def proxy(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    directory = tmp_path_factory.mktemp("nginx")
    certificate, key = _self_signed(directory)
    webroot = directory / "webroot"
    (webroot / ".well-known" / "acme-challenge").mkdir(parents=True)
    (webroot / ".well-known" / "acme-challenge" / "token").write_text("challenge answer")
    (directory / "nginx.conf").write_text(_main_config(directory))
    command = [NGINX, "-p", str(directory), "-e", "stderr", "-c", str(directory / "nginx.conf")]
    log = directory / "nginx.log"
    # Another process may take a port between _free_port and nginx's bind: then new ports.
    for _attempt in range(3):
        proxy = Proxy(_free_port(), _free_port(), certificate)
        (directory / "crmsync.conf").write_text(_site_config(installation, proxy, key, webroot))
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stderr
        with log.open("wb") as output:
            server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        if _listening(server, log, proxy.https_port):
            break
        assert "Address already in use" in log.read_text(), f"nginx exited:\n{log.read_text()}"
    else:
        raise AssertionError(f"nginx found no free ports:\n{log.read_text()}")
    try:
        yield proxy
    finally:
        stop(server, log)


def test_plain_http_answers_only_certbot_and_sends_the_rest_to_https(proxy: Proxy) -> None:
    login = proxy.plain_request("/login/?next=/history/")
    assert login.status == 301
    assert login.headers["Location"] == f"https://{HOST}/login/?next=/history/"
    challenge = proxy.plain_request("/.well-known/acme-challenge/token")
    assert (challenge.status, challenge.body) == (200, b"challenge answer")


def _application_hsts(installation: Installation) -> str:
    """The Strict-Transport-Security header Django itself sends on HTTPS."""
    direct = installation.request("GET", "/login/", {"Host": HOST, "X-Forwarded-Proto": "https"})
    (value,) = direct.headers.get_all("Strict-Transport-Security") or [""]
    assert "max-age=" in value, "the application sends no HSTS header on HTTPS"
    return value


def test_the_login_page_comes_over_tls_with_the_applications_hsts_once(
    proxy: Proxy, installation: Installation,
) -> None:
    page = proxy.request("GET", "/login/", {})
    assert page.status == 200, page.text[:2000]
    assert '<form method="post" action="/login/"' in page.text
    assert page.headers.get_all("Strict-Transport-Security") == [_application_hsts(installation)]
    assert page.cookies["csrftoken"]["secure"], "the CSRF cookie lacks the Secure flag"


def test_nginx_serves_the_collected_static_files(proxy: Proxy,
                                                 installation: Installation) -> None:
    stylesheet = proxy.request("GET", "/static/admin/css/base.css", {})
    assert stylesheet.status == 200
    assert stylesheet.headers["Content-Type"] == "text/css"
    assert stylesheet.body == (installation.static_root / "admin/css/base.css").read_bytes()
    assert "max-age=3600" in stylesheet.headers["Cache-Control"]
    assert stylesheet.headers.get_all("Strict-Transport-Security") == [
        _application_hsts(installation)]


def test_the_administrator_signs_in_through_nginx(proxy: Proxy,
                                                  installation: Installation) -> None:
    signed_in = sign_in(proxy.request, {}, installation.admin_password)
    assert signed_in.status == 302, signed_in.text[:2000]
    session = signed_in.cookies["sessionid"]
    dashboard = proxy.request("GET", "/", {"Cookie": f"sessionid={session.value}"})
    assert dashboard.status == 200
    assert 'action="/logout/"' in dashboard.text


def test_the_health_check_is_reachable_through_nginx(proxy: Proxy) -> None:
    health = proxy.request("GET", "/healthz", {})
    # No worker runs in this installation, so it is unhealthy — and says why.
    assert health.status == 503
    report = json.loads(health.body)
    assert report["worker"]["ok"] is False
