"""E-mail import into Raynet end to end: mail delivered into ewsim, imported through the
product's entry point by a profile whose organization's CRM connection is Raynet (over
raynetsim, every request and answer validated against Raynet's specification), filed as
e-mail activities with their participants and attachments."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from engine.crmstore.base import EmailMatch, SavedDocument
from engine.crmstore.raynet_client import RaynetClient
from engine.models import Retry, Run, RunItem
from engine.records import Address, ContactRecord, Kind, MessageRecord
from ewsim.testing import SimHandle
from profiles.models import SyncProfile
from raynetsim.testing import RaynetHandle, raynetsim, raynetsim_server  # noqa: F401
from tests.engine.raynet_helpers import on_raynet, raynet_of
from tests.engine.sync_helpers import make_profile
from tests.mailimport.conftest import give_roots, import_mail, mime, settings_for

pytestmark = pytest.mark.django_db(transaction=True)

OFFER = b"%PDF-1.4 nabidka " + bytes(range(256)) * 40     # binary, some 10 kB
PRICES = b"PK\x03\x04 cenik"
SENT = dt.datetime(2026, 11, 3, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def profile(ewsim: SimHandle, raynetsim: RaynetHandle, share: Path  # noqa: F811
            ) -> SyncProfile:
    """Alice's profile, her organization on raynetsim (her CRM user's login is her Raynet
    user's e-mail), saving attachments on the share."""
    profile = on_raynet(make_profile(ewsim), raynetsim)
    give_roots(profile, share)
    settings_for(profile, save_attachments=True, attachment_directory=str(share))
    return profile


def known_persons(sim: RaynetHandle) -> dict[str, str]:
    """Petr of Stavby s.r.o. and Eva (no company), as someone entered them in Raynet."""
    crm = raynet_of(sim)
    keys = {}
    for record in (ContactRecord(first_name="Petr", last_name="Svoboda",
                                 email1="Petr@Stavby.cz", company="Stavby s.r.o."),
                   ContactRecord(first_name="Eva", last_name="Nová", email1="eva@acme.cz")):
        written = crm.create(Kind.CONTACTS, record, "")
        assert written.ok, written
        keys[record.first_name] = written.key
    keys["Stavby"] = crm.find_or_create_company("Stavby s.r.o.")
    return keys


def emails(sim: RaynetHandle) -> dict[str, dict[str, Any]]:
    """Raynet's e-mail activities by title, each in detail."""
    client = RaynetClient(sim.url, sim.instance, sim.user, sim.api_key)
    return {row["title"]: client.get(f"email/{row['id']}/", dateFormat="ISO8601")["data"]
            for row in client.pages("email", {})}


