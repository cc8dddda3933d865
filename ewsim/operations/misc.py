"""Protocol-level services: ConvertId (version guess) and GetServerTimeZones."""

from __future__ import annotations

from lxml import etree

from ..context import Context
from ..ns import M, T, sub
from ..recurrence import WIN_TO_IANA
from ..soap import error, response_root, success
from . import operation


@operation("ConvertId")
def convert_id(ctx: Context, req: etree._Element) -> etree._Element:
    # exchangelib's version guess sends Mailbox="DUMMY"; real servers answer this error,
    # and any valid ServerVersionInfo header is what it actually reads (notes §3.3).
    root, msgs = response_root("ConvertId")
    for _ in req.iter(f"{{{T}}}AlternateId"):
        error(msgs, "ConvertId", "ErrorInvalidSmtpAddress")
    return root


@operation("GetServerTimeZones")
def get_server_time_zones(ctx: Context, req: etree._Element) -> etree._Element:
    root, msgs = response_root("GetServerTimeZones")
    msg = success(msgs, "GetServerTimeZones")
    defs = sub(msg, M, "TimeZoneDefinitions")
    wanted = {i.text for i in req.iter(f"{{{T}}}Id")}
    for ms_id in sorted(WIN_TO_IANA):
        if wanted and ms_id not in wanted:
            continue
        sub(defs, T, "TimeZoneDefinition", Id=ms_id, Name=ms_id)
    return root
