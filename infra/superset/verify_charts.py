"""Run every chart of the imported dashboard through Superset, as bi_reader, and check the answers.

Runs in Superset's virtualenv after verify.sh has imported infra/superset/dashboard and pointed its
database at the warehouse. For each chart of the dashboard: GET /api/v1/chart/<id>/data/ (Superset
builds the SQL from the chart's saved query and runs it on the warehouse), then the same SQL is run
directly on the warehouse with the same login and the row counts must agree. Then, through SQL Lab,
Superset's connection must be a non-superuser member of bi_reader and must be refused raw data.
Exit status 0 only if everything holds. Prints one line per chart with rows and seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from superset_api import SupersetAPI, create_app

SLUG = "yibao-fund-oversight"


def sqllab(api: SupersetAPI, database_id: int, sql: str) -> dict:
    r = api.client.post(
        "/api/v1/sqllab/execute/",
        headers=api.headers,
        json={
            "database_id": database_id,
            "sql": sql,
            "runAsync": False,
            "schema": "marts",
            "client_id": f"v{time.monotonic_ns() % 10**9}",
            "queryLimit": 100,
        },
    )
    return {"status": r.status_code, **(r.get_json() or {})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bi-url",
        default=os.environ.get("YIBAO_BI_URL"),
        required=not os.environ.get("YIBAO_BI_URL"),
    )
    parser.add_argument(
        "--admin-user", default=os.environ.get("SUPERSET_ADMIN_USER", "admin")
    )
    parser.add_argument(
        "--admin-password", default=os.environ.get("SUPERSET_ADMIN_PASSWORD")
    )
    args = parser.parse_args()

    import psycopg2

    app = create_app()
    logging.disable(
        logging.ERROR
    )  # refused queries below are expected; Superset would log tracebacks
    api = SupersetAPI(app, args.admin_user, args.admin_password)
    dashboard = api.get(f"/api/v1/dashboard/{SLUG}")["result"]
    charts = api.get(f"/api/v1/dashboard/{SLUG}/charts")["result"]
    failures: list[str] = []
    print(f"dashboard {dashboard['dashboard_title']!r}: {len(charts)} charts")
    warehouse = psycopg2.connect(args.bi_url)
    warehouse.autocommit = True
    for chart in sorted(charts, key=lambda c: c["id"]):
        started = time.perf_counter()
        r = api.client.get(
            f"/api/v1/chart/{chart['id']}/data/?format=json&force=true",
            headers=api.headers,
        )
        seconds = time.perf_counter() - started
        body = r.get_json() or {}
        results = body.get("result") or []
        if (
            r.status_code != 200
            or not results
            or any(x.get("status") != "success" for x in results)
        ):
            failures.append(
                f"{chart['slice_name']}: HTTP {r.status_code} {str(body)[:500]}"
            )
            print(f"  FAIL {chart['slice_name']}: HTTP {r.status_code}")
            continue
        rows = sum(x.get("rowcount", 0) for x in results)
        direct = 0
        for x in results:
            with warehouse.cursor() as cur:
                cur.execute(x["query"])
                direct += cur.rowcount
        ok = rows > 0 and rows == direct
        if not ok:
            failures.append(
                f"{chart['slice_name']}: Superset {rows} rows, warehouse {direct} rows"
            )
        print(
            f"  {'ok  ' if ok else 'FAIL'} {chart['slice_name']}: {rows} rows ({seconds:.2f} s)"
        )

    database = api.find(
        "database",
        "database_name",
        dashboard.get("database_name") or "医保数据仓库 (bi_reader)",
    )
    if database is None:
        failures.append("the imported database connection is missing")
    else:
        # SQL Lab refuses current_user and pg_roles (Superset's own guard), so ask through the same
        # stored connection from inside Superset: its engine, its decrypted password
        with app.app_context():
            from sqlalchemy import text
            from superset import db as metadata
            from superset.models.core import Database

            stored = metadata.session.get(Database, database["id"])
            with stored.get_sqla_engine() as engine, engine.connect() as conn:
                login, is_bi, privileged = conn.execute(
                    text(
                        "select current_user, pg_has_role(current_user, 'bi_reader', 'MEMBER'),"
                        " (select rolsuper or rolbypassrls from pg_roles where rolname = current_user)"
                    )
                ).one()
        print(
            f"  Superset connects as {login}: member of bi_reader={is_bi}, superuser/bypassrls={privileged}"
        )
        if not (is_bi is True and privileged is False):
            failures.append(
                f"Superset does not connect as a plain bi_reader login ({login})"
            )
        for sql in (
            "select count(*) from raw.claim",
            "select count(*) from raw.quarantine",
            "select count(*) from audit.hospital_county",
        ):
            denied = sqllab(api, database["id"], sql)
            text = str(denied)
            if "permission denied" not in text:
                failures.append(f"{sql!r} was not refused: {text[:300]}")
            print(
                f"  SQL Lab {sql!r}: {'refused (permission denied)' if 'permission denied' in text else 'NOT refused'}"
            )
    warehouse.close()
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"all {len(charts)} charts answered through Superset as bi_reader")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
