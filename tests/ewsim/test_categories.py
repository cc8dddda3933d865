"""The master category list: EWS GetUserConfiguration "CategoryList" on the calendar folder
(schema-valid: the fixture validates every answer) and Graph's outlook/masterCategories,
both from one store, which the control plane sets."""

from __future__ import annotations

import pytest
from exchangelib import Account
from exchangelib import errors as ews_errors
from lxml import etree

from ewsim.categories import DEFAULTS, NAMESPACE
from ewsim.seed import JANA, JANA_CATEGORIES, seed_demo
from ewsim.testing import ControlError, SimHandle

from .graph.client import Graph

CHOSEN = [{"name": "Hotline", "color": "preset0"}, {"name": "Instalace", "color": 4},
          {"name": "Bez barvy", "color": "none"}]


def _categories_xml(account: Account) -> etree._Element:
    configuration = account.calendar.get_user_configuration("CategoryList", "XmlData")
    return etree.fromstring(configuration.xml_data)


def test_a_new_mailbox_has_exchange_onlines_six_colour_categories(
        ewsim: SimHandle, account: Account) -> None:
    root = _categories_xml(account)
    assert root.tag == f"{{{NAMESPACE}}}categories"
    found = [(c.get("name"), int(c.get("color"))) for c in root]
    assert found == list(DEFAULTS)
    assert all(c.get("renameOnFirstUse") == "1" and c.get("guid", "").startswith("{")
               for c in root)


def test_the_category_list_set_by_the_control_plane_is_what_ews_reads(
        ewsim: SimHandle, account: Account) -> None:
    ewsim.control.set_categories(ewsim.user, CHOSEN)
    root = _categories_xml(account)
    assert [(c.get("name"), c.get("color")) for c in root] == [
        ("Hotline", "0"), ("Instalace", "4"), ("Bez barvy", "-1")]
    assert ewsim.control.categories(ewsim.user) == [
        {"name": "Hotline", "color": "preset0"}, {"name": "Instalace", "color": "preset4"},
        {"name": "Bez barvy", "color": "none"}]


def test_all_properties_bring_the_configurations_id_and_name(
        ewsim: SimHandle, account: Account) -> None:
    configuration = account.calendar.get_user_configuration("CategoryList")
    assert configuration.id and configuration.changekey
    assert configuration.user_configuration_name.name == "CategoryList"
    assert configuration.xml_data
    # Every answer is checked against messages.xsd (the fixture fails the test at teardown
    # too); checked here as well, since schema validity is this operation's promise.
    assert ewsim.server.validate and ewsim.problems() == []


def test_a_mailbox_without_a_saved_list_and_other_configurations_are_not_found(
        ewsim: SimHandle, account: Account) -> None:
    with pytest.raises(ews_errors.ErrorItemNotFound):
        account.calendar.get_user_configuration("OWA.UserOptions")
    with pytest.raises(ews_errors.ErrorItemNotFound):
        account.inbox.get_user_configuration("CategoryList")
    ewsim.control.set_categories(ewsim.user, None)
    with pytest.raises(ews_errors.ErrorItemNotFound):
        account.calendar.get_user_configuration("CategoryList")
    assert ewsim.control.categories(ewsim.user) is None


def test_graph_serves_the_same_list_as_master_categories(ewsim: SimHandle) -> None:
    ewsim.control.set_categories(ewsim.user, CHOSEN)
    graph = Graph.connect(ewsim)
    answer = graph.get("outlook/masterCategories")
    assert answer.status == 200, answer.raw
    values = answer.json["value"]
    assert [(v["displayName"], v["color"]) for v in values] == [
        ("Hotline", "preset0"), ("Instalace", "preset4"), ("Bez barvy", "none")]
    one = graph.get(f"outlook/masterCategories/{values[0]['id']}")
    assert one.status == 200 and one.json["displayName"] == "Hotline"
    assert graph.get("outlook/masterCategories/no-such-id").status == 404
    ewsim.control.set_categories(ewsim.user, None)
    assert graph.get("outlook/masterCategories").json["value"] == []


def test_bad_lists_are_refused_by_the_control_plane(ewsim: SimHandle) -> None:
    for categories in ([{"name": "A"}, {"name": "a"}], [{"name": " "}],
                       [{"name": "A", "color": "preset25"}]):
        with pytest.raises(ControlError, match="400"):
            ewsim.control.set_categories(ewsim.user, categories)
    with pytest.raises(ControlError, match="404"):
        ewsim.control.set_categories("nobody@example.com", [])


def test_the_demo_seed_gives_jana_the_manuals_categories(ewsim: SimHandle) -> None:
    seed_demo(ewsim.server)
    assert ewsim.control.categories(JANA) == JANA_CATEGORIES
