"""The built-in CRM store, modelled on CONTACT Professional.

Persons, companies and events are tracked (`crm.tracking`): the sync engine reads what changed
since a revision, deletions included. Every record belongs to one organization.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.db.models.functions import Upper
from django.utils.translation import gettext_lazy as _

from crm.tracking import (
    Change,
    RevisionCounter,
    TrackedModel,
    TrackedQuerySet,
    bump,
)

__all__ = [
    "Change", "ClassificationNode", "Company", "CrmUser", "Document", "DocumentCategory",
    "Email", "Event", "EventCategory", "EventStatus", "Person", "PersonCompany",
    "RevisionCounter",
]

_SPACES = re.compile(r"\s+")


def company_name_key(name: str) -> str:
    """"ACME s.r.o." and " Acme  s.r.o." are one company: compare without case or extra spaces."""
    return _SPACES.sub(" ", name).strip().casefold()


class OrganizationOwned(models.Model):
    organization_path = "organization"

    organization = models.ForeignKey(
        "profiles.Organization", on_delete=models.CASCADE, related_name="+",
        verbose_name=_("organization"),
    )

    class Meta:
        abstract = True


class NamedPerOrganization(OrganizationOwned):
    name = models.CharField(_("name"), max_length=100)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CrmUser(OrganizationOwned):
    """A user of the CRM: owns events; a sync profile says whose mailbox is whose."""

    name = models.CharField(_("name"), max_length=200)
    login = models.CharField(_("login"), max_length=150)
    email = models.EmailField(_("e-mail"), blank=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("CRM user")
        verbose_name_plural = _("CRM users")
        constraints = [
            models.UniqueConstraint(fields=["organization", "login"],
                                    name="unique_crm_login_per_organization")
        ]

    def __str__(self) -> str:
        return self.name


class Company(TrackedModel, OrganizationOwned):
    change_kind = Change.Kind.COMPANY

    name = models.CharField(_("name"), max_length=255)
    name_key = models.CharField(max_length=255, editable=False)
    web_page = models.CharField(_("web page"), max_length=255, blank=True)
    phone = models.CharField(_("phone"), max_length=64, blank=True)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("company")
        verbose_name_plural = _("companies")
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name_key"], name="unique_company_per_organization",
                violation_error_message=_("A company of this name exists already."),
            )
        ]
        indexes = [models.Index(fields=["organization", "revision"])]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.name_key = company_name_key(self.name)
        with transaction.atomic():
            renamed = self.pk is not None and not Company._base_manager.filter(
                pk=self.pk, name=self.name
            ).exists()
            super().save(*args, **kwargs)
            if renamed:
                # A person's synced "company" field is this name: its persons changed too.
                bump(Person, self.persons.values_list("pk", flat=True))

    def clean(self) -> None:
        self.name_key = company_name_key(self.name)
        if not self.name_key:
            raise ValidationError({"name": _("A company needs a name.")})

    @classmethod
    def find_or_create_by_name(cls, organization_id: int, name: str) -> Company:
        key = company_name_key(name)
        if not key:
            raise ValueError("a company needs a name")
        existing = cls.objects.filter(organization_id=organization_id, name_key=key).first()
        if existing is not None:
            return existing
        try:
            with transaction.atomic():
                return cls.objects.create(organization_id=organization_id, name=name.strip())
        except Exception:
            # Created meanwhile by another writer (unique name_key): take that one.
            found = cls.objects.filter(organization_id=organization_id, name_key=key).first()
            if found is None:
                raise
            return found


class ClassificationNode(OrganizationOwned):
    """A node of the classification tree; a profile's contact scope is a branch of it."""

    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children",
        verbose_name=_("parent"),
    )
    name = models.CharField(_("name"), max_length=200)

    class Meta:
        ordering = ["name"]
        verbose_name = _("classification node")
        verbose_name_plural = _("classification tree")
        constraints = [
            models.UniqueConstraint(fields=["organization", "parent", "name"],
                                    name="unique_node_name_under_parent"),
        ]

    def __str__(self) -> str:
        return " / ".join(node.name for node in self.ancestry())

    def ancestry(self) -> list[ClassificationNode]:
        """From the root down to this node."""
        chain: list[ClassificationNode] = []
        node: ClassificationNode | None = self
        seen: set[int | None] = set()
        while node is not None and node.pk not in seen:
            seen.add(node.pk)
            chain.append(node)
            node = node.parent
        return list(reversed(chain))

    def branch_ids(self) -> set[int]:
        """This node and every node below it, one query per level."""
        ids = {self.pk}
        level = {self.pk}
        while level:
            level = set(
                ClassificationNode.objects.filter(parent_id__in=level)
                .exclude(pk__in=ids).values_list("pk", flat=True)
            )
            ids |= level
        return ids

    def clean(self) -> None:
        if self.parent_id is None:
            return
        if self.parent.organization_id != self.organization_id:
            raise ValidationError({"parent": _("The parent belongs to another organization.")})
        if self.pk is not None and self.parent_id in self.branch_ids():
            raise ValidationError({"parent": _("A node cannot be placed below itself.")})


