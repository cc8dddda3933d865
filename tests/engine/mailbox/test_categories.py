"""Reading the master category list: what each backend says when it cannot, over HTTP against
ewsim (the list itself is in the contract, tests/engine/mailbox/contract.py), and the
CategoryList stream as Exchange stores it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import override_settings

from engine.mailbox.base import (
    AuthenticationFailed,
    Category,
    MailboxBackend,
    MailboxError,
    NetworkRefused,
)
from engine.mailbox.category_list import CategoryListUnreadable, parse, preset
from engine.mailbox.ews import EwsMailbox
from engine.mailbox.graph import GraphMailbox
from ewsim.testing import SimHandle
from tests.engine.conftest import access_to
from tests.engine.mailbox.graph_access import graph_access

Opener = Callable[..., MailboxBackend]


def _ews(sim: SimHandle, **overrides: object) -> MailboxBackend:
    return EwsMailbox(access_to(sim, **overrides))


def _graph(sim: SimHandle, **overrides: object) -> MailboxBackend:
    return GraphMailbox(graph_access(sim, **overrides))


BACKENDS = pytest.mark.parametrize("open_backend", [_ews, _graph], ids=["ews", "graph"])


@BACKENDS
def test_a_refused_sign_in_is_an_authentication_failure(ewsim: SimHandle,
                                                       open_backend: Opener) -> None:
    with open_backend(ewsim, secret="wrong") as backend, pytest.raises(AuthenticationFailed):
        backend.categories()


@BACKENDS
def test_the_outbound_policy_applies_and_nothing_is_sent(ewsim: SimHandle,
                                                        open_backend: Opener) -> None:
    ewsim.control.reset_counters()
    with override_settings(MAILBOX_ALLOWED_NETWORKS=[]), open_backend(ewsim) as backend, \
            pytest.raises(NetworkRefused):
        backend.categories()
    assert sum(ewsim.control.counters().values()) == 0
    assert not ewsim.control.graph_stats().get("requests")


def test_an_ews_error_is_named_by_its_response_code(ewsim: SimHandle) -> None:
    ewsim.control.fault("response_error", operation="GetUserConfiguration",
                        response_code="ErrorAccessDenied")
    with _ews(ewsim) as backend, pytest.raises(MailboxError, match="ErrorAccessDenied"):
        backend.categories()


def test_graph_without_mailbox_settings_read_says_which_permission_is_missing(
        ewsim: SimHandle) -> None:
    ewsim.control.fault("response_error", operation="outlook.masterCategories", status=403,
                        response_code="ErrorAccessDenied")
    with _graph(ewsim) as backend, pytest.raises(MailboxError,
                                                  match=r"MailboxSettings\.Read") as raised:
        backend.categories()
    assert "Access is denied" not in raised.value.message


def test_the_ews_backend_asks_once_for_the_xml_data_alone(ewsim: SimHandle) -> None:
    with _ews(ewsim) as backend:
        backend.account.version   # noqa: B018 (the version guess is not what is counted)
        ewsim.control.reset_counters()
        assert [c.name for c in backend.categories()][:2] == ["Blue category",
                                                              "Green category"]
    assert ewsim.control.counters() == {"GetUserConfiguration": 1}


# --- the stream ---------------------------------------------------------------------------------
LIST = (b'<?xml version="1.0"?><categories default="Hotline" xmlns="CategoryList.xsd">'
        b'<category name="Hotline" color="0" guid="{A}"/>'
        b'<category name="registrace" color="7"/><category name="Registrace" color="3"/>'
        b'<category name="  " color="1"/><category name="Divn\xc3\xa1" color="99"/>'
        b'<!-- Outlook writes none --><category name="Bez" color="-1"/></categories>')


def test_the_stream_gives_names_and_presets_sorted_without_blanks_or_case_duplicates() -> None:
    assert parse(LIST) == [Category("Bez", "none"), Category("Divná", "none"),
                           Category("Hotline", "preset0"), Category("registrace", "preset7")]


@pytest.mark.parametrize("data", [b"", b"<categories", b"<settings/>",
                                  b"<categories><category name=\"x\"/></categories>"])
def test_what_is_no_category_list_is_refused(data: bytes) -> None:
    with pytest.raises(CategoryListUnreadable):
        parse(data)


def test_a_document_type_declaration_is_refused_before_any_entity_is_expanded() -> None:
    data = (b'<!DOCTYPE c [<!ENTITY x "EXPANDED">]><categories xmlns="CategoryList.xsd">'
            b'<category name="a&x;" color="1"/></categories>')
    with pytest.raises(CategoryListUnreadable):
        parse(data)


@pytest.mark.parametrize(("color", "expected"), [("0", "preset0"), ("24", "preset24"),
                                                 ("-1", "none"), ("25", "none"),
                                                 (None, "none"), ("x", "none")])
def test_colour_numbers_become_graphs_preset_names(color: str | None, expected: str) -> None:
    assert preset(color) == expected
