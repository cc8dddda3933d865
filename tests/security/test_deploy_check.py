"""`manage.py check --deploy` under production settings: not one warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.deploy.samples import REPO, production_environment


def _check_deploy(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)


def test_the_deployment_checks_pass_without_a_warning(tmp_path: Path) -> None:
    # The environment docs/deploy/env.example gives a server (DEBUG off), with its blanks
    # filled in as an installation fills them; nothing of the test suite's settings.
    environment = production_environment(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert environment["DEBUG"] == "false"

    result = _check_deploy(environment)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_the_check_does_fail_on_an_insecure_setting(tmp_path: Path) -> None:
    # The same command notices a weak key: the test above could fail.
    environment = production_environment(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}")
    environment["SECRET_KEY"] = "short"

    result = _check_deploy(environment)

    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr
