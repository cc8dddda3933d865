"""Create the first administrator on a new install and print its login once."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create an administrator if none exists, and print its login (only that once)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--email", default="admin@localhost")

    def handle(self, *args: Any, username: str, email: str, **options: Any) -> None:
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            self.stdout.write("An administrator exists already; sign in with its password.")
            return
        password = secrets.token_urlsafe(12)
        users.create_superuser(username=username, email=email, password=password)
        self.stdout.write(
            self.style.SUCCESS(
                "\n  Administrator created. Sign in at http://127.0.0.1:8000/admin/ with\n"
                f"    user name: {username}\n    password:  {password}\n"
                "  This password is shown only now: change it after signing in.\n"
            )
        )
