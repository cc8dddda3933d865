"""A production installation made as docs/deploy.md makes it, and HTTP requests to it.

On a new database: env.example with its blanks filled in, `migrate`, `collectstatic`,
`bootstrap_admin`; then the command line of crmsync-web.service (with the sample
gunicorn.conf.py) on a free loopback port.
"""

from __future__ import annotations

import http.client
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

from tests.deploy.samples import (
    REPO,
    env_example,
    exec_start,
    on_this_checkout,
    production_environment,
)

HOST = env_example()["ALLOWED_HOSTS"].split(",")[0]
STARTUP_LIMIT = 120.0   # seconds; generous, the machine may be busy


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    cookies: SimpleCookie = field(default_factory=SimpleCookie)

    @property
    def text(self) -> str:
        return self.body.decode()


def fetch(connection: http.client.HTTPConnection, method: str, path: str,
          headers: dict[str, str], body: str | None = None) -> Response:
    try:
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        response = Response(answer.status, answer.headers, answer.read())
    finally:
        connection.close()
    for set_cookie in response.headers.get_all("Set-Cookie") or []:
        response.cookies.load(set_cookie)
    return response


@dataclass
class Installation:
    port: int                 # where gunicorn listens, on 127.0.0.1
    static_root: Path
    admin_password: str
    process: subprocess.Popen[bytes]
    log: Path

    def request(self, method: str, path: str, headers: dict[str, str],
                body: str | None = None) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        return fetch(connection, method, path, headers, body)


def manage(environment: dict[str, str], *arguments: str) -> str:
    done = subprocess.run(
        [on_this_checkout("/opt/crmsync/.venv/bin/python"), "manage.py", *arguments],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, f"manage.py {' '.join(arguments)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def wait_for_log(process: subprocess.Popen[bytes], log: Path, pattern: str) -> re.Match[str]:
    deadline = time.monotonic() + STARTUP_LIMIT
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text())
        if found:
            return found
        assert process.poll() is None, f"exited ({process.returncode}):\n{log.read_text()}"
        time.sleep(0.2)
    raise AssertionError(f"no {pattern!r} within {STARTUP_LIMIT:.0f} s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM, as `systemctl stop` sends it; the process must end cleanly on its own."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"did not stop on SIGTERM:\n{log.read_text()}") from None
    assert process.returncode == 0, log.read_text()


@contextmanager
def installed(directory: Path, database_url: str) -> Iterator[Installation]:
    environment = production_environment(directory, database_url)
    manage(environment, "migrate", "--no-input")
    manage(environment, "collectstatic", "--no-input")
    created = manage(environment, "bootstrap_admin", "--username", "admin")
    password = re.search(r"password:\s+(\S+)", created)
    assert password, created

    command = [on_this_checkout(argument) for argument in exec_start("crmsync-web.service")]
    log = directory / "gunicorn.log"
    with log.open("wb") as output:
        # Port 0: the system picks a free one, which gunicorn's log then names.
        server = subprocess.Popen([*command, "--bind", "127.0.0.1:0"], cwd=REPO,
                                  env=environment, stdout=output, stderr=subprocess.STDOUT)
    try:
        port = wait_for_log(server, log, r"Listening at: http://127\.0\.0\.1:(\d+)")
        yield Installation(int(port.group(1)), Path(environment["STATIC_ROOT"]),
                           password.group(1), server, log)
    finally:
        stop(server, log)


def sign_in(request: Callable[..., Response], headers: dict[str, str],
            password: str) -> Response:
    """Sign the administrator in on the user pages as a browser does; the form's answer."""
    form = request("GET", "/login/", headers)
    assert form.status == 200, form.text[:2000]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token, form.text[:2000]
    return request(
        "POST", "/login/",
        {**headers, "Origin": f"https://{HOST}", "Referer": f"https://{HOST}/login/",
         "Cookie": f"csrftoken={form.cookies['csrftoken'].value}",
         "Content-Type": "application/x-www-form-urlencoded"},
        urlencode({"csrfmiddlewaretoken": token.group(1), "username": "admin",
                   "password": password, "next": ""}),
    )
