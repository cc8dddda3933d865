"""`python bench/run.py mail-import --n 1000 [--attachment-mb 100]`: the e-mail import, timed.

Two modes, one JSON line each:
- `--n N`: N e-mails, each with two 100 KB attachments of allowed types (a .pdf and a .docx,
  every one with its own content so nothing is deduplicated), delivered into the simulated
  Inbox before the measured part; then one import run of a profile saving attachments into a
  temporary directory under its organization's root, which is the server's (ATTACHMENT_ROOTS).
  Targets: at most 15 s without added latency (not checked with --smoke), and at most 0.1
  requests per e-mail (10 at least) on EWS (messages 100 per GetItem, small attachments many
  per GetAttachment) and on Graph (a `$batch` carries 20 operations: one per message, its
  small attachments' contents with it).
  `--latency-ms` delays every request ewsim answers, as a real server's round trip would.
- `--attachment-mb M`: one e-mail with a single attachment of M MB, imported the same way, and
  the same run with one e-mail without it; each in a child process of its own so that neither
  run's memory shows in the other's peak. Target: the peak RSS of the run with the attachment
  at most 50 MB above the one without (the attachment is streamed, never held whole).

The run is the product's own MailImport (as a worker starts it: fresh profile, its own mailbox
connection through `open_mailbox`) against ewsim in a child process, on a throwaway SQLite
database (or the PostgreSQL database DATABASE_URL names), migrated first. `peak_rss_mb` is this
process's peak during the run alone (reset just before it). `BENCH_PROFILE=DIR` writes a
cProfile of the timed run into DIR.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import backend
from bench.contacts import SERVICE, SERVICE_PASSWORD, counting_queries, make_profile, setup_django
from bench.run import MB, REPO, USER, _reset_peak, _rss_mb, simulator

KB = 1024
ATTACHMENT_BYTES = 100 * KB
# Targets (bench/README.md).
MAX_SECONDS = 15.0
MAX_REQUESTS_PER_EMAIL = {"ews": 0.1, "graph": 0.1}
# ... but a few requests at any size: reading the folder, the last page.
MIN_REQUEST_BUDGET = 10
MAX_RSS_OVER_BASELINE_MB = 50.0
# Senders the CRM knows (one person each): the run links those e-mails, as it would in use.
KNOWN_SENDERS = 100


def _content(seed: str, prefix: bytes, size: int) -> str:
    """Text content of exactly `size` bytes, unique per seed (so the store cannot dedupe it).
    Text because the control plane's field delivery takes attachment content as a string."""
    rng = random.Random(seed)
    body = rng.randbytes((size - len(prefix)) // 2 + 1).hex()
    return (prefix.decode() + body)[:size]


def _mail(i: int) -> dict[str, Any]:
    """E-mail `i` as control-plane fields: from a sender the CRM may know, two attachments."""
    return {
        "subject": f"Nabídka {i}", "from": f"Petr Svoboda {i} <petr{i}@stavby.example.cz>",
        "to": USER, "message_id": f"<bench-{i}@stavby.example.cz>",
        "body": f"Dobrý den,\nposílám podklady k nabídce {i}.\n",
        "attachments": [
            {"name": f"nabidka-{i}.pdf", "content_type": "application/pdf",
             "content": _content(f"pdf-{i}", b"%PDF-1.4\n", ATTACHMENT_BYTES)},
            {"name": f"smlouva-{i}.docx",
             "content_type": "application/vnd.openxmlformats-officedocument"
                             ".wordprocessingml.document",
             "content": _content(f"docx-{i}", b"PK-docx\n", ATTACHMENT_BYTES)},
        ],
    }


def _share() -> Path:
    """The approved root, set before Django reads its settings; the profile saves below it."""
    root = Path(tempfile.mkdtemp(prefix="bench-mail-share-"))
    os.environ["ATTACHMENT_ROOTS"] = str(root)
    return root


def _profile(url: str, directory: Path | str, max_attachment_mb: int, *, name: str = "mail",
             share: Callable[[Any], None] | None = None, roots: Path | None = None) -> Any:
    from django.conf import settings

    from crm.models import Person

    profile = make_profile(url, name, USER)
    organization = profile.organization
    if share is not None:
        share(organization)   # its roots on an SMB share (bench/mail_smb.py)
    else:
        # The benchmark's only organization gets the server's roots, as an installation's
        # would (or a folder of its own inside them, one for each of several runs).
        organization.attachment_roots = str(roots) if roots else "\n".join(
            settings.ATTACHMENT_ROOTS)
        organization.full_clean()
        organization.save(update_fields=["attachment_roots"])
    mail = profile.mailsettings
    mail.save_attachments = True
    mail.attachment_directory = str(directory)
    mail.max_attachment_mb = max_attachment_mb
    mail.full_clean()   # what the admin form would check: the directory is inside a root
    mail.save()
    Person.objects.bulk_create(
        [Person(organization_id=profile.organization_id, first_name="Petr",
                last_name=f"Svoboda {i}", email1=f"petr{i}@stavby.example.cz")
         for i in range(KNOWN_SENDERS)])
    return profile


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed_import(control: Any, profile: Any, sim_pid: int) -> dict[str, Any]:
    """One import run, as a worker starts it; its time, requests, queries and peak memory.
    CPU seconds of this process and of the simulator are extras: on a busy machine they show
    how much of `seconds` was work and how much waiting for a CPU or the disk."""
    from engine.crmstore.builtin import BuiltinCrm
    from engine.mailbox import open_mailbox
    from mailimport.importer import MailImport
    from profiles.models import SyncProfile

    profile = SyncProfile.objects.get(pk=profile.pk)   # fresh, as a worker would load it
    profile_dir = os.environ.get("BENCH_PROFILE")
    profiler = cProfile.Profile() if profile_dir else None
    control.reset_counters()
    gc.collect()
    _reset_peak(os.getpid())
    with counting_queries() as queries:
        cpu, sim_cpu = time.process_time(), _cpu_seconds(sim_pid)
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        with open_mailbox(profile) as mailbox:
            run = MailImport(profile, mailbox, BuiltinCrm(profile.organization_id),
                             trigger="manual").run()
        if profiler is not None:
            profiler.disable()
        seconds = time.perf_counter() - started
        cpu, sim_cpu = time.process_time() - cpu, _cpu_seconds(sim_pid) - sim_cpu
    peak = _rss_mb(os.getpid(), "VmHWM")
    if profiler is not None and profile_dir:
        profiler.dump_stats(Path(profile_dir) / f"mail-run-{run.pk}.prof")
    return {"seconds": round(seconds, 3), "ews_requests": backend.requests(control, run),
            "peak_rss_mb": round(peak, 1), "status": run.status,
            "crm_created": run.crm_created, "errors": run.errors, "db_queries": queries[0],
            "cpu_seconds": round(cpu, 3), "sim_cpu_seconds": round(sim_cpu, 3)}


def _saved(directory: Path, organization_id: int) -> dict[str, Any]:
    """What the run left: files on the share (bookkeeping folders aside) and CRM records."""
    from crm.models import Document, Email

    files = [p for p in directory.rglob("*") if p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(directory).parts)]
    return {"files_saved": len(files), "bytes_written": sum(p.stat().st_size for p in files),
            "documents": Document.objects.filter(organization_id=organization_id).count(),
            "emails": Email.objects.filter(organization_id=organization_id).count()}


