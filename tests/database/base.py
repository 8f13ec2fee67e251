"""The test suite's PostgreSQL backend: Django's, except that emptying the tables after a transactional test deletes
their rows instead of truncating them.

TRUNCATE gives every table a new file, which costs 60-300 ms for the project's tables even when they hold a
few rows, after each of the hundred-odd transactional tests; DELETE of those few rows costs a few milliseconds.
Django creates PostgreSQL foreign keys DEFERRABLE INITIALLY DEFERRED and flushes in one transaction, so the tables
may be emptied in any order. Resetting sequences, or cascading to tables left out, still goes through TRUNCATE.
"""

from __future__ import annotations

from django.db.backends.postgresql import base, operations


class DatabaseOperations(operations.DatabaseOperations):
    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or allow_cascade or not tables:
            return super().sql_flush(style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        return [f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};" for table in tables]


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
