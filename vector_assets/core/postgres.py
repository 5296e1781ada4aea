"""The Postgres side of the core: connecting, reading the catalog, snapshot transactions.

Every table and column name reaches SQL through ``psycopg2.sql.Identifier``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.errors import (
    ConfigError,
    DatabaseUnreachableError,
    TableNotFoundError,
)

CONNECT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as format_type() prints it, e.g. "vector(384)" or "character varying"


@dataclass(frozen=True)
class ServerDescription:
    """Where data came from. Deliberately has no password field."""

    host: str
    port: str
    database: str
    user: str

    def as_dict(self) -> dict[str, str]:
        return {"host": self.host, "port": self.port, "database": self.database, "user": self.user}


def describe_dsn(dsn: str) -> ServerDescription:
    """Parse a DSN (URL or key=value) into the parts that are safe to record."""
    try:
        parts = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError as exc:
        raise ConfigError(f"the database DSN is malformed: {redact(str(exc), dsn)}") from None
    return ServerDescription(
        host=parts.get("host", "localhost"),
        port=parts.get("port", "5432"),
        database=parts.get("dbname", parts.get("user", "")),
        user=parts.get("user", ""),
    )


def redact(text: str, dsn: str) -> str:
    """Remove the DSN's password (and any password=... pair) from a message."""
    try:
        password = psycopg2.extensions.parse_dsn(dsn).get("password")
    except psycopg2.ProgrammingError:
        password = None
    if password:
        text = text.replace(password, "***")
    text = re.sub(r"(password\s*=\s*)\S+", r"\1***", text, flags=re.IGNORECASE)
    return re.sub(r"(postgres(?:ql)?(?:\+\w+)?://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)


def connect(dsn: str, *, application_name: str = "vector_assets") -> psycopg2.extensions.connection:
    """Open a connection; an unreachable server becomes a retryable, password-free error."""
    if not dsn:
        raise ConfigError("no database DSN given (set VECTOR_ASSETS_PG_DSN)")
    server = describe_dsn(dsn)
    try:
        conn = psycopg2.connect(
            dsn, connect_timeout=CONNECT_TIMEOUT_SECONDS, application_name=application_name
        )
    except psycopg2.OperationalError as exc:
        raise DatabaseUnreachableError(
            f"cannot connect to database {server.database!r} on {server.host}:{server.port}: "
            f"{redact(str(exc).strip(), dsn)}"
        ) from None
    conn.set_client_encoding("UTF8")
    return conn


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
        if not conn.closed:  # a killed backend closes the connection under us
            conn.rollback()
        raise
    finally:
        if not conn.closed:
            conn.set_session(isolation_level="DEFAULT", readonly="DEFAULT")


def read_columns(cursor: psycopg2.extensions.cursor, table: str) -> list[Column]:
    """The table's columns in order, with their types, read from the catalog."""
    cursor.execute("SELECT to_regclass(%s)", (sql.Identifier(table).as_string(cursor),))
    (oid,) = cursor.fetchone()
    if oid is None:
        raise TableNotFoundError(f"table {table!r} does not exist in this database")
    cursor.execute(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod)
        FROM pg_attribute a
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        (sql.Identifier(table).as_string(cursor),),
    )
    return [Column(name=name, type=type_name) for name, type_name in cursor.fetchall()]


def server_versions(cursor: psycopg2.extensions.cursor) -> tuple[str, str | None]:
    """(PostgreSQL version, pgvector version or None when the extension is missing)."""
    cursor.execute("SHOW server_version")
    (server_version,) = cursor.fetchone()
    cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    row = cursor.fetchone()
    return server_version, (row[0] if row else None)


def count_rows(cursor: psycopg2.extensions.cursor, table: str) -> int:
    cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    return int(cursor.fetchone()[0])


def column_list(columns: list[Column]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(column.name) for column in columns)
