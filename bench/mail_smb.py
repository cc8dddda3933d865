"""`python bench/run.py mail-import --n 1000 --share smb`: the e-mail import onto an SMB share.

The same run as bench/mail.py's, once onto a local folder and once onto a share of a Samba
started on loopback (tests/samba.py: smbd from Debian's samba package, run as root), in the
same process one after the other; the line holds both times and their ratio. Target: the
share at most 1.5x the local disk. With `--attachment-mb M` the peak RSS of a run saving one
attachment of M MB onto the share (bench/mail.py's `bench_large`, each run in a child).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import mail, scratch

MAX_RATIO = 1.5


def _on_share(samba: Any, folder: str) -> tuple[str, Callable[[Any], None]]:
    """The profile's directory on the share, and its organization set up to save there."""
    from tests.samba import PASSWORD, USER

    def setup(organization: Any) -> None:
        organization.attachment_storage = "smb"
        organization.attachment_roots = samba.unc("attachments", folder)
        organization.share_username = USER
        organization.share_port = samba.port
        organization.set_share_secret(PASSWORD)
        organization.full_clean()
        organization.save()

    return samba.unc("attachments", folder, "crm"), setup


def bench_many(n: int, latency_ms: int, check_timings: bool) -> dict[str, Any]:
    from tests.samba import running_samba

    local = mail.bench_many(n, latency_ms, check_timings=False)
    with running_samba(scratch.directory("bench-samba-"), with_full=False) as samba:
        smb = mail._many(samba.share_path() / "bench", n, latency_ms, check_timings=False,
                         on_share=_on_share(samba, "bench"))
    ratio = smb["seconds"] / max(local["seconds"], 0.001)
    return {**smb, "benchmark": "mail-import.share", "share": "smb",
            "local_seconds": local["seconds"], "ratio": round(ratio, 2),
            "max_ratio": MAX_RATIO if check_timings and not latency_ms else None,
            "max_seconds": None, "ok": smb["ok"] and local["ok"]}


def one_large(root: Path, attachment_mb: int, latency_ms: int) -> dict[str, Any]:
    from tests.samba import running_samba

    with running_samba(root / "samba", with_full=False) as samba:
        return mail._one_large(samba.share_path() / "bench", attachment_mb, latency_ms,
                               on_share=_on_share(samba, "bench"))
