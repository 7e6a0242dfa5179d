"""Which write errors bisect a round down to dead letters (the record's data) and which
pause intake (the database's state): a good job is never dead-lettered for where the
database is."""

from __future__ import annotations

import pytest
from sqlalchemy import exc

from infq.dispatch.dispatcher import why
from infq.dispatch.write import about_the_data


class _PgError(Exception):
    """A driver error carrying a SQLSTATE, as psycopg's do."""

    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _dbapi(kind: type[exc.DBAPIError], message: str, state: str | None) -> exc.DBAPIError:
    return kind("INSERT INTO jobs ...", {}, _PgError(message, state))


@pytest.mark.parametrize(
    ("error", "data"),
    [
        (_dbapi(exc.DataError, "value out of range for type integer", "22003"), True),
        (_dbapi(exc.DataError, "invalid byte sequence for encoding", "22021"), True),
        (_dbapi(exc.IntegrityError, "violates check constraint", "23514"), True),
        (_dbapi(exc.DataError, "PostgreSQL text fields cannot contain NUL (0x00) bytes",
                None), True),
        (exc.StatementError("bad", "INSERT", {}, TypeError("not JSON serializable")), True),
        # What the database's state refuses: every record alike
        (_dbapi(exc.InternalError, "cannot execute INSERT in a read-only transaction",
                "25006"), False),
        (_dbapi(exc.ProgrammingError, 'column "priority" does not exist', "42703"), False),
        (_dbapi(exc.ProgrammingError, 'relation "jobs" does not exist', "42P01"), False),
        (_dbapi(exc.ProgrammingError, "permission denied for table jobs", "42501"), False),
        (_dbapi(exc.OperationalError, "could not extend file: No space left", "53100"), False),
        (_dbapi(exc.OperationalError, "terminating connection", "57P01"), False),
        (_dbapi(exc.OperationalError, "deadlock detected", "40P01"), False),
        (_dbapi(exc.OperationalError, "connection refused", None), False),
        (RuntimeError("a bug"), False),
    ],
)  # fmt: skip
def test_only_errors_about_a_value_bisect(error: BaseException, data: bool) -> None:
    assert about_the_data(error) is data


def test_a_paused_round_says_why_in_one_line() -> None:
    error = _dbapi(exc.InternalError, "cannot execute INSERT in a read-only transaction\n"
                   "DETAIL: more", "25006")  # fmt: skip
    assert why(error) == ("Postgres refuses the round (SQLSTATE 25006: cannot execute "
                          "INSERT in a read-only transaction)")  # fmt: skip
    assert why(ConnectionError("broker gone")) == "ConnectionError: broker gone"
