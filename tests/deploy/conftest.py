"""One production installation for the deployment tests, on a new, empty database.

The database is of the same kind as the suite's: a SQLite file, or (when DATABASE_URL names
PostgreSQL) a database of its own on that server, dropped afterwards. The suite's test
database is not used: the installation starts from nothing and migrates it itself.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import environ
import psycopg
import pytest

from tests.deploy.installation import Installation, installed


@pytest.fixture(scope="session")
def fresh_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    suite_url = os.environ.get("DATABASE_URL", "")
    if not suite_url.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp_path_factory.mktemp('database') / 'db.sqlite3'}"
        return
    config = environ.Env.db_url_config(suite_url)
    name = f"crmsync_deploy_{secrets.token_hex(4)}"
    server = {"host": config["HOST"] or None, "port": config["PORT"] or None,
              "user": config["USER"] or None, "password": config["PASSWORD"] or None}
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(suite_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def installation(tmp_path_factory: pytest.TempPathFactory,
                 fresh_database_url: str) -> Iterator[Installation]:
    """Shared by the tests: they only read, but for signing the administrator in, which
    changes nothing another test looks at."""
    with installed(tmp_path_factory.mktemp("installation"), fresh_database_url) as site:
        yield site
