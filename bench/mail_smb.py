"""`python bench/run.py mail-import --n 1000 --share smb`: the e-mail import onto an SMB share.

The same run as bench/mail.py's, once onto a local folder and once onto a share of a Samba
started on loopback (tests/samba.py: smbd from Debian's samba package, run as root), in the
same process one after the other, --repeat pairs of them; the line holds the median pair's
times and ratio, and every pair's. Target: the share at most 1.5x the local disk. With
`--attachment-mb M` the peak RSS of a run saving one attachment of M MB onto the share
(bench/mail.py's `bench_large`, each run in a child).
"""

from __future__ import annotations

import shutil
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


def bench_many(n: int, latency_ms: int, check_timings: bool,
               repeat: int = 1) -> dict[str, Any]:
    """`repeat` pairs, each a local-disk run and then the same run onto the share right after
    it (one Samba for all): the line of the pair whose ratio is the median, with every pair's
    seconds. A run of ten seconds on a small shared machine varies by a fifth from one to the
    next; a pair measured together shares the machine's mood (as in bench/repeat.py)."""
    from tests.samba import running_samba

    pairs = []
    local_root = mail._share()   # the server's root, set before Django reads its settings
    try:
        with running_samba(scratch.directory("bench-samba-"), with_full=False) as samba:
            for number in range(max(repeat, 1)):
                # Each run's organization has a folder of its own: roots never overlap.
                own = local_root / f"pair{number}"
                own.mkdir()
                local = mail._many(own, n, latency_ms, check_timings=False, name=f"mail {number}")
                shutil.rmtree(own, ignore_errors=True)   # 200 MB for 1,000 e-mails
                folder = f"bench{number}"
                smb = mail._many(samba.share_path() / folder, n, latency_ms, check_timings=False,
                                 name=f"mail-smb {number}", on_share=_on_share(samba, folder))
                shutil.rmtree(samba.share_path() / folder, ignore_errors=True)
                pairs.append((smb["seconds"] / max(local["seconds"], 0.001), local, smb))
    finally:
        shutil.rmtree(local_root, ignore_errors=True)
    ratio, local, smb = sorted(pairs, key=lambda pair: pair[0])[(len(pairs) - 1) // 2]
    return {**smb, "benchmark": "mail-import.share", "share": "smb",
            "local_seconds": local["seconds"], "ratio": round(ratio, 2),
            "max_ratio": MAX_RATIO if check_timings and not latency_ms else None,
            "repeats": len(pairs),
            "runs": [{"seconds": smb["seconds"], "local_seconds": local["seconds"],
                      "ratio": round(ratio, 2)} for ratio, local, smb in pairs],
            "max_seconds": None,
            "ok": all(smb["ok"] and local["ok"] for _, local, smb in pairs)}


def one_large(root: Path, attachment_mb: int, latency_ms: int) -> dict[str, Any]:
    from tests.samba import running_samba

    with running_samba(root / "samba", with_full=False) as samba:
        return mail._one_large(samba.share_path() / "bench", attachment_mb, latency_ms,
                               on_share=_on_share(samba, "bench"))
