"""Connections to the warehouse and its bootstrap (infra/sql, in file-name order)."""

from __future__ import annotations

from pathlib import Path

from . import pg
from .config import PROJECT_ROOT

INFRA_SQL = PROJECT_ROOT / "infra" / "sql"


def connect(database: str | None = None, **kwargs):
    import psycopg2

    return psycopg2.connect(pg.url(database=database) if database else pg.url(), **kwargs)


def bootstrap(conn=None) -> list[str]:
    """Create schemas, roles and raw tables; idempotent. Returns the files applied."""
    own = conn is None
    conn = conn or connect()
    applied = []
    try:
        with conn.cursor() as cur:
            for path in sorted(Path(INFRA_SQL).glob("*.sql")):
                cur.execute(path.read_text(encoding="utf-8"))
                applied.append(path.name)
        conn.commit()
    finally:
        if own:
            conn.close()
    return applied
