from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"SECRET_KEY", "ENCRYPTION_KEYS", "DEBUG", "DATABASE_URL"}
    }
    environment.update({"VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "syncsite.settings"})
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
         "print('KEYS', len(settings.ENCRYPTION_KEYS))"],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=60,
    )


def test_the_server_refuses_to_start_without_a_secret_key_when_debug_is_off(
    tmp_path: Path,
) -> None:
    result = _load_settings(tmp_path, DEBUG="false", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_debug_generates_development_keys_once_and_says_so(tmp_path: Path) -> None:
    first = _load_settings(tmp_path, DEBUG="true", SECRET_KEY="", ENCRYPTION_KEYS="")
    assert first.returncode == 0, first.stderr
    assert "KEYS 1" in first.stdout
    assert "generated a development encryption key" in first.stderr
    key_file = tmp_path / "development-encryption-key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"

    second = _load_settings(tmp_path, DEBUG="true", SECRET_KEY="", ENCRYPTION_KEYS="")
    assert second.returncode == 0
    assert "generated" not in second.stderr
    assert key_file.read_text().strip()


@pytest.mark.parametrize("value", ["", "not-a-fernet-key"])
def test_manage_check_names_encryption_keys_when_they_are_missing_or_wrong(
    tmp_path: Path, value: str
) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environment.update(
        {"VAR_DIR": str(tmp_path), "DEBUG": "false", "SECRET_KEY": "x" * 50,
         "ENCRYPTION_KEYS": value, "DJANGO_SETTINGS_MODULE": "syncsite.settings"}
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO, env=environment,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "ENCRYPTION_KEYS" in result.stderr
    assert "Traceback" not in result.stderr
