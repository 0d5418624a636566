"""Sessions kept in the database as Django's `db` engine keeps them, read with one hand-written statement.

A logged-in annotator's every call reads its session first. Django's engine reads it through the ORM,
and compiling that small statement cost more than running it (bench/hot_path_profile.py --auth
session); here it is plain SQL, as the other statements of the hot path are (see `annotator.sql`).
Everything else is Django's: the table, writes, expiry, `clearsessions`, the cookie.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import connection
from django.utils import timezone

from annotator.sql import fetch_one, model_from_row

SESSION_COLUMNS = ("session_key", "session_data", "expire_date")


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> AbstractBaseSession | None:
        """The unexpired session of this key, or None (and the key is dropped, as Django's engine does)."""
        row = fetch_one(
            f"SELECT {', '.join(SESSION_COLUMNS)} FROM {self.model._meta.db_table}"
            " WHERE session_key = %s AND expire_date > %s",
            [self.session_key, connection.ops.adapt_datetimefield_value(timezone.now())],
        )
        if row is None:
            self._session_key = None
            return None
        return model_from_row(self.model, SESSION_COLUMNS, row)
