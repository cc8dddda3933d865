"""`python manage.py listen`: queue syncs within seconds of a change in Exchange or the CRM."""

from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand

from engine.listen import Listener


class Command(BaseCommand):
    help = "Watch active profiles' mailboxes and the CRM, and queue syncs when they change."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--debounce", type=float, default=2.0,
                            help="seconds to gather a burst of changes into one sync")

    def handle(self, *args: Any, debounce: float, **options: Any) -> None:
        listener = Listener(debounce=debounce)

        def stop(signum: int, frame: Any) -> None:
            listener.stop.set()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write("Listening for changes; Ctrl-C stops.")
        listener.run()
        self.stdout.write("Stopped listening.")
