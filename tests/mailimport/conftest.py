"""E-mail import is tested against ewsim over loopback HTTP, like the other agendas."""

from __future__ import annotations

from ewsim.testing import ewsim, ewsim_server  # noqa: F401 (fixtures)
from tests.engine.conftest import access, mailbox  # noqa: F401 (fixtures)
