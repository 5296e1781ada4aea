"""SQLAlchemy engines for the clients, from the libpq DSN the tests hand them in CLIENT_PG_DSN
(an environment variable, so a password never shows in a process list).

``exact=True`` turns the server's index and bitmap scans off on every connection, through the
driver's connect options: the client's similarity search then reads every row, and its answers
are exact. A rebuilt HNSW graph may answer a few approximate queries differently even when every
row is identical, so exact answers are what a round trip is compared on.
"""

from __future__ import annotations

import os

import psycopg2.extensions
from sqlalchemy import URL, Engine, create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DSN_VARIABLE = "CLIENT_PG_DSN"
EXACT_SETTINGS = {"enable_indexscan": "off", "enable_bitmapscan": "off", "enable_indexonlyscan": "off"}


def url(driver: str) -> URL:
    """The DSN as SQLAlchemy spells it for ``driver``; a socket folder goes in the query."""
    params = psycopg2.extensions.parse_dsn(os.environ[DSN_VARIABLE])
    host = params.get("host")
    on_socket = bool(host) and host.startswith("/")
    return URL.create(
        f"postgresql+{driver}",
        username=params.get("user"),
        password=params.get("password") or None,
        host=None if on_socket else host,
        port=int(params["port"]) if params.get("port") and not on_socket else None,
        database=params.get("dbname"),
        query=_socket_query(host, params.get("port")) if on_socket else {},
    )


def _socket_query(folder: str, port: str | None) -> dict[str, str]:
    return {"host": folder, **({"port": port} if port else {})}


def connect_args(driver: str, exact: bool) -> dict:
    """The driver's connect options; with ``exact``, the settings that make searches exact."""
    if not exact:
        return {}
    if driver == "asyncpg":
        return {"server_settings": dict(EXACT_SETTINGS)}
    return {"options": " ".join(f"-c {name}={value}" for name, value in EXACT_SETTINGS.items())}


def sync_engine(driver: str = "psycopg2", *, exact: bool = False) -> Engine:
    return create_engine(url(driver), connect_args=connect_args(driver, exact))


def async_engine(driver: str, *, exact: bool = False) -> AsyncEngine:
    return create_async_engine(url(driver), connect_args=connect_args(driver, exact))


def require_exact(engine: Engine) -> None:
    """The connect options took: the server plans no index or bitmap scan on this engine's
    connections (a client that ignored them would answer approximately, and pass by luck)."""
    with engine.connect() as connection:
        found = {name: connection.execute(text(f"SHOW {name}")).scalar() for name in EXACT_SETTINGS}
    if found != EXACT_SETTINGS:
        raise RuntimeError(f"index scans are not off on the client's connections: {found}")