def bench_many(n: int, latency_ms: int, check_timings: bool = True) -> dict[str, Any]:
    root = _share()
    try:
        return _many(root, n, latency_ms, check_timings)
    finally:
        shutil.rmtree(root, ignore_errors=True)   # 200 MB for 1,000 e-mails


def _many(root: Path, n: int, latency_ms: int, check_timings: bool, *, name: str = "mail",
          on_share: tuple[str, Callable[[Any], None]] | None = None) -> dict[str, Any]:
    """`root / "crm"` is where the files land on this machine's disk, `root` the organization's
    own root (the server's, or a folder inside it); `on_share`, the directory on an SMB share
    (whose folder is `root`) and how to set its organization up; `name`, the organization's
    (one of its own each run)."""
    setup_django()
    with simulator(latency_ms) as (url, control, sim_pid):
        control.add_user(SERVICE, SERVICE_PASSWORD, can_impersonate=["*"])
        for i in range(n):   # untimed
            control.deliver(USER, **_mail(i))
        if on_share:
            profile = _profile(url, on_share[0], max_attachment_mb=50, name=name,
                               share=on_share[1])
        else:
            profile = _profile(url, root / "crm", max_attachment_mb=50, name=name, roots=root)
        measured = _timed_import(control, profile, sim_pid)
    saved = _saved(root / "crm", profile.organization_id)
    ok = (measured["status"] == "success" and not measured["errors"] and saved["emails"] == n
          and saved["documents"] == saved["files_saved"] == 2 * n
          and saved["bytes_written"] == 2 * n * ATTACHMENT_BYTES)
    requests = measured.pop("ews_requests")
    return {"benchmark": "mail-import", "backend": backend.name(), "items": n,
            "latency_ms": latency_ms, "seconds": measured.pop("seconds"),
            "ews_requests": requests, "requests_per_email": round(requests / max(n, 1), 3),
            "max_requests": max(MIN_REQUEST_BUDGET,
                                math.ceil(MAX_REQUESTS_PER_EMAIL[backend.name()] * n)),
            "peak_rss_mb": measured.pop("peak_rss_mb"), **saved, **measured,
            "attachment_kb": ATTACHMENT_BYTES // KB,
            # The time target is for a simulator without added latency.
            "max_seconds": MAX_SECONDS if check_timings and not latency_ms else None,
            "ok": ok}