class PersonQuerySet(TrackedQuerySet):
    def with_email(self, address: str) -> PersonQuerySet:
        """Persons having `address` as any of their three e-mails, ignoring case."""
        address = address.strip()
        if not address:
            return self.none()
        return self.filter(
            Q(email1__iexact=address) | Q(email2__iexact=address) | Q(email3__iexact=address)
        )

    def with_any_email(self, addresses: Iterable[str]) -> PersonQuerySet:
        """Persons having any of `addresses` as one of their e-mails, ignoring case.

        UPPER(email) IN (...) per column: it uses the case-insensitive indexes and stays a
        small query however many addresses (one OR per address would not: SQLite refuses
        expression trees deeper than 1000)."""
        upper = sorted({a.strip().upper() for a in addresses if a and a.strip()})
        if not upper:
            return self.none()
        return self.alias(u1=Upper("email1"), u2=Upper("email2"), u3=Upper("email3")).filter(
            Q(u1__in=upper) | Q(u2__in=upper) | Q(u3__in=upper))

    def in_branch(self, node: ClassificationNode) -> PersonQuerySet:
        return self.filter(classification_nodes__in=node.branch_ids()).distinct()

    def of_user(self, crm_user_id: int) -> PersonQuerySet:
        """The persons a CRM user owns or is assigned to."""
        assigned = Person.assigned_users.through.objects.filter(crmuser_id=crm_user_id)
        return self.filter(Q(owner_id=crm_user_id)
                           | Q(pk__in=assigned.values("person_id")))


ADDRESS_PARTS = ("street", "city", "region", "postal_code", "country")
ADDRESS_KINDS = ("business", "home", "other")
PHONE_FIELDS = ("phone_business", "phone_business2", "phone_home", "phone_mobile",
                "phone_business_fax", "phone_other")


