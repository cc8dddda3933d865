"""Mailbox backends are tested against ewsim over loopback HTTP: exchangelib is never mocked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from exchangelib.protocol import BaseProtocol

from engine.mailbox.base import Auth, MailboxAccess
from engine.mailbox.ews import EwsMailbox
from ewsim.testing import SimHandle, ewsim, ewsim_server  # noqa: F401 (fixtures)

from .listen_helpers import listen  # noqa: F401 (a fixture)

# exchangelib's first back-off when the server names none is 10 s; tests need not wait that.
BaseProtocol.RETRY_WAIT = 0.2


def access_to(sim: SimHandle, **overrides: object) -> MailboxAccess:
    """Alice opens her own mailbox with Basic authentication, unless told otherwise."""
    values: dict[str, object] = {
        "mailbox": sim.user, "endpoint": sim.url, "auth": Auth.BASIC, "username": sim.user,
        "secret": sim.password, "impersonate": False, "throttle_budget_seconds": 5.0,
    }
    values.update(overrides)
    return MailboxAccess(**values)  # type: ignore[arg-type]


@pytest.fixture
def access(ewsim: SimHandle) -> MailboxAccess:  # noqa: F811 (pytest fixture injection)
    return access_to(ewsim)


@pytest.fixture
def mailbox(access: MailboxAccess) -> Iterator[EwsMailbox]:
    with EwsMailbox(access) as backend:
        yield backend
