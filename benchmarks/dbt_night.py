"""One ordinary night's dbt build on top of a given history, with the seconds of every model.

Two steps, so that one (expensive) history serves many timed nights:

``prepare``: a fresh database ``--db``, the loader through ``--through`` on ``--landing`` and a full
``dbt build``; the database is then kept as a template (``<db>_tpl``).
``night``: a copy of the template, the loader through ``--night`` on ``--night-landing`` (default
``--landing``) and an incremental ``dbt build``; prints the build's seconds and the slowest models
(``target/run_results.json``).

Run e.g.::

    .venv/bin/python benchmarks/dbt_night.py prepare --db big --landing DIR --through 2025-01-08
    .venv/bin/python benchmarks/dbt_night.py night --db big --night-landing DIR2 --night 2025-01-16

The night's landing may be another directory (e.g. a small city's one night, its dates after the
history's): only files with business dates after ``--through`` are new to the ledger.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time

from yibao import pg
from yibao.transform import DBT_PROJECT_DIR


def _models_seconds() -> list[tuple[str, float, str]]:
    data = json.loads((DBT_PROJECT_DIR / "target" / "run_results.json").read_text())
    out = []
    for r in data["results"]:
        if r["unique_id"].startswith(("model.", "seed.")):
            out.append((r["unique_id"].split(".")[-1], r["execution_time"], r.get("adapter_response", {}).get("_message", "")))
    return sorted(out, key=lambda x: -x[1])


def _explain(model: str, night: dt.date, url: str) -> None:
    """Build the model's parents for the night, then EXPLAIN ANALYZE the model's night query
    (rolled back) and print the plan."""
    import psycopg2

    from yibao.transform import run_dbt

    run_dbt(["run", "--select", f"+{model}", "--exclude", model], as_of=night, url=url)
    run_dbt(["compile", "--select", model], as_of=night, url=url)
    sql = next((DBT_PROJECT_DIR / "target" / "compiled").rglob(f"{model}.sql")).read_text()
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute("explain (analyze, buffers) " + sql)
        print("\n".join(r[0] for r in cur.fetchall()))
    conn.rollback()
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["prepare", "night", "explain"])
    ap.add_argument("--db", required=True)
    ap.add_argument("--landing")
    ap.add_argument("--through", type=dt.date.fromisoformat)
    ap.add_argument("--night-landing")
    ap.add_argument("--night", type=dt.date.fromisoformat)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--model", default="int_claims_with_deductions",
                    help="explain: the model whose night query is explained")
    args = ap.parse_args()
    pg.start()
    from pathlib import Path

    from yibao import db
    from yibao.loader import load_landing
    from yibao.pseudonym import Pseudonymiser
    from yibao.transform import build

    pseudo = Pseudonymiser(b"benchmark-key-0123456789")
    name = f"yibao_night_{args.db}"
    tpl = f"{name}_tpl"
    url = pg.url(database=name)
    os.environ["YIBAO_DATABASE_URL"] = url
    if args.step == "prepare":
        pg.admin_sql([f'drop database if exists "{name}"', f'drop database if exists "{tpl}"', f'create database "{name}"'])
        db.bootstrap()
        t = time.perf_counter()
        n0 = load_landing(Path(args.landing), args.through, url=url, pseudonymise=pseudo, show_progress=False)
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        build(as_of=args.through, url=url)
        full_s = time.perf_counter() - t
        rows = sum(f.rows_loaded for f in n0.files if not f.file.is_reference)
        print(f"history through {args.through}: {rows:,} rows, load {load_s:.1f} s, full build {full_s:.1f} s")
        for m, s, msg in _models_seconds()[: args.top]:
            print(f"  {m:<48} {s:8.2f} s  {msg}")
        pg.admin_sql([f'create database "{tpl}" template "{name}"'])
        return
    pg.admin_sql([f'drop database if exists "{name}"', f'create database "{name}" template "{tpl}"'])
    db.bootstrap()  # new infra/sql files (e.g. indexes) reach a template prepared before them
    landing = Path(args.night_landing or args.landing)
    t = time.perf_counter()
    n1 = load_landing(landing, args.night, url=url, pseudonymise=pseudo, show_progress=False)
    load_s = time.perf_counter() - t
    if args.step == "explain":
        _explain(args.model, args.night, url)
        return
    t = time.perf_counter()
    build(as_of=args.night, url=url)
    incr_s = time.perf_counter() - t
    rows = sum(f.rows_loaded for f in n1.files if not f.file.is_reference)
    print(f"night {args.night}: {rows:,} rows, load {load_s:.1f} s, incremental build {incr_s:.1f} s "
          f"(load average {os.getloadavg()[0]:.2f})")
    for m, s, msg in _models_seconds()[: args.top]:
        print(f"  {m:<48} {s:8.2f} s  {msg}")


if __name__ == "__main__":
    main()