class Person(TrackedModel, OrganizationOwned):
    change_kind = Change.Kind.PERSON

    title = models.CharField(_("title"), max_length=50, blank=True)
    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    middle_name = models.CharField(_("middle name"), max_length=100, blank=True)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    suffix = models.CharField(_("suffix"), max_length=50, blank=True)
    job_title = models.CharField(_("job title"), max_length=200, blank=True)
    department = models.CharField(_("department"), max_length=200, blank=True)
    web_page = models.CharField(_("web page"), max_length=255, blank=True)
    email1 = models.EmailField(_("e-mail 1"), max_length=254, blank=True)
    email2 = models.EmailField(_("e-mail 2"), max_length=254, blank=True)
    email3 = models.EmailField(_("e-mail 3"), max_length=254, blank=True)
    business_street = models.CharField(_("business street"), max_length=255, blank=True)
    business_city = models.CharField(_("business city"), max_length=100, blank=True)
    business_region = models.CharField(_("business region"), max_length=100, blank=True)
    business_postal_code = models.CharField(_("business postal code"), max_length=32, blank=True)
    business_country = models.CharField(_("business country"), max_length=100, blank=True)
    home_street = models.CharField(_("home street"), max_length=255, blank=True)
    home_city = models.CharField(_("home city"), max_length=100, blank=True)
    home_region = models.CharField(_("home region"), max_length=100, blank=True)
    home_postal_code = models.CharField(_("home postal code"), max_length=32, blank=True)
    home_country = models.CharField(_("home country"), max_length=100, blank=True)
    other_street = models.CharField(_("other street"), max_length=255, blank=True)
    other_city = models.CharField(_("other city"), max_length=100, blank=True)
    other_region = models.CharField(_("other region"), max_length=100, blank=True)
    other_postal_code = models.CharField(_("other postal code"), max_length=32, blank=True)
    other_country = models.CharField(_("other country"), max_length=100, blank=True)
    phone_business = models.CharField(_("business phone"), max_length=64, blank=True)
    phone_business2 = models.CharField(_("business phone 2"), max_length=64, blank=True)
    phone_home = models.CharField(_("home phone"), max_length=64, blank=True)
    phone_mobile = models.CharField(_("mobile phone"), max_length=64, blank=True)
    phone_business_fax = models.CharField(_("business fax"), max_length=64, blank=True)
    phone_other = models.CharField(_("other phone"), max_length=64, blank=True)
    note = models.TextField(_("note"), blank=True)
    photo = models.BinaryField(_("photo"), blank=True, null=True, editable=False)
    photo_content_type = models.CharField(max_length=100, blank=True, editable=False)
    companies = models.ManyToManyField(
        Company, through="PersonCompany", related_name="persons", blank=True,
        verbose_name=_("companies"),
    )
    classification_nodes = models.ManyToManyField(
        ClassificationNode, related_name="persons", blank=True,
        verbose_name=_("classification"),
    )
    origin_item_id = models.CharField(
        _("created from Exchange item"), max_length=512, blank=True, db_index=True,
        editable=False,
    )
    # Whose person this is: by default a sync profile holds its CRM user's persons (those it
    # owns or is assigned to). One created from a mailbox belongs to that mailbox's CRM user.
    owner = models.ForeignKey(
        CrmUser, on_delete=models.PROTECT, null=True, blank=True, related_name="persons",
        verbose_name=_("owner"),
    )
    assigned_users = models.ManyToManyField(
        CrmUser, related_name="assigned_persons", blank=True,
        verbose_name=_("also assigned to"),
        help_text=_("CRM users besides the owner whose mailboxes hold this person."),
    )

    objects = PersonQuerySet.as_manager()

    class Meta:
        ordering = ["last_name", "first_name"]
        verbose_name = _("person")
        verbose_name_plural = _("persons")
        indexes = [
            models.Index(fields=["organization", "revision"]),
            # e-mail lookups are case-insensitive (iexact compares UPPER() on PostgreSQL)
            models.Index(Upper("email1"), name="person_email1_ci"),
            models.Index(Upper("email2"), name="person_email2_ci"),
            models.Index(Upper("email3"), name="person_email3_ci"),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        parts = [self.title, self.first_name, self.middle_name, self.last_name, self.suffix]
        name = " ".join(p for p in parts if p)
        return name or self.email1 or self.email2 or self.email3 or f"person {self.pk}"

    @property
    def emails(self) -> list[str]:
        return [e for e in (self.email1, self.email2, self.email3) if e]

    def clean(self) -> None:
        if self.owner_id and self.owner.organization_id != self.organization_id:
            raise ValidationError({"owner": _("The owner belongs to another organization.")})


class PersonCompany(models.Model):
    organization_path = "person__organization"

    person = models.ForeignKey(Person, on_delete=models.CASCADE)
    company = models.ForeignKey(Company, on_delete=models.CASCADE)

    class Meta:
        verbose_name = _("company of a person")
        verbose_name_plural = _("companies of the person")
        constraints = [
            models.UniqueConstraint(fields=["person", "company"], name="unique_person_company")
        ]

    def __str__(self) -> str:
        return f"{self.person} - {self.company}"


class EventCategory(NamedPerOrganization):
    """An event's "icon" in the CRM, e.g. HOTLINE."""

    class Meta(NamedPerOrganization.Meta):
        verbose_name = _("event category")
        verbose_name_plural = _("event categories")
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"],
                                    name="unique_event_category_per_organization")
        ]


