"""Plain SQL for the link table's writes of many rows at once.

Django's `bulk_create` makes a model instance per row and prepares every value through the
compiler, and `bulk_update` builds a CASE expression per field and row. For the thousands of
links of a first sync that cost more than the statements themselves (bench/): a first export
of 2,000 events spent a quarter of its database time in `bulk_create` building them. Values
still pass through each field's own `get_db_prep_save`, so JSON, dates and booleans are
written as Django would write them, on every database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connection, models
from django.utils import timezone

# Rows per statement at most; fewer where the database's limit on a statement's parameters
# (Django's `max_query_params`: 999 for SQLite, the oldest versions' limit) asks for it.
ROWS_PER_STATEMENT = 500


# Values that go to every database as they are (the field's get_db_prep_save returns them
# unchanged), by the field's type: their preparation, a fifth of the time of a batch's insert,
# is skipped.
_TEXT, _NUMBER, _FLAG = (str, type(None)), (int, type(None)), (bool, type(None))
PLAIN_VALUES: dict[str, tuple[type, ...]] = {
    "CharField": _TEXT, "TextField": _TEXT, "BooleanField": _FLAG, "IntegerField": _NUMBER,
    "BigIntegerField": _NUMBER, "SmallIntegerField": _NUMBER, "PositiveIntegerField": _NUMBER,
    "ForeignKey": _NUMBER}


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _rows_per_statement(params_per_row: int) -> int:
    limit = connection.features.max_query_params
    if not limit:
        return ROWS_PER_STATEMENT
    return max(1, min(ROWS_PER_STATEMENT, limit // params_per_row))


def insert_rows(model: type[models.Model], rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` (values by field attname, e.g. `profile_id`): fields a row leaves out
    take their default; `auto_now`/`auto_now_add` dates are now. An unknown name is a
    programming error, raised before anything is written."""
    if not rows:
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    names = {f.attname for f in fields}
    for row in rows:
        unknown = set(row) - names
        if unknown:
            raise ValueError(f"{model.__name__} has no field {sorted(unknown)}")
    now = timezone.now()
    stamped = {f.attname for f in fields
               if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)}
    # Prepared once: the defaults and "now" are the same for every row.
    prepared = {f.attname: f.get_db_prep_save(now if f.attname in stamped else f.get_default(),
                                              connection) for f in fields}
    plain = {f.attname: PLAIN_VALUES.get(f.get_internal_type(), ()) for f in fields}
    columns = ", ".join(_quote(f.column) for f in fields)
    row_marks = "(" + ", ".join(["%s"] * len(fields)) + ")"
    table = _quote(model._meta.db_table)
    size = _rows_per_statement(len(fields))
    with connection.cursor() as cursor:
        for start in range(0, len(rows), size):
            chunk = rows[start:start + size]
            params: list[Any] = []
            for row in chunk:
                for field in fields:
                    name = field.attname
                    if name in stamped or name not in row:
                        params.append(prepared[name])
                        continue
                    value = row[name]
                    params.append(value if type(value) in plain[name]
                                  else field.get_db_prep_save(value, connection))
            cursor.execute(f"INSERT INTO {table} ({columns}) VALUES "
                           + ", ".join([row_marks] * len(chunk)), params)


def update_column(model: type[models.Model], field_name: str,
                  values: Sequence[tuple[Any, Any]]) -> None:
    """Set one column of many rows, each its own value: `values` holds (pk, value) pairs.
    A statement per few hundred rows."""
    field = model._meta.get_field(field_name)
    table = _quote(model._meta.db_table)
    key = _quote(model._meta.pk.column)
    column = _quote(field.column)
    size = _rows_per_statement(3)
    with connection.cursor() as cursor:
        for start in range(0, len(values), size):
            chunk = values[start:start + size]
            cases = " ".join(["WHEN %s THEN %s"] * len(chunk))
            marks = ", ".join(["%s"] * len(chunk))
            params: list[Any] = [p for pk, value in chunk
                                 for p in (pk, field.get_db_prep_save(value, connection))]
            cursor.execute(f"UPDATE {table} SET {column} = CASE {key} {cases} END "
                           f"WHERE {key} IN ({marks})", [*params, *(pk for pk, _ in chunk)])
