"""Write cost of the raw natural-key indexes (infra/sql/035_raw_indexes.sql) on COPY.

Two databases loaded with the same history by the real loader (``--landing`` through
``--through``): one with the indexes, one with them dropped. The next night's files (``--night``)
are loaded once with the loader into the first; its raw rows (claim, usage, purchase) are then
written out with ``COPY … TO`` and timed with ``COPY … FROM`` into each database, alternately,
``--repeat`` times (deleted again between rounds). That is the loader's own storage step (it COPYs
its checked rows), so the ratio is the indexes' cost on the loader's write path; the loader's
checks, hashing and pseudonymisation cost the same either way.

Run: ``.venv/bin/python benchmarks/raw_index_write_cost.py --landing DIR --through 2025-01-02
--night 2025-01-03``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

from yibao import pg

INDEXES = ["raw.claim_natural_key_idx", "raw.usage_natural_key_idx", "raw.purchase_natural_key_idx"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--landing", required=True)
    ap.add_argument("--through", type=dt.date.fromisoformat, required=True)
    ap.add_argument("--night", type=dt.date.fromisoformat, required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reuse", action="store_true", help="keep the two databases of an earlier run")
    args = ap.parse_args()
    pg.start()
    import psycopg2

    from yibao import db
    from yibao.loader import load_landing
    from yibao.pseudonym import Pseudonymiser

    pseudo = Pseudonymiser(b"benchmark-key-0123456789")
    landing = Path(args.landing)
    sides = {"with indexes": "yibao_rawidx_with", "without": "yibao_rawidx_without"}
    for side, name in sides.items():
        if args.reuse:
            continue
        pg.admin_sql([f'drop database if exists "{name}"', f'create database "{name}"'])
        url = pg.url(database=name)
        conn = psycopg2.connect(url)
        db.bootstrap(conn)
        if side == "without":
            with conn.cursor() as cur:
                for ix in INDEXES:
                    cur.execute(f"drop index {ix}")
            conn.commit()
        conn.close()
        load_landing(landing, args.through, url=url, pseudonymise=pseudo, show_progress=False)
    import io

    tables = ("raw.claim", "raw.usage", "raw.purchase")
    first = pg.url(database=sides["with indexes"])
    load_landing(landing, args.night, since=args.night, url=first, pseudonymise=pseudo, show_progress=False)
    conn = psycopg2.connect(first)
    data = {}
    with conn.cursor() as cur:
        cur.execute("select load_id from raw.load_ledger where business_date = %s", (args.night,))
        ids = ",".join(str(r[0]) for r in cur.fetchall())
        for table in tables:
            buf = io.StringIO()
            cur.copy_expert(f"copy (select * from {table} where load_id in ({ids})) to stdout", buf)
            data[table] = buf.getvalue()
            cur.execute(f"delete from {table} where load_id in ({ids})")
    conn.commit()
    conn.close()
    rows = sum(v.count("\n") for v in data.values())
    best: dict[str, float] = {}
    for round_ in range(args.repeat):
        for side, name in sides.items():
            conn = psycopg2.connect(pg.url(database=name))
            with conn.cursor() as cur:
                t = time.perf_counter()
                for table in tables:
                    cur.copy_expert(f"copy {table} from stdin", io.StringIO(data[table]))
                conn.commit()
                secs = time.perf_counter() - t
                for table in tables:
                    cur.execute(f"delete from {table} where load_id in ({ids})")
            conn.commit()
            conn.close()
            rate = rows / secs
            best[side] = max(best.get(side, 0.0), rate)
            print(f"round {round_ + 1} {side:<13} {rows:>10,} rows {secs:7.2f} s {rate:>10,.0f} rows/s "
                  f"(load average {os.getloadavg()[0]:.2f})", flush=True)
    ratio = best["with indexes"] / best["without"]
    print(f"COPY best: with indexes {best['with indexes']:,.0f} rows/s, without {best['without']:,.0f} rows/s "
          f"({ratio:.2f}x)")


if __name__ == "__main__":
    main()
