"""New rows of many model instances in plain INSERT … RETURNING statements.

Django's `bulk_create` prepares every value of every row through the SQL compiler: for the
thousands of persons of a first import (some fifty columns each) that cost more than the
statements themselves (bench/: a tenth of a 10,000-contact import). Here each value still
passes through its field's own `pre_save` and `get_db_prep_save`, so dates, JSON and booleans
are written as Django writes them, except values that every database takes as they are
(text, numbers, flags, foreign keys), which are passed straight on. The instances get their
new ids, as `bulk_create` gives them.

Used for instances without an id, on a database that returns the rows of a multi-row INSERT
(PostgreSQL; SQLite from 3.35); `insertable` says when, and callers use `bulk_create`
otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections, models

_TEXT, _NUMBER, _FLAG = (str, type(None)), (int, type(None)), (bool, type(None))
# Values every database takes as they are, by the field's type (get_db_prep_save returns them
# unchanged): their preparation is skipped.
PLAIN_VALUES: dict[str, tuple[type, ...]] = {
    "CharField": _TEXT, "TextField": _TEXT, "EmailField": _TEXT, "URLField": _TEXT,
    "SlugField": _TEXT, "BooleanField": _FLAG, "IntegerField": _NUMBER,
    "BigIntegerField": _NUMBER, "SmallIntegerField": _NUMBER,
    "PositiveIntegerField": _NUMBER, "PositiveSmallIntegerField": _NUMBER,
    "ForeignKey": _NUMBER}


def insertable(model: type[models.Model], objs: Sequence[models.Model], using: str) -> bool:
    """Whether `insert` can write these instances: none has an id yet, no field takes a
    database-side default, and the database returns inserted rows."""
    connection = connections[using]
    return (connection.features.can_return_rows_from_bulk_insert
            and all(obj.pk is None for obj in objs)
            and not any(getattr(f, "has_db_default", lambda: False)()
                        for f in model._meta.concrete_fields))


def insert(model: type[models.Model], objs: Sequence[models.Model], using: str) -> None:
    """INSERT the instances (`insertable` must hold) and give each its new id."""
    if not objs:
        return
    connection = connections[using]
    meta = model._meta
    fields = [f for f in meta.concrete_fields
              if not f.primary_key and not getattr(f, "generated", False)]
    plain = [PLAIN_VALUES.get(f.get_internal_type(), ()) for f in fields]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    row_marks = "(" + ", ".join(["%s"] * len(fields)) + ")"
    size = max(1, min(500, (connection.features.max_query_params or 10_000) // len(fields)))
    statement = (f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {{rows}} "
                 f"RETURNING {quote(meta.pk.column)}")
    with connection.cursor() as cursor:
        for start in range(0, len(objs), size):
            chunk = objs[start:start + size]
            params: list[Any] = []
            for obj in chunk:
                # The checks bulk_create makes: a related object saved since it was assigned.
                obj._prepare_related_fields_for_save(operation_name="bulk_create")
                for field, as_is in zip(fields, plain, strict=True):
                    value = field.pre_save(obj, True)
                    params.append(value if type(value) in as_is
                                  else field.get_db_prep_save(value, connection))
            cursor.execute(statement.format(rows=", ".join([row_marks] * len(chunk))), params)
            ids = [row[0] for row in cursor.fetchall()]
            if len(ids) != len(chunk):   # never expected: every row is inserted or it raises
                raise RuntimeError(f"{model.__name__}: {len(ids)} ids for {len(chunk)} rows")
            for obj, new_id in zip(chunk, ids, strict=True):
                setattr(obj, meta.pk.attname, new_id)
                obj._state.adding = False
                obj._state.db = using
