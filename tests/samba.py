"""A real SMB server for the tests: Debian's Samba, `smbd` on loopback on a free port.

Not mocked: the SMB attachment store talks to it over TCP with smbprotocol, as it talks to a
company's Windows file server. Each server has its own configuration, state and shares in a
temporary folder; nothing outside it is touched but one unix account (`xchgsync-smb`, made
with useradd if missing), which Samba needs behind every SMB user (files are written as
root). Skipped, with the reason, where smbd is not installed (`.ci/run` installs it) or the
tests are not run as root.

Shares:
- `attachments`: writable by the test user;
- `readonly`: the same user may read, not write;
- `full`: a tmpfs of a few MB behind it, to fill up (None where mounting is not permitted);
- `dfs`: a DFS namespace root whose folder `elsewhere` is a link to `DFS_LINK_TARGET`, a
  server that is not this one;
- `moved`: a share the server says has moved there (a DFS referral for the share itself).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SMBD = shutil.which("smbd") or ("/usr/sbin/smbd" if os.path.exists("/usr/sbin/smbd") else "")
SMBPASSWD = shutil.which("smbpasswd") or "/usr/bin/smbpasswd"
USER = "xchgsync-smb"
PASSWORD = "Heslo-k-share-1"
FULL_SIZE_MB = 4
# Where the `dfs` share's link leads: another loopback address, on the same port.
DFS_LINK_TARGET = "127.0.0.2"


@dataclass
class Samba:
    base: Path
    port: int
    encrypt: str = "default"   # Samba's `server smb encrypt`: "default" offers, "off" does not
    process: subprocess.Popen[bytes] | None = None
    full: Path | None = None
    shares: dict[str, Path] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def unc(self, share: str = "attachments", *parts: str) -> str:
        return "\\".join([f"\\\\{self.host}", share, *parts])

    def start(self) -> None:
        log = (self.base / "smbd.log").open("ab")
        self.process = subprocess.Popen(
            [SMBD, "-F", "--no-process-group", "--debug-stdout", "-s", str(self.base / "smb.conf")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"smbd exited: {(self.base / 'smbd.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError), \
                    socket.create_connection((self.host, self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("smbd did not start listening within 15 s")

    def stop(self) -> None:
        """Killed, not shut down: as a file server that loses power or its network."""
        if self.process and self.process.poll() is None:
            # smbd forks a child per client connection, in the process group started for it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def share_path(self, share: str = "attachments") -> Path:
        return self.shares[share]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_user() -> None:
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        USER], check=True, capture_output=True)


def _config(samba: Samba) -> str:
    base = samba.base
    lines = [
        "[global]",
        f"smb ports = {samba.port}",
        "interfaces = 127.0.0.1",
        "bind interfaces only = yes",
        "server role = standalone server",
        f"private dir = {base / 'private'}",
        f"lock directory = {base / 'lock'}",
        f"state directory = {base / 'state'}",
        f"cache directory = {base / 'cache'}",
        f"pid directory = {base / 'pid'}",
        f"ncalrpc dir = {base / 'ncalrpc'}",
        f"passdb backend = tdbsam:{base / 'private' / 'passdb.tdb'}",
        "log level = 1",
        "disable netbios = yes",
        "map to guest = never",
        "load printers = no",
        "printcap name = /dev/null",
        "disable spoolss = yes",
        "server min protocol = SMB2_10",
        f"server smb encrypt = {samba.encrypt}",
        # Without unix extensions a SMB client sees links only as what they point at.
        "follow symlinks = no",
        "wide links = no",
    ]
    for name, path in samba.shares.items():
        # Files are written as root: the temporary folders above the shares are private to
        # root (pytest makes them 0700), and the unix account has no other use.
        lines += [f"[{name}]", f"path = {path}", f"valid users = {USER}", "force user = root",
                  f"read only = {'yes' if name == 'readonly' else 'no'}",
                  f"msdfs root = {'yes' if name == 'dfs' else 'no'}"]
    lines += ["[moved]", f"path = {samba.shares['attachments']}", f"valid users = {USER}",
              f"msdfs proxy = \\{DFS_LINK_TARGET}\\attachments"]
    return "\n".join(lines) + "\n"


def _mount_small_tmpfs(path: Path) -> bool:
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FULL_SIZE_MB}m,mode=0777",
                             "tmpfs", str(path)], capture_output=True)
    return result.returncode == 0


@contextlib.contextmanager
def running_samba(base: Path, *, encrypt: str = "default", with_full: bool = True
                  ) -> Iterator[Samba]:
    if not SMBD:
        pytest.skip("Samba's smbd is not installed (apt-get install samba): the SMB share "
                    "tests need a real SMB server")
    if os.geteuid() != 0:
        pytest.skip("smbd needs root to serve files as the share's user")
    _ensure_user()
    samba = Samba(base, _free_port(), encrypt)
    for folder in ("private", "lock", "state", "cache", "pid", "ncalrpc"):
        (base / folder).mkdir(parents=True)
    for share in ("attachments", "readonly", "full", "dfs"):
        path = base / "shares" / share
        path.mkdir(parents=True)
        if share == "full":
            if not with_full or not _mount_small_tmpfs(path):
                continue
            samba.full = path
        if share == "dfs":
            # Samba's form of a DFS link: a symbolic link to "msdfs:server\\share".
            (path / "elsewhere").symlink_to(f"msdfs:{DFS_LINK_TARGET}\\attachments")
        samba.shares[share] = path
    (base / "smb.conf").write_text(_config(samba))
    subprocess.run([SMBPASSWD, "-c", str(base / "smb.conf"), "-a", "-s", USER],
                   input=f"{PASSWORD}\n{PASSWORD}\n".encode(), check=True, capture_output=True)
    try:
        samba.start()
        yield samba
    finally:
        samba.stop()
        if samba.full is not None:
            subprocess.run(["umount", "-l", str(samba.full)], capture_output=True)


@pytest.fixture(scope="session")
def samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Samba]:
    """One smbd for the whole session (starting one takes about half a second)."""
    with running_samba(tmp_path_factory.mktemp("samba")) as server:
        yield server
