"""The CRM contract run against MemoryCrm: the interface alone is enough to keep it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from engine.crmstore.base import CrmBackend
from tests.engine.crmstore import memory
from tests.engine.crmstore.contract import CrmContract

_ORGANIZATIONS = itertools.count(1)


class TestMemoryCrm(CrmContract):
    @pytest.fixture(autouse=True)
    def _organizations(self) -> Iterator[None]:
        # Fresh organization names: each test starts empty, whatever ran before.
        number = next(_ORGANIZATIONS)
        self.acme, self.globex = f"acme-{number}", f"globex-{number}"
        yield
        memory.forget(self.acme)
        memory.forget(self.globex)

    def open_backend(self, user: str = "alice", *, own_only: bool = False,
                     branch: str | None = None) -> CrmBackend:
        return memory.MemoryCrm(self.acme, user, own_only=own_only, branch=branch)

    def open_elsewhere(self) -> CrmBackend:
        return memory.MemoryCrm(self.globex, "alice")

    def make_branch(self, name: str, parent: str | None = None) -> str:
        return memory.add_branch(self.acme, name, parent)

    def user_key(self, user: str) -> str:
        return user

    def participants(self, key: str) -> set[str]:
        return memory.participants(self.acme, key)
