"""A stored secret follows only its own endpoint.

A password or client secret was entered for one server, one sign-in. If an administrator
changes where it is sent (the URL, the token endpoint, the tenant, the authentication, the
user name) and does not enter the secret again in the same save, the stored one is dropped:
otherwise anyone allowed to edit the connection could point it at a server of their own and
receive the secret they were never shown.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class EndpointBoundSecret(models.Model):
    """Mixed into a model with an encrypted `secret_field` sent to what `endpoint_fields` say.

    The values as loaded from the database are remembered; `secret_left_behind()` tells that
    the endpoint changed since while the secret did not (a secret entered again is a new
    token: Fernet encrypts with a fresh IV each time), and `save()` then drops it."""

    secret_field: str = ""
    endpoint_fields: tuple[str, ...] = ()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.secret_left_behind():
            setattr(self, self.secret_field, "")
            update_fields = kwargs.get("update_fields")
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, self.secret_field}
        changed = self.endpoint_changed()
        super().save(*args, **kwargs)
        if changed:
            self.endpoint_moved()
        self.remember_endpoint()

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any) -> Any:
        instance = super().from_db(db, field_names, values)
        instance.remember_endpoint()
        return instance

    def remember_endpoint(self) -> None:
        names = (*self._endpoint_attnames(), self.secret_field)
        if all(name in self.__dict__ for name in names):   # deferred fields: nothing to compare
            self._stored_endpoint = {name: self.__dict__[name] for name in names}
        else:
            self._stored_endpoint = None

    def _endpoint_attnames(self) -> tuple[str, ...]:
        return tuple(self._meta.get_field(name).attname for name in self.endpoint_fields)

    def endpoint_changed(self) -> bool:
        stored = getattr(self, "_stored_endpoint", None)
        if not stored:
            return False
        return any(getattr(self, name) != stored[name] for name in self._endpoint_attnames())

    def secret_left_behind(self) -> bool:
        """A secret is stored, the endpoint changed, and the secret was not entered again."""
        stored = getattr(self, "_stored_endpoint", None)
        secret = getattr(self, self.secret_field)
        return bool(secret) and self.endpoint_changed() and secret == stored[self.secret_field]

    def endpoint_moved(self) -> None:
        """Called after a save that changed the endpoint: secrets elsewhere that were sent
        there are dropped too (a connection's profiles' passwords)."""
