"""XML namespaces and tiny element builders shared by every module."""

from __future__ import annotations

from typing import Any

from lxml import etree

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
NSMAP = {"s": S, "m": M, "t": T}

# huge_tree: attachments above 10 MB arrive as one base64 text node (notes §2, "Memory").
PARSER = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def tq(name: str) -> str:
    return f"{{{T}}}{name}"


def mq(name: str) -> str:
    return f"{{{M}}}{name}"


def local(el: Any) -> str:
    return etree.QName(el).localname


def t_el(name: str, text: str | None = None, **attrib: str) -> etree._Element:
    el = etree.Element(tq(name), attrib, nsmap={"t": T})
    if text is not None:
        el.text = text
    return el


def m_el(name: str, text: str | None = None, **attrib: str) -> etree._Element:
    el = etree.Element(mq(name), attrib, nsmap={"m": M, "t": T})
    if text is not None:
        el.text = text
    return el


def sub(parent: etree._Element, ns: str, name: str, text: str | None = None,
        **attrib: str) -> etree._Element:
    el = etree.SubElement(parent, q(ns, name), attrib)
    if text is not None:
        el.text = text
    return el


def bool_text(value: bool) -> str:
    # exchangelib parses only true/false (notes §0): never echo its 1/0.
    return "true" if value else "false"


def parse_bool(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "on")
