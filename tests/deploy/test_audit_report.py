"""The CI dependency audit's verdict (.ci/audit_report.py) on pip-audit's JSON reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPORTER = Path(__file__).resolve().parents[2] / ".ci" / "audit_report.py"
DJANGO_OK = {"name": "django", "version": "5.2.19", "vulns": []}
VULNERABLE = {"name": "requests", "version": "2.0.0", "vulns": [
    {"id": "PYSEC-2014-13", "fix_versions": ["2.3.0"], "aliases": [], "description": "…"}]}
UNCHECKED = {"name": "tzdata", "version": "2026.6",
             "skip_reason": "Dependency not found on PyPI and could not be audited: tzdata"}


def verdict(tmp_path: Path, dependencies: list[dict], status: int = 0,
            required: bool = False) -> subprocess.CompletedProcess[str]:
    report = tmp_path / "audit.json"
    report.write_text(json.dumps({"dependencies": dependencies, "fixes": []}))
    env = {"AUDIT_REQUIRED": "1"} if required else {}
    return subprocess.run([sys.executable, str(REPORTER), str(report), str(status)],
                          capture_output=True, text=True, env=env, check=False)


def test_a_known_vulnerability_fails_the_audit_and_is_named(tmp_path: Path) -> None:
    result = verdict(tmp_path, [DJANGO_OK, VULNERABLE], status=1)
    assert result.returncode == 1
    assert "VULNERABLE requests 2.0.0: PYSEC-2014-13 (fixed in 2.3.0)" in result.stdout
    assert "2 of 2 packages checked, 1 with known vulnerabilities" in result.stdout


def test_a_clean_report_passes(tmp_path: Path) -> None:
    result = verdict(tmp_path, [DJANGO_OK])
    assert result.returncode == 0, result.stdout
    assert "1 of 1 packages checked, 0 with known vulnerabilities, 0 not checked" in result.stdout


@pytest.mark.parametrize("required", [False, True])
def test_packages_that_could_not_be_checked_are_said_and_fail_only_when_required(
        tmp_path: Path, required: bool) -> None:
    result = verdict(tmp_path, [UNCHECKED], required=required)
    assert result.returncode == (1 if required else 0)
    assert "0 of 1 packages checked" in result.stdout
    assert "nothing was audited" in result.stdout


def test_no_report_at_all_fails(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(REPORTER), str(tmp_path / "none.json"), "2"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "gave no report (exit 2)" in result.stderr
