"""The user pages' tests reach Exchange through ewsim, like the engine's."""

from __future__ import annotations

from ewsim.testing import ewsim, ewsim_server  # noqa: F401 (fixtures)
