"""The reliability campaigns talk to ewsim over loopback HTTP and to the suite's database; the
workers they kill are processes of their own sharing that database (tests/engine/test_scale.py
explains how, on SQLite and on PostgreSQL)."""

from __future__ import annotations

from ewsim.testing import ewsim, ewsim_server  # noqa: F401 (fixtures)
from tests.engine.test_scale import shared_database  # noqa: F401 (fixture)
