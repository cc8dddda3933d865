"""Run the web server and the background worker together in the foreground.

Ctrl-C (or SIGTERM) stops them all; if one of them ends, the others are stopped too, so
nothing is left running half-way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from profiles.demo_raynet import RAYNET_ADDRESS, raynetsim_command

# Where the demo mailboxes are kept between runs: the CRM's demo organization is synced with
# them, and mailboxes seeded anew (new ids) would come back into it as duplicates.
DEMO_STATE_FILE = "ewsim-demo.json"


class Command(BaseCommand):
    help = "Start the web server, a django-q2 worker cluster and the change listener together."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument(
            "--demo-mailbox", metavar="HOST:PORT", nargs="?", const="127.0.0.1:8765",
            help="also run the EWS simulator with its demo mailboxes (default 127.0.0.1:8765) "
                 "and, with SYNC_DEMO, the Raynet simulator with its demo instance")
        parser.add_argument(
            "--demo-raynet", metavar="HOST:PORT", default=RAYNET_ADDRESS,
            help="where the Raynet simulator of the demo listens (default %(default)s)")

    def handle(self, *args: Any, addrport: str, demo_mailbox: str | None, demo_raynet: str,
               **options: Any) -> None:
        manage = [sys.executable, os.path.abspath(sys.argv[0])]
        commands = {
            "web": [*manage, "runserver", addrport, "--noreload"],
            "worker": [*manage, "qcluster"],      # also runs the dispatcher schedule
            "listener": [*manage, "listen"],      # syncs within seconds of a change
        }
        if demo_mailbox:
            host, _, port = demo_mailbox.rpartition(":")
            commands["demo mailbox"] = demo_mailbox_command(host or "127.0.0.1", port)
            if settings.SYNC_DEMO:
                host, _, port = demo_raynet.rpartition(":")
                commands["demo Raynet"] = raynetsim_command(host or "127.0.0.1", port)

        def stop(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        # Set explicitly: a process started in the background by a shell inherits SIGINT
        # ignored, and would then not stop on Ctrl-C.
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        # Each child in a process group of its own: Ctrl-C reaches only this process, which
        # then stops each child with exactly one signal (django-q2's cluster can hang when a
        # second signal arrives while it is stopping).
        children = {
            name: subprocess.Popen(command, process_group=0) for name, command in commands.items()
        }
        self.stdout.write(f"Started {', '.join(children)}; press Ctrl-C to stop.")
        exit_code = 0
        try:
            while True:
                for name, child in children.items():
                    if child.poll() is not None:
                        self.stderr.write(f"{name} stopped (exit code {child.returncode}).")
                        exit_code = child.returncode or 1
                        raise KeyboardInterrupt
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            _stop_all(children.values())
        if exit_code:
            sys.exit(exit_code)


def demo_mailbox_command(host: str, port: str) -> list[str]:
    """The EWS simulator with the demo mailboxes, kept in var/ from one run to the next."""
    return [sys.executable, "-m", "ewsim", "--seed", "demo",
            "--state", str(settings.VAR_DIR / DEMO_STATE_FILE), "--host", host, "--port", port]


def _stop_all(children: Any) -> None:
    running = [child for child in children if child.poll() is None]
    for child in running:
        # SIGTERM: the web server exits at once, the worker cluster finishes its tasks.
        child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for child in running:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # the child and whatever it started
