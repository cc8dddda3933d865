"""The deployment samples in docs/deploy/, read as the guide installs them.

The samples name the production layout (code in /opt/crmsync, its virtualenv in
/opt/crmsync/.venv, gunicorn's settings in /etc/crmsync/); `on_this_checkout` maps those
paths to this checkout, so the tests run the very command lines the units run.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import sys
from pathlib import Path

from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "docs" / "deploy"
UNITS = ("crmsync-web.service", "crmsync-worker.service", "crmsync-listener.service")

# Where docs/deploy.md puts things → where they are in this checkout. Longest prefix first.
_INSTALLED_PATHS = {
    "/etc/crmsync/gunicorn.conf.py": str(SAMPLES / "gunicorn.conf.py"),
    "/opt/crmsync/.venv/bin/": str(Path(sys.executable).parent) + "/",
    "/opt/crmsync/": str(REPO) + "/",
}


def unit_settings(name: str) -> dict[str, list[str]]:
    """A systemd unit's `Key=value` lines by section and key (a key may repeat)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in (SAMPLES / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, separator, value = line.partition("=")
        if not separator:
            raise ValueError(f"{name}: not a Key=value line: {line!r}")
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


def exec_start(name: str) -> list[str]:
    """The unit's one ExecStart command line, split as systemd splits it."""
    (command,) = unit_settings(name)["Service.ExecStart"]
    return shlex.split(command)


def on_this_checkout(argument: str) -> str:
    for installed, here in _INSTALLED_PATHS.items():
        if argument.startswith(installed):
            return here + argument[len(installed):]
    return argument


def env_example() -> dict[str, str]:
    """docs/deploy/env.example as `NAME=value` pairs (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for number, line in enumerate((SAMPLES / "env.example").read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line)
        if not match:
            raise ValueError(f"env.example line {number} is not NAME=value: {line!r}")
        name, value = match.groups()
        if name in values:
            raise ValueError(f"env.example sets {name} twice")
        values[name] = value
    return values


def variables_the_settings_read() -> set[str]:
    """Every environment variable syncsite/settings.py reads, found in its source."""
    source = (REPO / "syncsite" / "settings.py").read_text()
    read_by_env = re.findall(r"\benv\.\w+\(\s*\"([A-Z][A-Z0-9_]*)\"", source)
    read_directly = re.findall(r"os\.environ\.get\(\s*\"([A-Z][A-Z0-9_]*)\"", source)
    return set(read_by_env) | set(read_directly)


def production_environment(tmp_path: Path, database_url: str) -> dict[str, str]:
    """The environment of a server installed from env.example, with its blanks filled in.

    The suite's own settings (tests/settings.py puts them in os.environ) are left out, so
    nothing but env.example and the values a real installation must choose applies."""
    ours = variables_the_settings_read() | {"DJANGO_SETTINGS_MODULE"}
    environment = {key: value for key, value in os.environ.items() if key not in ours}
    environment.update(env_example())
    share = tmp_path / "share"
    share.mkdir(exist_ok=True)
    environment.update({
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": database_url,
        "STATIC_ROOT": str(tmp_path / "static"),
        "VAR_DIR": str(tmp_path / "var"),
        "ATTACHMENT_ROOTS": str(share),
        # Alerts are not sent by what these tests do; a console backend makes sure of it.
        "EMAIL_URL": "consolemail://",
    })
    return environment
