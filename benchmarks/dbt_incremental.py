"""dbt build time of one night on top of 7 and of 60 days of history (incremental models).

For each history length H: a fresh database, the loader and a full ``dbt build`` through day H, then
the next night loaded and built incrementally; prints the seconds of that last build. A night's build
should cost in proportion to the night, so the two figures should be close.

Run: ``.venv/bin/python benchmarks/dbt_incremental.py [--hospitals 6 --volume 1.0]``. Prints figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time

from yibao import pg
from yibao.config import settings

START = dt.date(2025, 1, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hospitals", type=int, default=6)
    ap.add_argument("--volume", type=float, default=1.0)
    ap.add_argument("--history", type=int, nargs="+", default=[7, 60])
    args = ap.parse_args()
    pg.start()
    home = settings().home / "bench"
    landing = home / f"incr_h{args.hospitals}_v{args.volume:g}"
    last = START + dt.timedelta(days=max(args.history))
    if not (landing / "reference").exists():
        from yibao.generator import generate_city

        print(generate_city(landing, seed=5, hospitals=args.hospitals, start=START, end=last, volume=args.volume,
                            defect_rate=0.0))
    import psycopg2

    from yibao import db
    from yibao.loader import load_landing
    from yibao.pseudonym import Pseudonymiser
    from yibao.transform import build

    pseudo = Pseudonymiser(b"benchmark-key-0123456789")
    results = []
    for history in args.history:
        name = f"yibao_incr_{history}"
        admin = psycopg2.connect(pg.url(database="postgres"))
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'drop database if exists "{name}"')
            cur.execute(f'create database "{name}"')
        admin.close()
        url = pg.url(database=name)
        os.environ["YIBAO_DATABASE_URL"] = url
        db.bootstrap()
        base = START + dt.timedelta(days=history - 1)
        night = base + dt.timedelta(days=1)
        t = time.perf_counter()
        n0 = load_landing(landing, base, url=url, pseudonymise=pseudo, show_progress=False)
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        build(as_of=base, url=url)
        full_s = time.perf_counter() - t
        n1 = load_landing(landing, night, url=url, pseudonymise=pseudo, show_progress=False)
        t = time.perf_counter()
        build(as_of=night, url=url)
        incr_s = time.perf_counter() - t
        hist_rows = sum(f.rows_loaded for f in n0.files if not f.file.is_reference)
        night_rows = sum(f.rows_loaded for f in n1.files if not f.file.is_reference)
        results.append((history, hist_rows, load_s, full_s, night_rows, incr_s))
        os.environ.pop("YIBAO_DATABASE_URL", None)
    print(f"\n{'history':>8} {'rows':>10} {'load s':>8} {'full build s':>13} {'night rows':>11} {'night build s':>14}")
    for h, rows, load_s, full_s, nrows, incr_s in results:
        print(f"{h:>7}d {rows:>10,} {load_s:>8.1f} {full_s:>13.1f} {nrows:>11,} {incr_s:>14.1f}")


if __name__ == "__main__":
    main()
