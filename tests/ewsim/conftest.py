"""Self-sufficient fixtures for the ewsim tests (no Django needed)."""

from __future__ import annotations

import pytest
from exchangelib import (
    BASIC,
    DELEGATE,
    Account,
    Build,
    CalendarItem,
    Configuration,
    Contact,
    Credentials,
    EWSTimeZone,
    ExtendedProperty,
    FailFast,
    Message,
    Version,
)
from exchangelib.protocol import BaseProtocol

from ewsim.testing import SimHandle, ewsim, ewsim_server  # noqa: F401 (fixtures)

VERSION = Version(build=Build(15, 1, 2507, 6))
TZ = EWSTimeZone("Europe/Prague")


class CrmId(ExtendedProperty):
    property_set_id = "6e3b5f1a-4c8e-4f6b-9a53-2d0b8c1e7f10"
    property_name = "CrmId"
    property_type = "String"


class CleanGoid(ExtendedProperty):
    """PidLidCleanGlobalObjectId, which Exchange computes from a calendar item's UID."""

    distinguished_property_set_id = "Meeting"
    property_id = 0x23
    property_type = "Binary"


for _cls in (CalendarItem, Contact, Message):
    if "crm_id" not in {f.name for f in _cls.FIELDS}:
        _cls.register("crm_id", CrmId)
if "clean_goid" not in {f.name for f in CalendarItem.FIELDS}:
    CalendarItem.register("clean_goid", CleanGoid)

# Keep retries short in tests (notes §1.3).
BaseProtocol.RETRY_WAIT = 0.2


def make_account(sim: SimHandle, address: str | None = None, password: str | None = None,
                 retry_policy: object | None = None, max_connections: int = 1,
                 auth_type: str = BASIC, username: str | None = None,
                 access_type: str = DELEGATE, primary: str | None = None) -> Account:
    creds = Credentials(username or address or sim.user, password or sim.password)
    config = Configuration(service_endpoint=sim.url, credentials=creds, auth_type=auth_type,
                           version=VERSION, retry_policy=retry_policy or FailFast(),
                           max_connections=max_connections)
    return Account(primary or address or sim.user, config=config, autodiscover=False,
                   access_type=access_type, default_timezone=TZ, locale="en_US")


@pytest.fixture
def account(ewsim: SimHandle) -> Account:  # noqa: F811 (pytest fixture injection)
    return make_account(ewsim)
