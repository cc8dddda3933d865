"""A PostgreSQL server of the test's own, which the test may stop and restart at will.

The suite's PostgreSQL is shared with whatever else runs on the machine and must never be
restarted by a test; this one is made with `initdb` in a temporary directory and started with
`pg_ctl` on a free loopback port. The PostgreSQL server refuses to run as root: when the tests
run as root, its commands run as the `postgres` account (PRIVATE_POSTGRES_USER names another).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class PrivatePostgres:
    bin_dir: Path
    data_dir: Path
    port: int
    run_as: str | None   # an account to run the server's commands as, when we are root
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/reliability"

    def _command(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        return [*prefix, *args]

    def ctl(self, *args: str) -> None:
        result = subprocess.run(self._command(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60", *args),
            capture_output=True, text=True)
        if result.returncode:
            log = (self.data_dir / "server.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"pg_ctl {' '.join(args)} failed: {result.stderr}\n{log}")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self.ctl("-l", str(self.data_dir / "server.log"), "-o", options, "start")

    def restart(self) -> None:
        """Stop the server as an administrator would for maintenance (every connection is
        terminated, each session told so), then start it again."""
        self.ctl("-m", "fast", "stop")
        self.start()
        self.restarts += 1

    def stop(self) -> None:
        self.ctl("-m", "immediate", "stop")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """Make, start, yield and finally stop and delete a PostgreSQL server of our own; skip
    with the reason when this machine cannot run one."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = Path(found[-1]) if found else (Path(p) if (p := shutil.which("initdb")) else None)
    if initdb is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine: the "
                    "restart campaign needs a PostgreSQL server of its own")
    run_as: str | None = None
    if os.geteuid() == 0:
        run_as = os.environ.get("PRIVATE_POSTGRES_USER", "postgres")
        try:
            account = pwd.getpwnam(run_as)
        except KeyError:
            pytest.skip(f"running as root, and no {run_as!r} account to run a PostgreSQL "
                        "server as (PRIVATE_POSTGRES_USER names one)")
        if not shutil.which("runuser"):
            pytest.skip("running as root, and no runuser to start PostgreSQL as another user")
    data_dir = Path(tempfile.mkdtemp(prefix="reliability-pg-"))
    try:
        if run_as:
            os.chown(data_dir, account.pw_uid, account.pw_gid)
        server = PrivatePostgres(initdb.parent, data_dir, _free_port(), run_as)
        result = subprocess.run(server._command(
            str(initdb), "-D", str(data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--no-sync"), capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"initdb could not make a PostgreSQL cluster here: {result.stderr}")
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
