from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_the_first_administrator_is_created_once_and_its_login_printed_once() -> None:
    first = io.StringIO()
    call_command("bootstrap_admin", stdout=first)
    output = first.getvalue()
    password = output.split("password:")[1].split()[0]
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)

    second = io.StringIO()
    call_command("bootstrap_admin", stdout=second)
    assert password not in second.getvalue()
    assert "exists already" in second.getvalue()
    assert User.objects.filter(is_superuser=True).count() == 1


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _json(url: str, deadline: float) -> object:
    while True:
        try:
            with urllib.request.urlopen(url) as page:
                return json.load(page)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_serve_runs_web_worker_and_demo_mailbox_and_ctrl_c_stops_all(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environment.update({"DEBUG": "true", "VAR_DIR": str(tmp_path), "SECRET_KEY": "",
                        "ENCRYPTION_KEYS": "", "DJANGO_SETTINGS_MODULE": "syncsite.settings",
                        "SYNC_DEMO": "true"})
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--no-input"], cwd=REPO, env=environment, check=True,
                   capture_output=True, timeout=120)
    port, ews_port, raynet_port = _free_port(), _free_port(), _free_port()
    server = subprocess.Popen([*manage, "serve", "--addrport", f"127.0.0.1:{port}",
                               "--demo-mailbox", f"127.0.0.1:{ews_port}",
                               "--demo-raynet", f"127.0.0.1:{raynet_port}"], cwd=REPO,
                              env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    try:
        status = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and status is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/") as page:
                    status = page.status
            except OSError:
                time.sleep(0.5)
        assert status == 200
        worker = ""
        while time.monotonic() < deadline and not worker:
            worker = subprocess.run(["pgrep", "-f", "-s", str(server.pid), "qcluster"],
                                    capture_output=True, text=True).stdout.strip()
            time.sleep(0.2)
        assert worker, "the worker cluster is not running"
        listener = subprocess.run(["pgrep", "-f", "-s", str(server.pid), "manage.py listen"],
                                  capture_output=True, text=True).stdout.strip()
        assert listener, "the change listener is not running"
        folders = _json(f"http://127.0.0.1:{ews_port}/_control/folders"
                        "?mailbox=jana.novakova@example.com", deadline)
        assert {f["name"]: f["total"] for f in folders}["Contacts"] == 10
        # With SYNC_DEMO, the Raynet simulator of the demo too.
        budget = _json(f"http://127.0.0.1:{raynet_port}/_control/concurrency", deadline)
        assert budget == {"in_flight": 0, "peak": 0}
    finally:
        os.killpg(server.pid, signal.SIGINT)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    # Stopped with SIGTERM like the others, the demo mailbox server wrote its mailboxes.
    assert json.loads((tmp_path / "ewsim-demo.json").read_text())["format"] == "ewsim-state"
    assert (tmp_path / "raynetsim-demo.json").exists()
    time.sleep(1)
    leftovers = subprocess.run(["pgrep", "-s", str(server.pid)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", f"processes left running: {leftovers.stdout}"
