"""Connecting, snapshot transactions, and the one place a lost connection becomes an error.

Every table and column name reaches SQL through ``psycopg2.sql.Identifier``. Every message
about a connection is redacted: it names the database, host and port, never the password.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from vector_assets.core.errors import (
    ConfigError,
    DatabaseAccessError,
    DatabaseError,
    DatabaseUnreachableError,
    LockTimeoutError,
    StatementCancelledError,
    VectorAssetsError,
)

CONNECT_TIMEOUT_SECONDS = 10
# Set on every connection, as pg_dump does, so that data leaves and comes back exactly whatever
# the database or role sets: no rounded floats, no day/month swaps, no local time zones, no
# rows silently hidden by row-level security, no statement timeout cutting a long COPY.
PINNED_SESSION_SETTINGS = {
    "DateStyle": "ISO",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "TimeZone": "UTC",
    "bytea_output": "hex",
    "row_security": "off",
    "statement_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
}


@dataclass(frozen=True)
class ServerDescription:
    """Where data came from. Deliberately has no password field."""

    host: str
    port: str
    database: str
    user: str

    def as_dict(self) -> dict[str, str]:
        return {"host": self.host, "port": self.port, "database": self.database, "user": self.user}

    def __str__(self) -> str:
        return f"database {self.database!r} on {self.host}:{self.port}"


class Connection(psycopg2.extensions.connection):
    """A psycopg2 connection that remembers its DSN, so errors raised later can name the
    server and redact the password without the caller passing the DSN around."""

    target_dsn: str = ""


URL_SCHEME = re.compile(r"postgres(?:ql)?://", re.IGNORECASE)
# Connection failures that are about who we are, not whether the server is up.
LOGIN_REFUSED = re.compile(
    r"authentication failed|no password supplied|password is required|does not exist"
    r"|not permitted to log in|pg_hba\.conf|permission denied",
    re.IGNORECASE,
)


def describe_dsn(dsn: str) -> ServerDescription:
    """Parse a DSN (URL or key=value) into the parts that are safe to record.

    A DSN libpq cannot parse, or a URL whose password holds an unencoded ``@`` or ``/`` (libpq
    would then read part of the password as the host, port or database), is refused without
    echoing any of it: libpq's own message quotes the fragment it choked on.
    """
    try:
        parts = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        raise ConfigError(malformed_dsn_message(dsn)) from None
    if URL_SCHEME.match(dsn) and url_is_misread(dsn):
        raise ConfigError(malformed_dsn_message(dsn))
    return ServerDescription(
        host=parts.get("host", "localhost"),
        port=parts.get("port", "5432"),
        database=parts.get("dbname", parts.get("user", "")),
        user=parts.get("user", ""),
    )


def url_is_misread(dsn: str) -> bool:
    """libpq ends a URL's authority at the first ``/`` and splits it at the first ``@``; an
    unencoded ``@`` or ``/`` in the password moves the rest of it into host, port or dbname."""
    after_scheme = URL_SCHEME.sub("", dsn, count=1)
    authority, _, path = after_scheme.partition("/")
    return authority.count("@") > 1 or "@" in path.split("?", 1)[0]


def malformed_dsn_message(dsn: str) -> str:
    if URL_SCHEME.match(dsn):
        return (
            "the database DSN is a malformed URL: percent-encode '@', '/', '%' and spaces in the user "
            "name, password and database name (%40, %2F, %25, %20); no part of it is shown here"
        )
    return (
        "the database DSN is malformed: in key=value form quote a value that holds spaces or quotes "
        "(password='…', with \\' for a quote); no part of it is shown here"
    )


def secret_fragments(dsn: str) -> list[str]:
    """The password as libpq reads it, the raw text that may be the password however it was
    mistyped, and the pieces of that text long enough to be recognised; longest first."""
    found: set[str] = set()
    try:
        password = psycopg2.extensions.parse_dsn(dsn).get("password")
        if password:
            found.add(password)
    except psycopg2.ProgrammingError:
        pass
    raw = _raw_password(dsn)
    if raw:
        found.add(raw)
        found.update(piece for piece in re.split(r"[\s@/:?#&=%'\"]+", raw) if len(piece) >= 3)
    return sorted(found, key=len, reverse=True)


def _raw_password(dsn: str) -> str | None:
    if URL_SCHEME.match(dsn):
        userinfo = URL_SCHEME.sub("", dsn, count=1).rpartition("@")[0]
        return userinfo.partition(":")[2] or None
    match = re.search(r"password\s*=\s*(.*)", dsn, flags=re.IGNORECASE | re.DOTALL)
    return match.group(1).strip() if match else None


def redact(text: str, dsn: str) -> str:
    """Remove the DSN's password, and every fragment of what may be it, from a message."""
    for fragment in secret_fragments(dsn):
        text = text.replace(fragment, "***")
    text = re.sub(r"(password\s*=\s*)\S+", r"\1***", text, flags=re.IGNORECASE)
    return re.sub(r"(postgres(?:ql)?(?:\+\w+)?://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)


# Errors a later attempt may not meet: a deadlock, a serialization conflict (and, below, another
# session's lock or a lost connection). Anything else the server says will be said again.
RETRYABLE_STATEMENT_ERRORS = (psycopg2.errors.DeadlockDetected, psycopg2.errors.SerializationFailure)


def our_error(dsn: str, doing: str, error: psycopg2.Error, connection_lost: bool = False) -> VectorAssetsError:
    """The driver's error as one of ours: named server, what we were doing, password redacted,
    and ``retryable`` set by what the error is. A connection that died mid-COPY may surface as
    a plain DatabaseError; ``connection_lost`` (the connection is closed) says what it was.
    A cancelled statement is an OperationalError too, but the connection is still there."""
    where = f"{doing}: {describe_dsn(dsn)}" if dsn else doing
    reason = redact(" ".join(str(error).split()), dsn)
    if isinstance(error, psycopg2.errors.LockNotAvailable):
        return LockTimeoutError(f"timed out waiting for a lock {where}: {reason}")
    if isinstance(error, RETRYABLE_STATEMENT_ERRORS):
        return LockTimeoutError(f"a concurrent transaction got in the way {where}: {reason}")
    if isinstance(error, psycopg2.errors.QueryCanceled) and not connection_lost:
        return StatementCancelledError(f"the database cancelled a statement {where}, the connection is still open: {reason}")
    if connection_lost or server_gone(error):
        return DatabaseUnreachableError(f"lost the database connection {where}: {reason}")
    return DatabaseError(f"the database refused a statement {where}: {reason}")


# An OperationalError from the server means the session is gone only in these SQLSTATEs: class 08
# (connection exception) and the server shutting down. The others (an object in use, such as a
# table a trigger truncates while the restore's COPY holds it; a program limit) are refusals.
SESSION_GONE_STATES = ("57P01", "57P02", "57P03")


def server_gone(error: psycopg2.Error) -> bool:
    """The error says the server is no longer there, whatever the connection's flags say yet.

    The server's own errors carry a SQLSTATE, and mean this only in ``SESSION_GONE_STATES`` and
    class 08. libpq's carry none: psycopg2 raises them as an OperationalError, or as a plain
    DatabaseError where libpq hands back a failed result of its own. A COPY whose write found
    the server gone is reported that way, as soon as libpq has nothing better, and libpq may
    or may not have read the end of the connection by then (and flagged it bad): which one
    depends on what the machine ran first, as a server stopping under load showed."""
    code = error.pgcode
    if type(error) is psycopg2.DatabaseError:
        return code is None
    return isinstance(error, psycopg2.OperationalError) and (
        code is None or code.startswith("08") or code in SESSION_GONE_STATES
    )


LIBPQ_CONNECTION_OK = 0  # PQstatus(); libpq sets CONNECTION_BAD as soon as it reads the server's EOF


def connection_lost(conn: psycopg2.extensions.connection) -> bool:
    """The connection is gone, even where psycopg2 has not marked it closed yet (a server that
    stopped mid-COPY surfaces as a plain DatabaseError on a connection still flagged open)."""
    if conn.closed:
        return True
    try:
        return conn.info.status != LIBPQ_CONNECTION_OK
    except psycopg2.InterfaceError:
        return True


@contextmanager
def database_errors(conn: psycopg2.extensions.connection, doing: str) -> Iterator[None]:
    """The one wrapper around work on a connection: every driver error becomes one of ours
    (a lost connection a retryable ``DatabaseUnreachableError``), always redacted."""
    try:
        yield
    except psycopg2.Error as error:
        raise our_error(getattr(conn, "target_dsn", ""), doing, error, connection_lost(conn)) from None


def connect(
    dsn: str, *, application_name: str = "vector_assets", timeout_seconds: int = CONNECT_TIMEOUT_SECONDS
) -> Connection:
    """Open a connection; an unreachable server becomes a retryable, password-free error."""
    if not dsn:
        raise ConfigError("no database DSN given (set VECTOR_ASSETS_PG_DSN)")
    server = describe_dsn(dsn)
    try:
        conn = psycopg2.connect(
            dsn,
            connect_timeout=timeout_seconds,
            application_name=application_name,
            connection_factory=Connection,
        )
    except psycopg2.OperationalError as exc:
        reason = redact(" ".join(str(exc).split()), dsn)
        if LOGIN_REFUSED.search(reason):
            raise DatabaseAccessError(f"the server refused the login to {server} as user {server.user!r}: {reason}") from None
        raise DatabaseUnreachableError(f"cannot connect to {server}: {reason}") from None
    conn.target_dsn = dsn
    conn.set_client_encoding("UTF8")
    with database_errors(conn, "while setting up the session"):
        pin_session_settings(conn)
    return conn


def pin_session_settings(conn: psycopg2.extensions.connection) -> None:
    with conn.cursor() as cursor:
        pairs = list(PINNED_SESSION_SETTINGS.items())
        selects = ", ".join("set_config(%s, %s, false)" for _ in pairs)
        cursor.execute(f"SELECT {selects}", [item for pair in pairs for item in pair])
    conn.commit()


@contextmanager
def snapshot_transaction(conn: psycopg2.extensions.connection) -> Iterator[psycopg2.extensions.cursor]:
    """One REPEATABLE READ, READ ONLY transaction: every statement in it sees the same snapshot."""
    conn.set_session(
        isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True
    )
    try:
        with conn.cursor() as cursor:
            yield cursor
        conn.commit()
    except BaseException:
        rollback_quietly(conn)
        raise
    finally:
        if not conn.closed:
            conn.set_session(isolation_level="DEFAULT", readonly="DEFAULT")


def rollback_quietly(conn: psycopg2.extensions.connection) -> None:
    """Roll back if the connection is still there; a killed backend closes it under us."""
    if not conn.closed:
        try:
            conn.rollback()
        except psycopg2.Error:
            pass
