"""The benchmarks' temporary folders go when the benchmark ends, however it ends
(bench/scratch.py), and a repeated run's child leaves nothing behind (bench/run.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench import scratch

REPO = Path(__file__).resolve().parents[2]

# A process that makes a folder as setup_django does, puts a file in it, says where, then ends
# as `ending` says.
CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
from bench import scratch
scratch.exit_on_sigterm()
folder = scratch.directory("bench-test-")
(folder / "db.sqlite3").write_bytes(b"x" * 1000)
print(folder, flush=True)
{ending}
"""
ENDINGS = {
    "normal exit": "pass",
    "an exception": "raise RuntimeError('the benchmark failed')",
    "Ctrl-C": "raise KeyboardInterrupt",
    "sys.exit": "sys.exit(3)",
}


def run_child(tmp_path: Path, ending: str, **env: str) -> tuple[Path, subprocess.Popen[str]]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(repo=str(REPO), ending=ending)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TMPDIR": str(tmp_path), "BENCH_KEEP_TMP": "", **env})
    assert child.stdout is not None
    folder = Path(child.stdout.readline().strip())
    assert folder.parent == tmp_path and folder.name.startswith("bench-test-")
    return folder, child


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_the_folder_goes_when_the_process_ends(tmp_path, ending):
    folder, child = run_child(tmp_path, ENDINGS[ending])
    child.communicate(timeout=30)
    assert not folder.exists()
    assert list(tmp_path.iterdir()) == []


def test_the_folder_goes_when_the_process_is_terminated(tmp_path):
    folder, child = run_child(tmp_path, "time.sleep(60)")
    assert folder.exists()
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=30)
    assert child.returncode == 128 + signal.SIGTERM
    assert not folder.exists()


def test_bench_keep_tmp_keeps_the_folder_to_read_a_failed_runs_logs(tmp_path):
    folder, child = run_child(tmp_path, ENDINGS["an exception"], BENCH_KEEP_TMP="1")
    child.communicate(timeout=30)
    assert (folder / "db.sqlite3").exists()


def test_a_scoped_folder_goes_when_its_block_fails(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_KEEP_TMP", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(RuntimeError), scratch.scoped_directory("bench-test-") as folder:
        (folder / "share").mkdir()
        raise RuntimeError("the benchmark failed")
    assert list(tmp_path.iterdir()) == []


def test_a_repeated_runs_child_leaves_no_folder(tmp_path, monkeypatch):
    from bench import run

    # The child's temporary directory is made below this test's; it must be gone afterwards,
    # with the throwaway database and VAR_DIR the child made inside it.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("BENCH_KEEP_TMP", raising=False)
    lines = run._child_run(["contacts-first-sync", "--n", "10", "--case", "import", "--smoke",
                            "--repeat", "1"])
    assert [line["benchmark"] for line in lines] == ["contacts-first-sync.import"]
    assert lines[0]["ok"] is True
    assert list(tmp_path.iterdir()) == []