class EventStatus(NamedPerOrganization):
    """An event's status, e.g. Incoming ("Příchozí")."""

    class Meta(NamedPerOrganization.Meta):
        verbose_name = _("event status")
        verbose_name_plural = _("event statuses")
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"],
                                    name="unique_event_status_per_organization")
        ]


class Event(TrackedModel, OrganizationOwned):
    """A calendar event; times in UTC, with the zone it was entered in.

    `recurrence` describes a series as a plain dict:
    `{"pattern": {"type": "daily"|"weekly"|"absolute_monthly"|"relative_monthly"|
    "absolute_yearly"|"relative_yearly", "interval": int, "weekdays": [...],
    "day_of_month": int, "month": int, "week_index": str},
    "range": {"start": "YYYY-MM-DD", "end": "YYYY-MM-DD" | None, "count": int | None}}`.
    A modified occurrence is its own Event with `recurrence_master` and `original_start`;
    a deleted occurrence's original start is listed in the master's `deleted_occurrences`.
    """

    change_kind = Change.Kind.EVENT

    owner = models.ForeignKey(CrmUser, on_delete=models.PROTECT, related_name="events",
                              verbose_name=_("owner"))
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    start = models.DateTimeField(_("start (UTC)"))
    end = models.DateTimeField(_("end (UTC)"))
    time_zone = models.CharField(_("time zone"), max_length=100, blank=True,
                                 help_text=_("The zone the event was entered in."))
    all_day = models.BooleanField(_("all day"), default=False)
    location = models.CharField(_("location"), max_length=255, blank=True)
    body = models.TextField(_("description"), blank=True)
    private = models.BooleanField(_("private"), default=False)
    category = models.ForeignKey(EventCategory, on_delete=models.SET_NULL, null=True,
                                 blank=True, verbose_name=_("category"))
    status = models.ForeignKey(EventStatus, on_delete=models.SET_NULL, null=True, blank=True,
                               verbose_name=_("status"))
    recurrence = models.JSONField(_("recurrence"), null=True, blank=True)
    recurrence_master = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="exceptions",
        verbose_name=_("series"),
    )
    original_start = models.DateTimeField(_("original start of the occurrence"), null=True,
                                          blank=True)
    deleted_occurrences = models.JSONField(default=list, blank=True)
    uid = models.CharField(_("meeting UID"), max_length=512, blank=True)
    origin_item_id = models.CharField(max_length=512, blank=True, db_index=True,
                                      editable=False)
    persons = models.ManyToManyField(Person, related_name="events", blank=True,
                                     verbose_name=_("persons"))
    companies = models.ManyToManyField(Company, related_name="events", blank=True,
                                       verbose_name=_("companies"))

    class Meta:
        ordering = ["-start"]
        verbose_name = _("event")
        verbose_name_plural = _("events")
        constraints = [
            # One CRM event per meeting, however many synced users attend it.
            models.UniqueConstraint(
                fields=["organization", "uid"], condition=~Q(uid=""),
                name="unique_meeting_uid_per_organization",
                violation_error_message=_("An event with this meeting UID exists already."),
            ),
        ]
        indexes = [models.Index(fields=["organization", "revision"])]

    def __str__(self) -> str:
        return self.subject or str(_("(no subject)"))

    def clean(self) -> None:
        if self.start and self.end and self.end < self.start:
            raise ValidationError({"end": _("The event ends before it starts.")})
        if self.owner_id and self.owner.organization_id != self.organization_id:
            raise ValidationError({"owner": _("The owner belongs to another organization.")})


