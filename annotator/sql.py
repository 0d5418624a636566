"""Hand-written SQL for the statements of the annotation hot path: the next-task and submit calls.

Annotators make those two calls all day, and Django's ORM spent more CPU compiling each of their
small statements than the database spent running them (its raw querysets spent nearly as much on
reading the cursor's description; bench/hot_path_profile.py). So the selectors and services of
those calls write their statements by hand: plain parametrised SQL that PostgreSQL and SQLite both
run, where only the row-lock clause differs (`for_update`). Values cross over as in the ORM: rows
become model instances through `model_from_row`, which applies each field's conversion from the
database, and `row_insert` / `row_update` prepare each value through its field. Columns are named
by field attname, which is the column name of every field used here (none sets db_column); the
user tables are those of Django's default user model.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TypeVar

from django.db import connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model

M = TypeVar("M", bound=Model)


def for_update(*, of: str | None = None, skip_locked: bool = False) -> str:
    """The row-lock clause where the database has row locks. SQLite has none and needs none: its
    transactions start IMMEDIATE (see settings), so one writer at a time runs them."""
    features = connection.features
    if not features.has_select_for_update:
        return ""
    clause = " FOR UPDATE"
    if of and features.has_select_for_update_of:
        clause += f" OF {of}"
    if skip_locked and features.has_select_for_update_skip_locked:
        clause += " SKIP LOCKED"
    return clause


def fetch_one(sql: str, params: Sequence) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def placeholders(values: Sequence) -> str:
    """`%s, %s, …`: one parameter per value, for `IN (…)`."""
    return ", ".join(["%s"] * len(values))


def columns_of(model: type[Model]) -> list[str]:
    """Every field of `model`, in the model's order."""
    return [field.attname for field in model._meta.concrete_fields]


def select_list(alias: str, columns: Sequence[str]) -> str:
    return ", ".join(f"{alias}.{column}" for column in columns)


def model_from_row(model: type[M], columns: Sequence[str], row: Sequence) -> M:
    """An instance of `model` from `row`, the values of `columns`; the fields not read are deferred.

    Each value goes through the backend's and its field's conversion from the database (JSON text,
    SQLite's dates and UUIDs), as in the ORM's own reads.
    """
    database = connections[connection.alias]  # once: every attribute read through `connection` looks it up
    loaded, readers = _row_reader(model, tuple(columns), database)
    values = []
    for index, expression, converters in readers:
        value = row[index]
        for converter in converters:
            value = converter(value, expression, database)
        values.append(value)
    return model.from_db(database.alias, loaded, values)


@functools.lru_cache(maxsize=256)
def _row_reader(model: type[Model], columns: tuple[str, ...], database: BaseDatabaseWrapper) -> tuple[list, list]:
    """How `model_from_row` reads `columns`: the attnames in the model's field order (as `from_db`
    takes them) and, for each, its position in the row, its column expression and its converters.

    Finding the converters costs more than applying them, and they depend only on the field and
    the connection (one per thread: some converters are its methods), so they are found once per
    statement shape and connection.
    """
    position = {column: index for index, column in enumerate(columns)}
    loaded, readers = [], []
    for field in model._meta.concrete_fields:
        if field.attname not in position:
            continue
        expression = field.get_col(model._meta.db_table)
        converters = [*database.ops.get_db_converters(expression), *field.get_db_converters(database)]
        loaded.append(field.attname)
        readers.append((position[field.attname], expression, converters))
    return loaded, readers


def row_insert(instance: Model) -> None:
    """`instance.save()` of a new row, as one hand-written INSERT: each value goes through its field's
    preparation for the database (JSON, SQLite's dates and UUIDs), as in the ORM's own writes. No
    model signals are sent (this app has no receivers) and the model's `save` is not called."""
    database = connections[connection.alias]
    meta = instance._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    values = [field.get_db_prep_save(field.pre_save(instance, True), database) for field in fields]
    sql = f"INSERT INTO {meta.db_table} ({', '.join(field.column for field in fields)}) VALUES ({placeholders(values)})"
    with database.cursor() as cursor:
        if database.features.can_return_columns_from_insert:
            cursor.execute(f"{sql} RETURNING {meta.pk.column}", values)
            (instance.pk,) = cursor.fetchone()
        else:
            cursor.execute(sql, values)
            instance.pk = cursor.lastrowid
    instance._state.adding, instance._state.db = False, database.alias


def row_update(instance: Model, fields: Sequence[str]) -> None:
    """`instance.save(update_fields=fields)`, as one hand-written UPDATE (see `row_insert`)."""
    database = connections[connection.alias]
    meta = instance._meta
    targets = [meta.get_field(name) for name in fields]
    values = [field.get_db_prep_save(field.pre_save(instance, False), database) for field in targets]
    assignments = ", ".join(f"{field.column} = %s" for field in targets)
    with database.cursor() as cursor:
        cursor.execute(f"UPDATE {meta.db_table} SET {assignments} WHERE {meta.pk.column} = %s", [*values, instance.pk])
