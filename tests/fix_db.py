"""A real TimescaleDB database for each test, made from a template."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.services import missing_service

DEFAULT_DSN = "postgresql://streamflow:streamflow@127.0.0.1:5432/streamflow_test"
_TEMPLATE = "sf_template_v1"  # bump when the template must change


def server_dsn() -> str:
    """The DSN of the test server (STREAMFLOW_TEST_DSN or the default)."""
    return os.environ.get("STREAMFLOW_TEST_DSN", DEFAULT_DSN)


def _with_db(dsn: str, dbname: str) -> str:
    """The same server's DSN naming another database, in the DSN's own form."""
    if "://" in dsn:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(dsn)
        return urlunsplit(parts._replace(path=f"/{dbname}"))
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def _pg_template() -> str:
    """Make (once a session) a template database with TimescaleDB in it."""
    try:
        import psycopg
    except ImportError:
        missing_service("psycopg (pip install -e '.[all,test]')")
    try:
        conn = psycopg.connect(server_dsn(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        missing_service(f"TimescaleDB at {server_dsn()!r}: {exc}")
    with conn:
        # Parallel pytest sessions share the server: make the template once,
        # under a lock, and never drop it while another session copies it.
        conn.execute("SELECT pg_advisory_lock(726354)")
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (_TEMPLATE,)
        ).fetchone()
        if not exists:
            conn.execute(f"CREATE DATABASE {_TEMPLATE}")
            with psycopg.connect(
                _with_db(server_dsn(), _TEMPLATE), autocommit=True
            ) as tconn:
                tconn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            # TimescaleDB's scheduler connects to every database with the
            # extension and stays, and CREATE DATABASE ... TEMPLATE then fails
            # ("being accessed by other users"): a template that allows no
            # connections gets no scheduler and can still be copied.
            conn.execute(f"ALTER DATABASE {_TEMPLATE} WITH ALLOW_CONNECTIONS false")
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [_TEMPLATE],
            )
        conn.execute("SELECT pg_advisory_unlock(726354)")
    return _TEMPLATE


@pytest.fixture
def pg_dsn(_pg_template) -> Iterator[str]:
    """The DSN of a new, empty database with TimescaleDB, dropped afterwards."""
    import psycopg

    name = f"sf_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {_pg_template}")
    yield _with_db(server_dsn(), name)
    with psycopg.connect(server_dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
