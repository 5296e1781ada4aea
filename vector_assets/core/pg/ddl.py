"""A table's definition as SQL, read from the catalog, so a set can recreate its tables.

The statements are schema-less (``CREATE TABLE langchain_pg_embedding ...``): they land in the
target's first schema on the search path, as the set's rows do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg2.extensions
from psycopg2 import sql

from vector_assets.core.pg.catalog import regclass_literal, split_table, table_identifier
from vector_assets.core.pg.indexes import SavedIndex

# Constraint kinds that are written into CREATE TABLE, foreign keys last. NOT NULL ('n' in
# PostgreSQL 18) goes with its column.
CONSTRAINT_ORDER = ("p", "u", "c", "x", "f")


@dataclass(frozen=True)
class TableDefinition:
    """What recreates a table: statements run before loading, indexes built after it."""

    statements: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, list[str]]:
        return {"statements": list(self.statements), "indexes": list(self.indexes)}

    @classmethod
    def from_json(cls, data: dict) -> TableDefinition:
        return cls(statements=[str(s) for s in data["statements"]], indexes=[str(s) for s in data["indexes"]])


def read_table_definition(cursor: psycopg2.extensions.cursor, table: str) -> TableDefinition:
    name = table_identifier(table).as_string(cursor)
    serial_sequences = _serial_sequences(cursor, table)
    columns = _columns(cursor, table)
    create = f"CREATE TABLE {name} (\n  " + ",\n  ".join(
        [column.definition for column in columns] + _constraints(cursor, table)
    ) + "\n)"
    schema, _ = split_table(table)
    statements = [sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)).as_string(cursor)] if schema else []
    statements += [f"CREATE SEQUENCE {sequence} {options}" for sequence, _, options in serial_sequences]
    statements.append(create)
    statements += [f"ALTER SEQUENCE {sequence} OWNED BY {name}.{column}" for sequence, column, _ in serial_sequences]
    statements += [f"ALTER TABLE {name} {change}" for column in columns for change in column.changes]
    return TableDefinition(statements=statements, indexes=_indexes(cursor, table))


@dataclass(frozen=True)
class _ColumnSql:
    definition: str  # as CREATE TABLE has it
    changes: tuple[str, ...]  # ALTER COLUMN clauses for what CREATE TABLE cannot say on every version


def _columns(cursor: psycopg2.extensions.cursor, table: str) -> list[_ColumnSql]:
    cursor.execute(
        """
        SELECT quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),
               CASE WHEN a.attcollation <> t.typcollation THEN quote_ident(co.collname) END,
               pg_get_expr(d.adbin, d.adrelid), a.attgenerated, a.attidentity, a.attnotnull,
               CASE WHEN a.attidentity <> '' THEN pg_get_serial_sequence(%s, a.attname)::regclass::oid END,
               CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage::text END,
               CASE a.attcompression WHEN 'p' THEN 'pglz' WHEN 'l' THEN 'lz4' END
        FROM pg_attribute a
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_collation co ON co.oid = a.attcollation
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        (regclass_literal(cursor, table), regclass_literal(cursor, table)),
    )
    return [_column(cursor, *row) for row in cursor.fetchall()]


STORAGE = {"p": "PLAIN", "e": "EXTERNAL", "m": "MAIN", "x": "EXTENDED"}


def _column(
    cursor: psycopg2.extensions.cursor, name: str, type_name: str, collation: str | None, expression: str | None,
    generated: str, identity: str, not_null: bool, identity_sequence: int | None, storage: str | None,
    compression: str | None,
) -> _ColumnSql:
    parts = [name, type_name]
    if collation:
        parts.append(f"COLLATE {collation}")
    if generated:
        parts.append(f"GENERATED ALWAYS AS ({expression}) " + ("STORED" if generated == "s" else "VIRTUAL"))
    elif identity:
        parts.append("GENERATED " + ("ALWAYS" if identity == "a" else "BY DEFAULT") + " AS IDENTITY "
                     f"(SEQUENCE NAME {_sequence_name(cursor, identity_sequence)} "
                     f"{_sequence_options(cursor, identity_sequence, with_type=False)})")
    elif expression is not None:
        parts.append(f"DEFAULT {expression}")
    if not_null:
        parts.append("NOT NULL")
    changes = ((f"ALTER COLUMN {name} SET STORAGE {STORAGE[storage]}",) if storage else ()) + (
        (f"ALTER COLUMN {name} SET COMPRESSION {compression}",) if compression else ())
    return _ColumnSql(" ".join(parts), changes)