def email_fingerprint(sender_address: str, sent_at: dt.datetime | None, subject: str) -> str:
    """What tells a message apart besides its Message-ID, which collides in real mail and can
    be forged: its sender, when it was sent and its subject. Normalized (address without case,
    time in whole UTC seconds, subject NFC with runs of spaces as one) so that every mailbox's
    copy of one message, read through EWS or Graph, gives the same SHA-256 (hex)."""
    sent = sent_at.astimezone(dt.UTC).replace(microsecond=0).isoformat() if sent_at else ""
    parts = [sender_address.strip().casefold(), sent,
             " ".join(unicodedata.normalize("NFC", subject).split())]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


class Email(OrganizationOwned):
    """An e-mail filed in the CRM: one per message, whoever's mailbox had it. A message is its
    Internet Message-ID and its fingerprint (`email_fingerprint`): a different message reusing
    a Message-ID is an e-mail of its own."""

    # NULL, not "": many messages lack a Message-ID, and the uniqueness is for those that have one.
    message_id = models.CharField(  # noqa: DJ001
        _("Message-ID"), max_length=998, null=True, blank=True
    )
    # Of the message as it was filed: editing the e-mail's subject in the CRM does not make it
    # another message.
    fingerprint = models.CharField(
        _("fingerprint"), max_length=64, blank=True, editable=False,
        help_text=_("Of its sender, date and subject: tells apart different messages that "
                    "share a Message-ID."))
    origin_item_id = models.CharField(max_length=512, blank=True, db_index=True,
                                      help_text=_("Identifies a message without a Message-ID."))
    subject = models.CharField(_("subject"), max_length=998, blank=True)
    sender_address = models.CharField(_("from"), max_length=320, blank=True)
    sender_name = models.CharField(_("sender's name"), max_length=255, blank=True)
    recipients = models.JSONField(_("recipients"), default=dict, blank=True,
                                  help_text=_('{"to": [...], "cc": [...]}'))
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    received_at = models.DateTimeField(_("received"), null=True, blank=True)
    body_text = models.TextField(_("text"), blank=True)
    body_html = models.TextField(_("HTML"), blank=True)
    persons = models.ManyToManyField(Person, related_name="emails", blank=True)
    companies = models.ManyToManyField(Company, related_name="emails", blank=True)
    users = models.ManyToManyField(CrmUser, related_name="emails", blank=True,
                                   verbose_name=_("users who had it"))

    class Meta:
        ordering = ["-received_at"]
        verbose_name = _("e-mail")
        verbose_name_plural = _("e-mails")
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "message_id", "fingerprint"],
                condition=Q(message_id__isnull=False), name="unique_message_per_organization",
            )
        ]

    def __str__(self) -> str:
        return self.subject or str(_("(no subject)"))


class DocumentCategory(NamedPerOrganization):
    class Meta(NamedPerOrganization.Meta):
        verbose_name = _("document category")
        verbose_name_plural = _("document categories")
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"],
                                    name="unique_document_category_per_organization")
        ]


class Document(OrganizationOwned):
    """A file saved on the share, e.g. an e-mail attachment."""

    root = models.CharField(_("share root"), max_length=1000)
    path = models.CharField(_("path below the root"), max_length=1000)
    original_name = models.CharField(_("original name"), max_length=1000, blank=True)
    category = models.ForeignKey(DocumentCategory, on_delete=models.PROTECT, null=True,
                                 blank=True, verbose_name=_("category"))
    size = models.BigIntegerField(_("size (bytes)"), default=0)
    sha256 = models.CharField(max_length=64, db_index=True)
    email = models.ForeignKey(Email, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="documents", verbose_name=_("e-mail"))
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]
        verbose_name = _("document")
        verbose_name_plural = _("documents")

    def __str__(self) -> str:
        return self.original_name or self.path
