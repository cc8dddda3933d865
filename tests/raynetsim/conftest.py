"""Fixtures for the raynetsim tests (no Django needed): the simulator, and a `requests`
session signed in as its default API user."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from raynetsim.testing import RaynetHandle, raynetsim, raynetsim_server  # noqa: F401


def api_session(sim: RaynetHandle, user: str | None = None, api_key: str | None = None,
                instance: str | None = None) -> requests.Session:
    session = requests.Session()
    session.auth = (user or sim.user, api_key or sim.api_key)
    session.headers["X-Instance-Name"] = instance or sim.instance
    return session


@pytest.fixture
def api(raynetsim: RaynetHandle) -> Iterator[requests.Session]:  # noqa: F811 (fixture)
    with api_session(raynetsim) as session:
        yield session