def one_large(attachment_mb: int, latency_ms: int, share: str = "local") -> dict[str, Any]:
    """One e-mail with one attachment of this size (0: none), imported; run in a child."""
    root = _share()
    try:
        if share == "smb":
            from bench import mail_smb

            return mail_smb.one_large(root, attachment_mb, latency_ms)
        return _one_large(root, attachment_mb, latency_ms)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _one_large(root: Path, attachment_mb: int, latency_ms: int,
               on_share: tuple[str, Callable[[Any], None]] | None = None) -> dict[str, Any]:
    setup_django()
    with simulator(latency_ms) as (url, control, sim_pid):
        control.add_user(SERVICE, SERVICE_PASSWORD, can_impersonate=["*"])
        attachments = [{"name": "velky-soubor.pdf", "content_type": "application/pdf",
                        "size": attachment_mb * MB}] if attachment_mb else []
        control.deliver(USER, subject="Velká příloha", to=USER,
                        **{"from": "Petr Svoboda <petr0@stavby.example.cz>"},
                        attachments=attachments)
        limit = max(50, 2 * attachment_mb)
        if on_share:
            profile = _profile(url, on_share[0], limit, name="mail-smb", share=on_share[1])
        else:
            profile = _profile(url, root / "crm", max_attachment_mb=limit)
        measured = _timed_import(control, profile, sim_pid)
    return {**measured, **_saved(root / "crm", profile.organization_id)}


def _in_child(attachment_mb: int, latency_ms: int, share: str = "local") -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.mail", "--child-attachment-mb", str(attachment_mb),
         "--latency-ms", str(latency_ms), "--share", share],
        cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"the {attachment_mb} MB child failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def bench_large(attachment_mb: int, latency_ms: int, share: str = "local") -> dict[str, Any]:
    large = _in_child(attachment_mb, latency_ms, share)
    baseline = _in_child(0, latency_ms, share)
    over = large["peak_rss_mb"] - baseline["peak_rss_mb"]
    size = attachment_mb * MB
    ok = (large["status"] == "success" and not large["errors"] and large["documents"] == 1
          and large["bytes_written"] == size and baseline["status"] == "success")
    return {"benchmark": "mail-import.attachment", "share": share, "items": 1,
            "seconds": large["seconds"],
            "ews_requests": large["ews_requests"], "peak_rss_mb": large["peak_rss_mb"],
            "baseline_peak_rss_mb": baseline["peak_rss_mb"],
            "rss_over_baseline_mb": round(over, 1),
            "max_rss_over_baseline_mb": MAX_RSS_OVER_BASELINE_MB,
            "attachment_mb": attachment_mb, "files_saved": large["files_saved"],
            "documents": large["documents"], "bytes_written": large["bytes_written"],
            "status": large["status"], "errors": large["errors"],
            "baseline_seconds": baseline["seconds"], "ok": ok}


def bench_mail_import(n: int, latency_ms: int, attachment_mb: int,
                      check_timings: bool = True, share: str = "local",
                      repeat: int = 1) -> dict[str, Any]:
    if attachment_mb:
        return bench_large(attachment_mb, latency_ms, share)
    if share == "smb":
        from bench import mail_smb

        return mail_smb.bench_many(n, latency_ms, check_timings, repeat)
    return bench_many(n, latency_ms, check_timings)


def misses(result: dict[str, Any]) -> list[str]:
    name, out = result["benchmark"], []
    if result.get("max_ratio") and result["ratio"] > result["max_ratio"]:
        out.append(f"{name}: {result['ratio']}x the local-disk run > {result['max_ratio']}x")
    if result.get("max_seconds") and result["seconds"] > result["max_seconds"]:
        out.append(f"{name}: {result['seconds']} s > {result['max_seconds']} s")
    if "max_requests" in result and result["ews_requests"] > result["max_requests"]:
        out.append(f"{name}: {result['ews_requests']} requests > {result['max_requests']} "
                   f"({result['requests_per_email']} per e-mail)")
    if "rss_over_baseline_mb" in result \
            and result["rss_over_baseline_mb"] > result["max_rss_over_baseline_mb"]:
        out.append(f"{name}: peak RSS {result['rss_over_baseline_mb']} MB above the run "
                   f"without the attachment > {result['max_rss_over_baseline_mb']} MB")
    if not result["ok"]:
        out.append(f"{name}: wrong result (status {result['status']}, {result['errors']} "
                   "errors, or other files, documents or e-mails than expected)")
    return out


if __name__ == "__main__":
    # The child of `bench_large`: one run, its line on stdout for the parent.
    parser = argparse.ArgumentParser()
    parser.add_argument("--child-attachment-mb", type=int, required=True)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--share", choices=["local", "smb"], default="local")
    args = parser.parse_args()
    print(json.dumps(one_large(args.child_attachment_mb, args.latency_ms, args.share)),
          flush=True)
