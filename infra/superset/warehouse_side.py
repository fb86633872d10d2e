"""The warehouse side of the Superset proof (runs with the project's own Python, not Superset's).

    python infra/superset/warehouse_side.py bi-login        # print a bi_reader URL for Superset
    python infra/superset/warehouse_side.py fixture         # publish the §7 sample as marts (empty warehouse only)

``bi-login`` creates (or re-keys) the LOGIN user ``superset_bi`` in group bi_reader with a random
password kept in ``$YIBAO_HOME/superset/bi_password`` (0600), through infra/bootstrap_roles.py: the
same path as production. With an external warehouse, give Superset the URL of the ``superset``
login of YIBAO_DB_LOGINS instead (YIBAO_BI_URL): this command refuses to create users there.

``fixture`` builds infra/fixtures/marts_sample.sql in ``marts_build`` and publishes it the way the
nightly publish does (schema swap + audit.apply_marts_security) — only when ``marts`` holds no
table, so it can never overwrite a real night.
"""

from __future__ import annotations

import importlib.util
import secrets
import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
BI_USER = "superset_bi"


def _bootstrap_roles():
    spec = importlib.util.spec_from_file_location(
        "bootstrap_roles", ROOT / "infra" / "bootstrap_roles.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def bi_login() -> str:
    from yibao import db, pg
    from yibao.config import settings

    s = settings()
    if not s.embedded:
        raise SystemExit(
            "external warehouse: set YIBAO_BI_URL to the bi_reader login of YIBAO_DB_LOGINS"
        )
    pg.start(s)
    key = s.home / "superset" / "bi_password"
    key.parent.mkdir(parents=True, exist_ok=True)
    if not key.exists():
        key.write_text(secrets.token_hex(24), encoding="utf-8")
        key.chmod(0o600)
    password = key.read_text(encoding="utf-8").strip()
    br = _bootstrap_roles()
    conn = db.connect()
    try:
        db.bootstrap(conn)
        br.ensure_logins(
            conn, br.parse_logins(f"{BI_USER}:bi_reader"), {BI_USER: password}
        )
    finally:
        conn.close()
    return f"postgresql://{BI_USER}:{quote(password)}@127.0.0.1:{s.pg_port}/yibao"


def publish_fixture() -> int:
    from yibao import db

    sql = (ROOT / "infra" / "fixtures" / "marts_sample.sql").read_text(encoding="utf-8")
    conn = db.connect()
    try:
        db.bootstrap(conn)
        with conn, conn.cursor() as cur:
            cur.execute("select count(*) from pg_tables where schemaname = 'marts'")
            if cur.fetchone()[0]:
                print(
                    "marts already holds tables: the fixture is not published over them",
                    file=sys.stderr,
                )
                return 0
            cur.execute("drop schema if exists marts_build cascade")
            cur.execute("create schema marts_build authorization yibao_transformer")
            cur.execute("set local role yibao_transformer")
            cur.execute("set local search_path = marts_build")
            cur.execute(sql)
            cur.execute("set local search_path = pg_catalog")
            cur.execute("alter schema marts rename to marts_previous")
            cur.execute("alter schema marts_build rename to marts")
            cur.execute("alter schema marts_previous rename to marts_build")
            cur.execute("select audit.apply_marts_security('marts')")
            n = cur.fetchone()[0]
        print(f"published the marts sample: {n} objects secured")
        return n
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    if argv[:1] == ["bi-login"]:
        print(bi_login())
    elif argv[:1] == ["fixture"]:
        publish_fixture()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