def participants(email: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {(p["person"], p["company"], p["role"], p["owner"]) for p in email["participants"]}


def uploaded(sim: RaynetHandle, name: str) -> list[bytes]:
    """The contents Raynet received for files of that name."""
    instance = sim.server.store.instances[sim.instance]
    return [u["content"] for u in instance.uploads.values() if u["fileName"] == name]


def test_mail_is_filed_as_e_mail_activities_with_participants_and_attachments(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile) -> None:  # noqa: F811
    keys = known_persons(raynetsim)
    ewsim.control.deliver(ewsim.user, mime=mime(
        "Nabídka", sender="Petr Svoboda <petr@stavby.cz>", to="alice@example.com, eva@acme.cz",
        message_id="<a1@stavby.cz>", body="Dobrý den,\nposílám nabídku.\n",
        attachments=(("nabídka 2026.pdf", OFFER), ("ceník.xlsx", PRICES))))
    ewsim.control.deliver(ewsim.user, mime=mime("Nobody", sender="x@unknown.example"))
    run = import_mail(profile)
    assert run.status == Run.Status.SUCCESS, (run.message, list(run.items.values("detail")))
    assert run.crm_created == 2

    filed = emails(raynetsim)
    assert set(filed) == {"Nabídka", "Nobody"}
    offer = filed["Nabídka"]
    alice, petr, eva, stavby = (raynetsim.user_person_id, int(keys["Petr"]), int(keys["Eva"]),
                                int(keys["Stavby"]))
    assert offer["owner"]["id"] == alice
    assert participants(offer) == {(alice, None, "FROM", True), (petr, None, "FROM", False),
                                   (eva, None, "TO", False), (None, stavby, None, False)}
    assert offer["description"] == "Dobrý den,<br>\nposílám nabídku.<br>\n"
    assert offer["status"] == "COMPLETED"
    assert offer["scheduledFrom"] == offer["scheduledTill"] == offer["completed"]
    assert offer["extIds"][0].startswith("exchange:")
    # Each attachment uploaded whole, under the name the e-mail import gave it.
    assert sorted(a["file"]["fileName"] for a in offer["attachments"]) \
        == ["ceník.xlsx", "nabídka 2026.pdf"]
    assert uploaded(raynetsim, "nabídka 2026.pdf") == [OFFER]
    assert uploaded(raynetsim, "ceník.xlsx") == [PRICES]
    assert participants(filed["Nobody"]) == {(alice, None, "FROM", True)}
    # The history links to the e-mail's page in Raynet.
    item = run.items.get(title="Nabídka")
    assert item.action == RunItem.Action.CREATE_CRM and item.crm_key == str(offer["id"])
    assert raynet_of(raynetsim).record_url(Kind.MAIL, item.crm_key).endswith(
        f"/{raynetsim.instance}/?view=DetailView&en=Email&ei={offer['id']}")

    # Run again, and once more after the message was read: nothing is filed twice.
    assert import_mail(profile).items.count() == 0
    creates = raynetsim.control.counters().get("PUT /email/", 0)
    uploads = raynetsim.control.counters().get("POST /fileUpload", 0)
    assert (creates, uploads) == (2, 2)
    assert set(emails(raynetsim)) == {"Nabídka", "Nobody"}


def test_a_failed_upload_is_an_error_of_its_e_mail_and_tried_again_next_run(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile) -> None:  # noqa: F811
    known_persons(raynetsim)
    ewsim.control.deliver(ewsim.user, mime=mime("Nabídka", message_id="<a1@stavby.cz>",
                                           attachments=(("nabidka.pdf", OFFER),)))
    ewsim.control.deliver(ewsim.user, mime=mime("Dotaz", sender="eva@acme.cz",
                                           message_id="<q1@acme.cz>"))
    raynetsim.control.fault("http_500", path="POST /api/v2/fileUpload", count=-1)
    run = import_mail(profile)
    assert run.status == Run.Status.PARTIAL, run.message
    failed = run.items.get(title="Nabídka")
    assert failed.action == RunItem.Action.ERROR
    assert "nabidka.pdf not attached in Raynet: Raynet answered 500" in failed.detail
    assert failed.detail.endswith("(tried again next run)")
    assert run.items.get(title="Dotaz").action == RunItem.Action.CREATE_CRM
    assert Retry.objects.filter(profile=profile, key=failed.remote_id).exists()
    filed = emails(raynetsim)
    assert filed["Nabídka"]["attachments"] == []

    raynetsim.control.clear_faults()
    again = import_mail(profile)
    assert again.status == Run.Status.SUCCESS, (again.message,
                                                list(again.items.values("detail")))
    retried = again.items.get(title="Nabídka")
    assert retried.action == RunItem.Action.UPDATE_CRM, retried.detail
    assert retried.crm_key == failed.crm_key == str(filed["Nabídka"]["id"])
    filed = emails(raynetsim)
    assert set(filed) == {"Nabídka", "Dotaz"}       # one e-mail each, none twice
    assert [a["file"]["fileName"] for a in filed["Nabídka"]["attachments"]] == ["nabidka.pdf"]
    assert not Retry.objects.filter(profile=profile).exists()
    assert import_mail(profile).items.count() == 0


def test_an_e_mail_cut_off_before_its_linking_is_linked_next_run_not_filed_twice(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile) -> None:  # noqa: F811
    keys = known_persons(raynetsim)
    ewsim.control.deliver(ewsim.user, mime=mime("Nabídka", message_id="<a1@stavby.cz>"))
    # The e-mail is made, then every edit of it fails (sent three times).
    raynetsim.control.fault("http_500", path="POST /api/v2/email/[0-9]+/", count=3)
    run = import_mail(profile)
    item = run.items.get()
    assert item.action == RunItem.Action.ERROR
    assert "Raynet refused the e-mail: Raynet answered 500" in item.detail
    assert emails(raynetsim)["Nabídka"]["status"] != "COMPLETED"

    again = import_mail(profile)
    assert again.status == Run.Status.SUCCESS, again.message
    filed = emails(raynetsim)
    assert list(filed) == ["Nabídka"]
    assert filed["Nabídka"]["status"] == "COMPLETED"
    assert int(keys["Petr"]) in {p["person"] for p in filed["Nabídka"]["participants"]}
    assert raynetsim.control.counters().get("PUT /email/", 0) == 1


# --- the backend's own cases, without a mailbox ----------------------------------------------
def message(subject: str) -> MessageRecord:
    return MessageRecord(message_id="<a1@stavby.cz>", subject=subject,
                         sender=Address("petr@stavby.cz", "Petr Svoboda"),
                         to=(Address("alice@example.com"),), sent=SENT, received=SENT,
                         body_text="Dobrý den")


def test_a_message_id_first_used_meanwhile_by_another_message_is_filed_apart(
        raynetsim: RaynetHandle) -> None:  # noqa: F811
    crm, user = raynet_of(raynetsim), str(raynetsim.user_person_id)
    # Both were looked up before either was filed: neither saw a collision.
    first = crm.file_email(message("Nabídka"), "item-1", EmailMatch(), user, [], [])
    second = crm.file_email(message("Jiná"), "item-2", EmailMatch(), user, [], [])
    assert first.created and second.created and first.key != second.key, second
    assert crm.find_email(message("Jiná"), "item-3", user) == EmailMatch(second.key, mine=True)
    assert crm.find_email(message("Další"), "item-3", user) == EmailMatch(collided=first.key)
    # The first item again, its subject edited since: another message, of the same item.
    edited = message("Nabídka, opravená")
    third = crm.file_email(edited, "item-1", crm.find_email(edited, "item-1", user), user,
                           [], [])
    assert third.created and not third.error and third.key not in (first.key, second.key)
    assert crm.find_email(edited, "item-4", user) == EmailMatch(third.key, mine=True)


def test_a_document_whose_file_left_the_share_is_an_error_and_the_others_are_attached(
        raynetsim: RaynetHandle, tmp_path: Path) -> None:  # noqa: F811
    crm, user = raynet_of(raynetsim), str(raynetsim.user_person_id)
    (tmp_path / "cenik.xlsx").write_bytes(PRICES)
    documents = [SavedDocument(str(tmp_path), name, name, 10, "ab" * 32, "Příloha")
                 for name in ("nabidka.pdf", "cenik.xlsx")]
    filing = crm.file_email(message("Nabídka"), "item-1", EmailMatch(), user, [], documents)
    assert filing.created and filing.key
    assert filing.error == "nabidka.pdf not attached in Raynet: its saved file is no longer " \
        "on the share"
    assert crm.email_documents(filing.key) == ["cenik.xlsx"]


def test_an_item_id_with_slashes_and_pluses_is_found_again(raynetsim: RaynetHandle  # noqa: F811
                                                           ) -> None:
    crm, user = raynet_of(raynetsim), str(raynetsim.user_person_id)
    origin = "AAMkAGI2/TG93+AAA=="      # Exchange's ids are base64: "/" and "+" among them
    bare = MessageRecord(subject="Bez Message-ID", sender=Address("petr@stavby.cz"),
                         sent=SENT, received=SENT)
    filing = crm.file_email(bare, origin, EmailMatch(), user, [], [])
    assert filing.created and not filing.error, filing
    assert crm.find_email(bare, origin, user) == EmailMatch(filing.key, mine=True)
    assert crm.filed_emails(user, [origin, "AAMkAGI2"])[origin].key == filing.key


def test_persons_are_found_by_address_with_few_requests(raynetsim: RaynetHandle  # noqa: F811
                                                        ) -> None:
    crm = raynet_of(raynetsim)
    keys = known_persons(raynetsim)
    many = [f"nobody{i}@example.com" for i in range(30)]
    before = raynetsim.control.counters().get("GET /person/", 0)
    # Many at once (a first contacts sync): every person listed once.
    found = crm.find_by_email(["PETR@stavby.cz", *many])
    assert found["petr@stavby.cz"] == [keys["Petr"]] and found[many[0]] == []
    assert crm.find_by_email(["eva@acme.cz"]) == {"eva@acme.cz": [keys["Eva"]]}
    assert raynetsim.control.counters()["GET /person/"] - before == 1
    # A person written meanwhile is found: a few addresses, two requests each.
    written = crm.create(Kind.CONTACTS, ContactRecord(last_name="Nový",
                                                      email2="n_vy@acme.cz"), "")
    before = raynetsim.control.counters()["GET /person/"]
    # "_" is a LIKE wildcard: "nxvy@" matches no one although the filter may say so.
    assert crm.find_by_email(["N_vy@acme.cz", "nxvy@acme.cz"]) == {
        "n_vy@acme.cz": [written.key], "nxvy@acme.cz": []}
    assert raynetsim.control.counters()["GET /person/"] - before == 4
