"""A scratch database for the restore drill: created on the source's server, always dropped."""

from __future__ import annotations

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.errors import ConfigError
from vector_assets.core.pg.catalog import Column, split_table
from vector_assets.core.pg.connection import connect, our_error
from vector_assets.core.pg.ddl import TableDefinition, create_table

SCRATCH_SCHEMA = "vector_drill"


def create_database(admin: psycopg2.extensions.connection, name: str) -> None:
    try:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg2.errors.InsufficientPrivilege:
        raise ConfigError(
            "the restore drill needs to create a scratch database on the pgvector server; "
            "grant CREATEDB to the role in VECTOR_ASSETS_PG_DSN"
        ) from None
    except psycopg2.Error as error:
        raise our_error(admin.target_dsn, "while creating the scratch database", error) from None


def drop_database(admin: psycopg2.extensions.connection, name: str) -> None:
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def scratch_dsn(dsn: str, database: str) -> str:
    params = psycopg2.extensions.parse_dsn(dsn)
    params["dbname"] = database
    # Unqualified table names then resolve to the scratch schema, so the restore command runs as is.
    params["options"] = f"{params.get('options', '')} -c search_path={SCRATCH_SCHEMA},public".strip()
    return psycopg2.extensions.make_dsn(**params)


def create_scratch_tables(
    dsn: str, columns: dict[str, list[Column]], definitions: dict[str, TableDefinition] | None = None
) -> None:
    """The scratch schema, and the tables of a set that holds no definitions: from
    ``definitions`` (the source tables' own, keys and constraints included) when given, else
    bare (columns only). The restore creates a set's tables from the set's own definitions, as
    it would in an empty database."""
    conn = connect(dsn)
    try:
        with conn.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
            cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCRATCH_SCHEMA)))
            if definitions:
                for definition in definitions.values():  # parents first: the set's table order
                    create_table(cursor, definition)
                    for index in definition.indexes:
                        cursor.execute(index)
                columns = {}
            for table, table_columns in columns.items():
                definition = sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(column.name), sql.SQL(column.type)) for column in table_columns
                )
                cursor.execute(sql.SQL("CREATE TABLE {} ({})").format(_scratch_table(cursor, table), definition))
        conn.commit()
    finally:
        conn.close()


def _scratch_table(cursor: psycopg2.extensions.cursor, table: str) -> sql.Identifier:
    """A bare table goes into the scratch schema; one named with its schema into that schema."""
    schema, name = split_table(table)
    if schema is None:
        return sql.Identifier(SCRATCH_SCHEMA, name)
    cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    return sql.Identifier(schema, name)
