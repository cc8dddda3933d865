"""Development-only keys kept in files under `var/`, so a DEBUG server needs no setup."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cryptography.fernet import Fernet


def _new_value(kind: str) -> str:
    if kind == "encryption key":
        return Fernet.generate_key().decode()
    return Fernet.generate_key().decode() + Fernet.generate_key().decode()


def development_file_value(path: Path, kind: str) -> str:
    """Return the value stored in `path`, creating it (readable by the owner only) if absent."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = _new_value(kind)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    # Logging is not configured yet while settings load; stderr is what the operator sees.
    print(
        f"DEBUG is on: generated a development {kind} in {path}. "
        "Set it in the environment for a production server.",
        file=sys.stderr,
    )
    return value