def _sequence_name(cursor: psycopg2.extensions.cursor, sequence: int) -> str:
    """Unqualified when the search path finds it, as the set's table is named."""
    cursor.execute(
        """
        SELECT CASE WHEN pg_table_is_visible(s.oid) THEN quote_ident(s.relname)
                    ELSE quote_ident(n.nspname) || '.' || quote_ident(s.relname) END
        FROM pg_class s JOIN pg_namespace n ON n.oid = s.relnamespace WHERE s.oid = %s
        """,
        (sequence,),
    )
    return cursor.fetchone()[0]


def _sequence_options(cursor: psycopg2.extensions.cursor, sequence: int, *, with_type: bool = True) -> str:
    """The sequence's type, start, step, bounds, cache and cycle, as CREATE SEQUENCE takes them: a
    serial column's sequence is an integer one, which a bare CREATE SEQUENCE would make bigint."""
    cursor.execute(
        """
        SELECT format_type(seqtypid, NULL), seqstart, seqincrement, seqmin, seqmax, seqcache, seqcycle
        FROM pg_sequence WHERE seqrelid = %s
        """,
        (sequence,),
    )
    type_name, start, increment, minimum, maximum, cache, cycle = cursor.fetchone()
    options = f"START WITH {start} INCREMENT BY {increment} MINVALUE {minimum} MAXVALUE {maximum} CACHE {cache} "
    options += "CYCLE" if cycle else "NO CYCLE"
    return f"AS {type_name} {options}" if with_type else options


def _constraints(cursor: psycopg2.extensions.cursor, table: str) -> list[str]:
    cursor.execute(
        """
        SELECT quote_ident(conname), pg_get_constraintdef(oid), contype::text FROM pg_constraint
        WHERE conrelid = %s::regclass AND contype = ANY (%s)
        """,
        (regclass_literal(cursor, table), list(CONSTRAINT_ORDER)),
    )
    rows = sorted(cursor.fetchall(), key=lambda row: (CONSTRAINT_ORDER.index(row[2]), row[0]))
    return [f"CONSTRAINT {name} {definition}" for name, definition, _ in rows]


def _serial_sequences(cursor: psycopg2.extensions.cursor, table: str) -> list[tuple[str, str, str]]:
    """(sequence, column, its options) for each sequence a column owns as ``serial`` does (not identity)."""
    cursor.execute(
        """
        SELECT CASE WHEN pg_table_is_visible(s.oid) THEN quote_ident(s.relname)
                    ELSE quote_ident(n.nspname) || '.' || quote_ident(s.relname) END,
               quote_ident(a.attname), s.oid
        FROM pg_depend d
        JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        JOIN pg_namespace n ON n.oid = s.relnamespace
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.refobjid = %s::regclass AND d.classid = 'pg_class'::regclass AND d.deptype = 'a'
        ORDER BY a.attnum
        """,
        (regclass_literal(cursor, table),),
    )
    return [(sequence, column, _sequence_options(cursor, oid)) for sequence, column, oid in cursor.fetchall()]


def _indexes(cursor: psycopg2.extensions.cursor, table: str) -> list[str]:
    """Every index that backs no constraint (HNSW, IVFFlat, GIN, expression, partial, unique),
    with its table named as the store names it (unqualified, unless the store names the schema)."""
    cursor.execute(
        """
        SELECT pg_get_indexdef(i.indexrelid), quote_ident(n.nspname) || '.' || quote_ident(t.relname),
               quote_ident(t.relname)
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE i.indrelid = %s::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
        ORDER BY c.relname
        """,
        (regclass_literal(cursor, table),),
    )
    rows = cursor.fetchall()
    if split_table(table)[0] is not None:
        return [definition for definition, _, _ in rows]
    return [definition.replace(f" ON {qualified} ", f" ON {bare} ", 1) for definition, qualified, bare in rows]


def create_table(cursor: psycopg2.extensions.cursor, definition: TableDefinition) -> None:
    for statement in definition.statements:
        cursor.execute(statement)


def indexes_to_build(cursor: psycopg2.extensions.cursor, table: str, definition: TableDefinition) -> list[SavedIndex]:
    """The table's indexes from its definition, to build (sized and watched as a restore's
    rebuilds are) after its rows are in."""
    schema, name = split_table(table)
    if schema is None:
        cursor.execute("SELECT current_schema()")
        (schema,) = cursor.fetchone()
    return [
        SavedIndex(schema, name, _index_name(statement), statement, None, None, False, ())
        for statement in definition.indexes
    ]


def _index_name(statement: str) -> str:
    """The name in ``CREATE [UNIQUE] INDEX name ON ...``, unquoted."""
    name = statement.split(" ON ", 1)[0].split()[-1]
    return name[1:-1].replace('""', '"') if name.startswith('"') else name
