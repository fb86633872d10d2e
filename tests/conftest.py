"""Shared fixtures: a private embedded PostgreSQL per test session (per xdist worker)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

TEST_KEY = "test-pseudonym-key-not-a-secret-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """A function giving a TCP port free on 127.0.0.1 now (for a private embedded server)."""
    return _free_port


@pytest.fixture(scope="session")
def yibao_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("yibao_home")
    os.environ["YIBAO_HOME"] = str(home)
    os.environ["YIBAO_PG_PORT"] = str(_free_port())
    os.environ["YIBAO_PSEUDONYM_KEY"] = TEST_KEY
    os.environ.pop("YIBAO_DATABASE_URL", None)
    return home


@pytest.fixture(scope="session")
def warehouse(yibao_home) -> str:
    """URL of a bootstrapped, empty warehouse on a private embedded PostgreSQL."""
    from yibao import db, pg

    url = pg.start()
    db.bootstrap()
    yield url
    pg.stop()


def reset_warehouse() -> None:
    """Drop and re-create the warehouse schemas (raw, audit, dbt's) of the session's server."""
    from yibao import db

    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "select nspname from pg_namespace where nspname in"
            " ('raw', 'audit', 'staging', 'intermediate', 'seeds', 'marts', 'marts_build', 'marts_check')"
        )
        for (schema,) in cur.fetchall():
            cur.execute(f"drop schema {schema} cascade")
    db.bootstrap()


def dbt_log_of(build):
    """Run ``build()`` and return what it wrote to dbt.log (the macros' ``log(..., info=true)``
    lines among it) and its result."""
    from yibao import transform

    log = transform.log_dir() / "dbt.log"
    start = log.stat().st_size if log.exists() else 0
    result = build()
    with log.open("rb") as f:
        f.seek(start)
        return f.read().decode("utf-8", "replace"), result


def render_sql(url: str, jinja: str, as_of) -> str:
    """The SQL that dbt renders for `jinja` in this project (dbt compile --inline, no model run)."""
    from dbt.cli.main import dbtRunner

    from yibao import transform

    vars_ = {"marts_schema": "marts_check", "as_of_date": as_of.isoformat()}
    with transform._environment(transform.connection_env(url)):
        result = dbtRunner().invoke(["compile", "--inline", jinja, *transform._common_args(vars_), *transform._log_args()])
    assert result.success, result.exception
    return result.result.results[0].node.compiled_code


@pytest.fixture
def clean_warehouse(warehouse) -> str:
    """The session warehouse emptied, for a test that loads from scratch."""
    reset_warehouse()
    return warehouse


@pytest.fixture(scope="module")
def module_warehouse(warehouse) -> str:
    """The session warehouse emptied once for a whole module (e.g. one expensive DAG run shared by its tests)."""
    reset_warehouse()
    return warehouse
