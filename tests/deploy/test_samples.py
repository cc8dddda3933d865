"""The deployment samples agree with the project, so they cannot rot unnoticed.

Each unit's ExecStart names a program and a command that exist; env.example sets exactly the
variables the settings read; nginx, gunicorn and env.example name the same address and paths;
the worker's stop timeout lets a sync task finish.
"""

from __future__ import annotations

import re
import runpy
import shutil
import subprocess
from pathlib import Path

import environ
import pytest
from django.conf import settings

from tests.deploy.samples import (
    REPO,
    SAMPLES,
    UNITS,
    env_example,
    exec_start,
    on_this_checkout,
    production_environment,
    unit_settings,
    variables_the_settings_read,
)


def test_the_settings_are_found_to_read_the_variables_that_matter() -> None:
    # Guards the source scan below: if it found nothing, the next two tests would prove nothing.
    assert {"SECRET_KEY", "DATABASE_URL", "ENCRYPTION_KEYS", "VAR_DIR", "STATIC_ROOT"} <= (
        variables_the_settings_read())


def test_env_example_sets_every_variable_the_settings_read() -> None:
    missing = variables_the_settings_read() - set(env_example())
    assert not missing, f"add these to docs/deploy/env.example, with a comment: {sorted(missing)}"


def test_env_example_sets_no_variable_the_settings_ignore() -> None:
    unknown = set(env_example()) - variables_the_settings_read()
    assert not unknown, f"docs/deploy/env.example sets variables nothing reads: {sorted(unknown)}"


def test_env_example_leaves_blank_only_what_each_installation_must_choose() -> None:
    blank = {name for name, value in env_example().items() if not value}
    assert blank == {"SECRET_KEY", "ENCRYPTION_KEYS", "REDIS_URL", "METRICS_TOKEN"}


def test_env_example_names_postgresql_and_an_smtp_server_in_urls_the_settings_accept() -> None:
    values = env_example()
    database = environ.Env.db_url_config(values["DATABASE_URL"])
    assert database["ENGINE"] == "django.db.backends.postgresql"
    email = environ.Env.email_url_config(values["EMAIL_URL"])
    assert email["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert email["EMAIL_USE_TLS"] and email["EMAIL_HOST_USER"] == "sync-server@example.com"


@pytest.mark.parametrize("unit", UNITS)
def test_each_unit_runs_as_the_service_user_in_the_installation(unit: str) -> None:
    values = unit_settings(unit)
    assert values["Service.User"] == ["crmsync"]
    assert values["Service.WorkingDirectory"] == ["/opt/crmsync"]
    assert values["Install.WantedBy"] == ["multi-user.target"]


@pytest.mark.parametrize("unit", ["crmsync-worker.service", "crmsync-listener.service"])
def test_each_manage_py_unit_names_a_command_that_exists(unit: str, tmp_path: Path) -> None:
    program, manage, command, *_options = [on_this_checkout(a) for a in exec_start(unit)]
    assert Path(program).is_file(), f"{unit}: {program} does not exist"
    assert manage == str(REPO / "manage.py"), f"{unit} does not run the project's manage.py"
    help_text = subprocess.run(
        [program, manage, "help", command], cwd=REPO, capture_output=True, text=True,
        env=production_environment(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}"),
        timeout=120,
    )
    assert help_text.returncode == 0, f"{unit}: manage.py {command}: {help_text.stderr}"
    assert f"manage.py {command}" in help_text.stdout


def test_the_web_unit_runs_gunicorn_with_the_sample_settings(tmp_path: Path) -> None:
    command = [on_this_checkout(a) for a in exec_start("crmsync-web.service")]
    assert Path(command[0]).name == "gunicorn"
    assert Path(command[0]).is_file(), "gunicorn is missing: `make setup` installs .[deploy]"
    assert str(SAMPLES / "gunicorn.conf.py") in command
    # --check-config loads the configuration and imports the application, then exits.
    checked = subprocess.run(
        [*command, "--check-config"], cwd=REPO, capture_output=True, text=True,
        env=production_environment(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}"),
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_systemd_accepts_every_key_of_the_units(tmp_path: Path) -> None:
    # Installed paths mapped to this checkout, so that systemd finds the programs.
    for unit in UNITS:
        text = (SAMPLES / unit).read_text()
        for argument in exec_start(unit):
            text = text.replace(argument, on_this_checkout(argument))
        (tmp_path / unit).write_text(text)
    verified = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / unit) for unit in UNITS)],
        capture_output=True, text=True, timeout=120,
    )
    complaints = [line for line in (verified.stdout + verified.stderr).splitlines()
                  if "crmsync-" in line]
    assert not complaints, "\n".join(complaints)


def test_the_worker_waits_for_the_syncs_under_way_before_it_is_killed() -> None:
    values = unit_settings("crmsync-worker.service")
    # SIGTERM only to the cluster's main process: its worker processes die on SIGTERM.
    assert values["Service.KillMode"] == ["mixed"]
    (stop_timeout,) = values["Service.TimeoutStopSec"]
    assert int(stop_timeout) > settings.Q_CLUSTER["timeout"]


def test_the_worker_starts_after_the_attachment_share_is_mounted() -> None:
    (mounts,) = unit_settings("crmsync-worker.service")["Unit.RequiresMountsFor"]
    assert mounts.split() == env_example()["ATTACHMENT_ROOTS"].split(",")


def _nginx_directives(name: str) -> list[str]:
    text = (SAMPLES / "nginx.conf").read_text()
    return re.findall(rf"^\s*{name}\s+([^;]+);", text, flags=re.MULTILINE)


def test_nginx_proxies_to_the_address_gunicorn_listens_on() -> None:
    gunicorn = runpy.run_path(str(SAMPLES / "gunicorn.conf.py"))
    assert _nginx_directives("proxy_pass") == [f"http://{gunicorn['bind']}"]
    assert "127.0.0.1" in gunicorn["forwarded_allow_ips"].split(",")


def test_nginx_serves_the_static_files_from_static_root() -> None:
    text = (SAMPLES / "nginx.conf").read_text()
    location = re.search(r"location\s+(\S+)\s*\{[^}]*alias\s+([^;]+);", text)
    assert location, "nginx.conf has no location with an alias"
    assert location.group(1) == "/" + settings.STATIC_URL.lstrip("/")
    assert location.group(2) == env_example()["STATIC_ROOT"].rstrip("/") + "/"


def test_nginx_tells_django_the_scheme_and_host_the_browser_used() -> None:
    headers = dict(value.split(None, 1) for value in _nginx_directives("proxy_set_header"))
    assert headers["Host"] == "$host"
    assert headers["X-Forwarded-Proto"] == "$scheme"
