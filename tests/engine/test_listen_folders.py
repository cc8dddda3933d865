"""The listener watches the folders (and through the connection) a profile has now, not those
it had when the listener started.

Against ewsim over HTTP: which folders are watched comes from ewsim's notification hub (the
folders of the subscriptions an open GetStreamingEvents holds)."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User

from crm.models import CrmUser
from ewsim.testing import SimHandle
from profiles.models import ContactSettings, MailboxConnection, Organization, SyncProfile

from .listen_helpers import new_contact, queued_for, streamed, streamed_folders, until
from .sync_helpers import make_profile

pytestmark = pytest.mark.django_db(transaction=True)

# Longer than any test here: the listener must notice the change by itself, not at a refresh,
# nor because Exchange closed the stream (after `minutes` of ewsim's 2-second minutes).
NO_REFRESH, STREAM_MINUTES = 600.0, 30


def _crm_folder(sim: SimHandle) -> str:
    return sim.control.call("POST", "folders", {
        "mailbox": sim.user, "parent": "contacts", "name": "CRM",
        "folder_class": "IPF.Contact"})["id"]


def _contacts(sim: SimHandle) -> str:
    """The id of the mailbox's default Contacts folder, as ewsim knows it."""
    return sim.server.store.folder_by_distinguished(sim.user, "contacts").id


def _choose(profile: SyncProfile, folder_id: str, path: str) -> None:
    """What saving the folder picker's choice does: the agenda's settings row alone."""
    settings = ContactSettings.objects.get(profile=profile)
    settings.folder_id, settings.folder_path = folder_id, path
    settings.save()


def test_a_folder_chosen_while_listening_is_watched_within_seconds(ewsim: SimHandle,
                                                                   listen) -> None:  # type: ignore[no-untyped-def]
    profile = make_profile(ewsim)
    crm = _crm_folder(ewsim)
    # Keep-alives every second: the stream reopens at the next one.
    _, queued = listen(minute_seconds=2.0, refresh=NO_REFRESH, minutes=STREAM_MINUTES)
    until(lambda: streamed_folders(ewsim, ewsim.user) != set(), "the default folder streamed")
    default = streamed_folders(ewsim, ewsim.user)   # Contacts and Calendar
    assert _contacts(ewsim) in default and crm not in default
    wanted = default - {_contacts(ewsim)} | {crm}

    chosen = time.monotonic()
    _choose(profile, crm, "Contacts/CRM")
    until(lambda: streamed_folders(ewsim, ewsim.user) == wanted, "the chosen folder streamed")
    # Edits made in it before its subscription existed were never notified: one sync
    # catches them up.
    until(lambda: queued_for(queued, profile), "a catching-up sync of the chosen folder")
    assert time.monotonic() - chosen < 5
    queued.clear()

    new_contact(ewsim, ewsim.user, folder=crm)
    until(lambda: queued_for(queued, profile), "a sync after an edit in the chosen folder",
          limit=3.0)
    queued.clear()
    new_contact(ewsim, ewsim.user, folder="contacts")   # the old default folder
    time.sleep(1.5)
    assert queued == []


def test_a_folder_changed_behind_the_stamps_is_watched_at_the_next_refresh(
        ewsim: SimHandle, listen) -> None:  # type: ignore[no-untyped-def]
    # A queryset update moves no stamp: the full refresh compares the folders themselves.
    profile = make_profile(ewsim)
    crm = _crm_folder(ewsim)
    listen(minute_seconds=2.0, refresh=0.5, minutes=STREAM_MINUTES)
    until(lambda: _contacts(ewsim) in streamed_folders(ewsim, ewsim.user),
          "the default folder streamed")
    ContactSettings.objects.filter(profile=profile).update(folder_id=crm,
                                                           folder_path="Contacts/CRM")
    until(lambda: crm in streamed_folders(ewsim, ewsim.user)
          and _contacts(ewsim) not in streamed_folders(ewsim, ewsim.user),
          "the chosen folder streamed")


def test_a_save_that_changes_nothing_watched_keeps_the_stream(ewsim: SimHandle,
                                                              listen) -> None:  # type: ignore[no-untyped-def]
    # Each reopening leaves a moment in which an event may go to the closing connection.
    profile = make_profile(ewsim)
    listen(minute_seconds=2.0, refresh=NO_REFRESH, minutes=STREAM_MINUTES)
    until(lambda: ewsim.user in streamed(ewsim), "the profile streamed")
    before = streamed(ewsim)
    profile.interval_minutes = 30
    profile.save()
    time.sleep(2.0)   # two keep-alives: a reopening would have happened by now
    assert streamed(ewsim) == before
    assert ewsim.control.counters()["GetStreamingEvents"] == 1


def test_a_profile_whose_connection_turns_from_graph_to_ews_is_watched(
        ewsim: SimHandle, listen) -> None:  # type: ignore[no-untyped-def]
    # Signing in as itself, the profile is a group of its own either way: the group must
    # notice that its backend changed (Graph cannot watch, EWS can).
    organization = Organization.objects.create(name="Acme")
    connection = MailboxConnection.objects.create(
        organization=organization, name="per user", kind=MailboxConnection.Kind.GRAPH,
        ews_url=ewsim.url, auth_type="basic", access=MailboxConnection.Access.PER_USER)
    user = User.objects.create_user("alice", ewsim.user, "pw")
    profile = SyncProfile(organization=organization, user=user, mailbox=ewsim.user,
                          connection=connection, mailbox_username=ewsim.user,
                          crm_user=CrmUser.objects.create(organization=organization,
                                                          name="Alice", login="alice"))
    profile.set_mailbox_secret(ewsim.password)
    profile.save()
    _, queued = listen(minute_seconds=2.0, refresh=NO_REFRESH, minutes=STREAM_MINUTES)
    time.sleep(1.0)   # the Graph group finds out it cannot watch
    assert streamed(ewsim) == {}

    connection.kind = MailboxConnection.Kind.EWS
    connection.save()
    profile = SyncProfile.objects.get(pk=profile.pk)   # its password went with the endpoint
    profile.set_mailbox_secret(ewsim.password)
    profile.save()
    until(lambda: ewsim.user in streamed(ewsim), "the profile streamed over EWS")
    new_contact(ewsim, ewsim.user)
    until(lambda: queued_for(queued, profile), "a contacts sync", limit=3.0)


def test_saving_an_agenda_s_settings_moves_its_profile_s_stamp(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    before = SyncProfile.objects.get(pk=profile.pk).updated
    time.sleep(0.01)
    _choose(profile, "contacts", "Contacts")
    assert SyncProfile.objects.get(pk=profile.pk).updated > before
