"""Configure a demo organization whose profiles point at ewsim's demo mailboxes (`--seed demo`),
and a second one, "Raynet demo", syncing another demo mailbox with raynetsim's demo instance
(profiles/demo_raynet.py).

Idempotent: a second run changes nothing and prints nothing secret. The users' passwords are
printed only when the users are created, like the first administrator's.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand
from django.db import transaction

from crm.models import ClassificationNode, Company, CrmUser, EventCategory, EventStatus, Person
from ewsim.seed import JANA, SERVICE, TOM, USERS
from profiles import demo_raynet
from profiles.models import (
    CategoryPairing,
    MailboxConnection,
    Membership,
    Organization,
    SyncProfile,
)

ORGANIZATION = "Demo s.r.o."
CONNECTION = "Demo mailbox (ewsim)"
PAIRINGS = {"HOTLINE": "Hotline", "INSTALACE": "Instalace", "REGISTRACE": "Registrace"}


class Command(BaseCommand):
    help = "Create the demo organization, its users, CRM data and profiles for ewsim's demo."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--ews-url", default="http://127.0.0.1:8765/EWS/Exchange.asmx")
        parser.add_argument("--raynet-url", default=demo_raynet.api_url(),
                            help="raynetsim's API, for the Raynet demo organization")
        parser.add_argument(
            "--share", metavar="FOLDER", default=None,
            help="approve this folder (inside ATTACHMENT_ROOTS) as the demo organization's "
                 "attachment root, and save the demo profiles' attachments below it")

    def handle(self, *args: Any, ews_url: str, raynet_url: str, share: str | None,
               **options: Any) -> None:
        self._builtin_demo(ews_url, share)
        said, logins = demo_raynet.set_up(ews_url, raynet_url)
        if not logins:
            self.stdout.write(said)
            return
        lines = "\n".join(f"    {login:<6} {password}" for login, password in logins.items())
        self.stdout.write(self.style.SUCCESS(
            f"\n  {said} User (shown only now):\n{lines}\n"))

    def _builtin_demo(self, ews_url: str, share: str | None) -> None:
        with transaction.atomic():
            organization, created = Organization.objects.get_or_create(name=ORGANIZATION)
            if not created:
                self.stdout.write(f"The demo organization {ORGANIZATION!r} exists already.")
                if share:
                    # A demo set up before it had a share gets one; roots already set stay.
                    self.stdout.write(f"  {self._demo_share(organization, share)}")
                return
            logins = self._configure(organization, ews_url)
            attachments = (self._demo_share(organization, share) if share
                           else self._server_roots(organization))
        lines = "\n".join(f"    {login:<6} {password}" for login, password in logins.items())
        self.stdout.write(self.style.SUCCESS(
            f"\n  Demo organization {ORGANIZATION!r} created; its profiles use the demo mailbox"
            f"\n  at {ews_url}. Users (shown only now):\n{lines}\n  {attachments}\n"))

    def _demo_share(self, organization: Organization, share: str) -> str:
        """The demo's own folder as its attachment root, and each demo profile saving its
        attachments in a folder of its own below it (`make run`: Save attachments works out
        of the box). Roots or directories an administrator has set are left alone."""
        folder = Path(share).resolve()
        if not organization.attachment_roots:
            organization.attachment_roots = str(folder)
            try:
                organization.full_clean()
            except ValidationError as exc:
                return ("The demo share was not approved: "
                        + " ".join(exc.message_dict.get("attachment_roots", exc.messages)))
            organization.save(update_fields=["attachment_roots"])
        if str(folder) not in organization.approved_attachment_roots():
            return (f"The demo organization keeps its attachment roots "
                    f"({', '.join(organization.attachment_root_list())}).")
        folder.mkdir(parents=True, exist_ok=True)
        for profile in SyncProfile.objects.filter(organization=organization,
                                                  mailsettings__attachment_directory=""):
            mail = profile.mailsettings
            directory = folder / profile.user.username
            directory.mkdir(exist_ok=True)   # so the "…" picker opens there
            mail.attachment_directory = str(directory)
            mail.save_attachments = True
            mail.full_clean()
            mail.save(update_fields=["attachment_directory", "save_attachments"])
        return f"Attachments of the demo mailboxes are saved below {folder}."

    def _server_roots(self, organization: Organization) -> str:
        """Alone on the server, the demo may save attachments where the server may; beside
        other organizations it takes none of their folders."""
        roots = [root for root in settings.ATTACHMENT_ROOTS if root]
        if roots and not Organization.objects.exclude(pk=organization.pk).exists():
            organization.attachment_roots = "\n".join(roots)
            organization.full_clean()
            organization.save(update_fields=["attachment_roots"])
            return f"Attachments may be saved below {', '.join(roots)}."
        return ("No attachment roots: a superuser sets the demo organization's attachment "
                "roots in the admin before its profiles can save attachments.")

    def _configure(self, organization: Organization, ews_url: str) -> dict[str, str]:
        connection = MailboxConnection(
            organization=organization, name=CONNECTION, kind=MailboxConnection.Kind.EWS,
            ews_url=ews_url, auth_type=MailboxConnection.Auth.NTLM,
            access=MailboxConnection.Access.IMPERSONATION, username=SERVICE)
        connection.set_secret(USERS[SERVICE][0])
        connection.full_clean()
        connection.save()

        categories = {name: EventCategory.objects.create(organization=organization, name=name)
                      for name in PAIRINGS}
        incoming = EventStatus.objects.create(organization=organization, name="Příchozí")
        EventStatus.objects.create(organization=organization, name="Odchozí")
        customers = ClassificationNode.objects.create(organization=organization,
                                                      name="Zákazníci")
        moravia = ClassificationNode.objects.create(organization=organization, name="Morava",
                                                    parent=customers)

        logins: dict[str, str] = {}
        crm_users: dict[str, CrmUser] = {}
        for address in (JANA, TOM):
            _, display_name, login = USERS[address]
            password = secrets.token_urlsafe(9)
            user = get_user_model().objects.create_user(
                username=login, email=address, password=password,
                first_name=display_name.split()[0], last_name=display_name.split()[-1])
            Membership.objects.create(user=user, organization=organization,
                                      role=Membership.Role.USER)
            crm_user = crm_users[address] = CrmUser.objects.create(
                organization=organization, name=display_name, login=login, email=address)
            profile = SyncProfile.objects.create(
                organization=organization, user=user, mailbox=address, crm_user=crm_user,
                connection=connection, import_mail=True)
            calendar = profile.calendarsettings
            calendar.default_category = categories["HOTLINE"]
            calendar.imported_status = incoming
            calendar.save()
            for crm_name, exchange_name in PAIRINGS.items():
                CategoryPairing.objects.create(profile=profile, crm_category=categories[crm_name],
                                               exchange_category=exchange_name)
            logins[login] = password
        self._crm_persons(organization, customers, moravia, crm_users)
        return logins

    def _crm_persons(self, organization: Organization, customers: ClassificationNode,
                     moravia: ClassificationNode, crm_users: dict[str, CrmUser]) -> None:
        # Some persons also exist as demo contacts (the same e-mail: the first sync links them),
        # one differs only in spelling (a duplicates-report candidate), one is CRM-only.
        # They are Jana's customers: each profile holds its CRM user's persons, so they stay
        # out of Tom's mailbox — all but Eva, whom Tom knows too (assigned to him as well).
        stavby = Company.find_or_create_by_name(organization.id, "Stavby Brno s.r.o.")
        acme = Company.find_or_create_by_name(organization.id, "ACME s.r.o.")
        rows = [
            (dict(first_name="Petr", last_name="Svoboda", email1="petr.svoboda@stavby-brno.cz",
                  job_title="Jednatel", business_city="Brno"), stavby, moravia),
            (dict(first_name="Eva", last_name="Procházková", email1="eva.prochazkova@acme.cz",
                  phone_business="+420 222 333 444"), acme, customers),
            (dict(first_name="Tomas", last_name="Vesely", email1="tomas.vesely@acme.cz"),
             acme, customers),
            (dict(first_name="Radek", last_name="Kučera", email1="radek.kucera@kucera-it.cz",
                  job_title="Konzultant", phone_mobile="+420 720 111 333"), None, customers),
        ]
        for fields, company, node in rows:
            person = Person.objects.create(organization=organization, owner=crm_users[JANA],
                                           **fields)
            if company is not None:
                person.companies.add(company)
            person.classification_nodes.add(node)
            if person.email1 == "eva.prochazkova@acme.cz":
                person.assigned_users.add(crm_users[TOM])
