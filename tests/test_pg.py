"""The embedded PostgreSQL: the configured port is the one it listens on, and a clash is named."""

from __future__ import annotations

import dataclasses

import psycopg2
import pytest


def test_the_configured_port_wins_over_the_one_written_at_initdb(tmp_path, free_port):
    from yibao import pg
    from yibao.config import Settings

    first = Settings(home=tmp_path / "home", database_url=None, pg_port=free_port())
    second = dataclasses.replace(first, pg_port=free_port())
    pg.start(first)
    try:
        assert pg.running_port(first) == first.pg_port
        with pytest.raises(pg.PostgresError, match=f"already running on port {first.pg_port}"):
            pg.start(second)  # same data directory, another port, while running: said plainly
        pg.stop(first)
        assert pg.running_port(first) is None

        url = pg.start(second)  # postgresql.conf still says the first port
        assert pg.running_port(second) == second.pg_port
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("show port")
            assert cur.fetchone()[0] == str(second.pg_port)
    finally:
        pg.stop(first)
