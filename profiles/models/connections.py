"""Mailbox connections: how the server reaches mailboxes (one connection, many profiles)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from profiles import secrets
from profiles.certificates import is_certificate, normalize_pem
from profiles.models.bound_secrets import EndpointBoundSecret
from profiles.validation import check_guid, check_tenant


class MailboxConnection(EndpointBoundSecret, models.Model):
    class Kind(models.TextChoices):
        EWS = "ews", _("Exchange Server (on-premises) over EWS")
        GRAPH = "graph", _("Exchange Online (Microsoft Graph)")

    class Auth(models.TextChoices):
        NTLM = "ntlm", _("NTLM")
        BASIC = "basic", _("Basic")
        OAUTH2 = "oauth2", _("OAuth 2.0 app-only (client credentials)")

    class Access(models.TextChoices):
        IMPERSONATION = "impersonation", _("Service account with impersonation (recommended)")
        PER_USER = "per_user", _("Each profile's own credentials")

    class ServerVersion(models.TextChoices):
        # Pinning the version spares the server a round trip to guess it.
        EXCHANGE2013 = "Exchange2013", "Exchange 2013"
        EXCHANGE2013_SP1 = "Exchange2013_SP1", "Exchange 2013 SP1"
        EXCHANGE2016 = "Exchange2016", "Exchange 2016 / 2019 / Subscription Edition"

    organization_path = "organization"
    # Where the secret is sent, and as whom: changing any of these drops a stored secret
    # that is not entered again in the same save (profiles/models/bound_secrets.py).
    secret_field = "secret_token"
    endpoint_fields = ("kind", "ews_url", "token_url", "tenant_id", "client_id", "auth_type",
                       "username")

    organization = models.ForeignKey(
        "profiles.Organization", on_delete=models.CASCADE, related_name="connections",
        verbose_name=_("organization"),
    )
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.EWS)
    ews_url = models.URLField(
        _("EWS URL"),
        blank=True,
        max_length=500,
        help_text=_("e.g. https://mail.example.com/EWS/Exchange.asmx (no autodiscover)."),
    )
    auth_type = models.CharField(
        _("authentication"), max_length=10, choices=Auth.choices, default=Auth.NTLM
    )
    access = models.CharField(
        _("mailbox access"), max_length=20, choices=Access.choices, default=Access.IMPERSONATION
    )
    username = models.CharField(
        _("user name"),
        max_length=254,
        blank=True,
        help_text=_("The service account: DOMAIN\\user or user@example.com."),
    )
    secret_token = models.TextField(editable=False, blank=True)
    tenant_id = models.CharField(_("tenant id"), max_length=253, blank=True)
    client_id = models.CharField(_("client (application) id"), max_length=36, blank=True)
    token_url = models.URLField(
        _("token endpoint"),
        blank=True,
        max_length=500,
        help_text=_("Leave blank for Microsoft's: https://login.microsoftonline.com/<tenant>/…"),
    )
    verify_tls = models.BooleanField(_("verify TLS certificates"), default=True)
    server_version = models.CharField(
        _("server version"),
        max_length=20,
        choices=ServerVersion.choices,
        blank=True,
        help_text=_("Leave blank to use Exchange 2016 requests, which every current server takes."),
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["organization__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"], name="unique_connection_name_per_organization"
            )
        ]
        verbose_name = _("mailbox connection")
        verbose_name_plural = _("mailbox connections")

    def __str__(self) -> str:
        return self.name

    # --- the secret (password or client secret) -----------------------------------------
    @property
    def has_secret(self) -> bool:
        return bool(self.secret_token)

    def set_secret(self, plaintext: str) -> None:
        self.secret_token = secrets.encrypt(plaintext) if plaintext else ""

    def get_secret(self) -> str:
        return secrets.decrypt(self.secret_token) if self.secret_token else ""

    def endpoint_changed(self) -> bool:
        # Turning TLS verification off also sends the secret somewhere new: to whoever
        # answers in the server's name.
        stored = getattr(self, "_stored_endpoint", None)
        weakened = bool(stored) and stored.get("verify_tls", False) and not self.verify_tls
        return super().endpoint_changed() or weakened

    def remember_endpoint(self) -> None:
        super().remember_endpoint()
        if self._stored_endpoint is not None and "verify_tls" in self.__dict__:
            self._stored_endpoint["verify_tls"] = self.verify_tls

    def endpoint_moved(self) -> None:
        # Each profile's own password was entered for this connection's old endpoint.
        self.profiles.exclude(mailbox_secret_token="").update(mailbox_secret_token="")

    @property
    def uses_own_credentials(self) -> bool:
        """Whether the connection itself signs in (else every profile brings credentials)."""
        return self.access == self.Access.IMPERSONATION

    def _check_certificate(self, need: Any) -> None:
        """A secret that is a certificate must hold a key and a certificate PEM can read."""
        secret = self.get_secret()
        if not is_certificate(secret):
            return
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        pem = normalize_pem(secret).encode()
        try:
            serialization.load_pem_private_key(pem, password=None)
            x509.load_pem_x509_certificate(pem[pem.index(b"-----BEGIN CERTIFICATE-----"):])
        except (ValueError, TypeError) as exc:
            need("secret", _("The certificate cannot be read (%(error)s): paste the unencrypted "
                             "private key and the certificate, both in PEM.") % {"error": exc})

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}

        def need(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        if self.secret_left_behind() and (self.auth_type == self.Auth.OAUTH2
                                          or self.uses_own_credentials):
            need("secret", _("The connection's address or sign-in changed: enter its "
                             "password, client secret or certificate again. A stored secret is "
                             "only sent where it was entered for."))
        if self.kind == self.Kind.EWS:
            if not self.ews_url:
                need("ews_url", _("An Exchange Server connection needs its EWS URL."))
            elif urlsplit(self.ews_url).scheme not in {"http", "https"}:
                need("ews_url", _("The EWS URL starts with https:// (or http://)."))
        else:
            if self.auth_type != self.Auth.OAUTH2:
                need(
                    "auth_type",
                    _("Exchange Online is reached with OAuth 2.0 app-only authentication."),
                )
            if self.access != self.Access.IMPERSONATION:
                need(
                    "access",
                    _("Microsoft Graph app-only access reaches every mailbox; choose the service "
                      "account option."),
                )

        if self.auth_type == self.Auth.OAUTH2:
            if not self.tenant_id:
                need("tenant_id", _("OAuth 2.0 needs the tenant id."))
            else:
                try:
                    check_tenant(self.tenant_id)
                except ValidationError as exc:
                    need("tenant_id", exc.messages[0])
            if not self.client_id:
                need("client_id", _("OAuth 2.0 needs the client (application) id."))
            else:
                try:
                    check_guid(self.client_id, _("The client id"))
                except ValidationError as exc:
                    need("client_id", exc.messages[0])
            if not self.has_secret:
                need("secret", _("OAuth 2.0 needs the client secret, or a certificate (its "
                                 "private key and certificate in PEM)."))
            elif self.kind == self.Kind.GRAPH:
                self._check_certificate(need)
            if self.access != self.Access.IMPERSONATION and "access" not in errors:
                need("access", _("App-only OAuth reaches mailboxes only through impersonation."))
        elif self.uses_own_credentials:
            if not self.username:
                need("username", _("Give the service account's user name."))
            elif self.auth_type == self.Auth.NTLM and "\\" not in self.username and (
                "@" not in self.username
            ):
                need("username", _("For NTLM write the user name as DOMAIN\\user or user@domain."))
            if not self.has_secret:
                need("secret", _("Give the service account's password."))
        if errors:
            raise ValidationError(errors)
