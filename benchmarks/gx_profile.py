"""Time every GX expectation's query of a run, as GX runs it, and EXPLAIN ANALYZE the slow ones.

GX's ``UnexpectedRowsExpectation`` runs each check's SQL twice (``select count(*) from (<query>)``,
then the query itself to list the failing rows), over the asset view with the run's session settings
(``yibao.dq_run_id``; for the marts stage ``search_path`` = the schema validated). This script does
the same outside GX, one expectation at a time, and prints the seconds of each, slowest first, so a
check whose cost grows with history shows up by name.

Usage (the run must be registered, e.g. by a ``validate_night`` / ``validate_marts`` call, or here
with ``--register-raw-loads all|night:<business date>``)::

    .venv/bin/python benchmarks/gx_profile.py --stage raw --run-id <run_id> [--explain 3]
    .venv/bin/python benchmarks/gx_profile.py --stage marts --run-id <run_id> --schema marts_build

Prints figures only; it changes nothing but the run's registration when asked to register one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GX = ROOT / "expectations"


def checks(stage: str) -> list[tuple[str, str, str, str]]:
    """(suite, check, asset relation, query with {batch} left in) of the stage's checkpoint."""
    from yibao.quality import CHECKPOINTS

    cfg = yaml.safe_load((GX / "great_expectations.yml").read_text(encoding="utf-8"))
    assets = cfg["fluent_datasources"]["warehouse"]["assets"]
    cp = json.loads((GX / "checkpoints" / f"{CHECKPOINTS[stage]}.json").read_text(encoding="utf-8"))
    out = []
    for vd_ref in cp["validation_definitions"]:
        suite = json.loads((GX / "expectations" / f"{vd_ref['name']}.json").read_text(encoding="utf-8"))
        asset = assets[suite["meta"]["asset"]]
        relation = f"{asset['schema_name']}.{asset['table_name']}"
        for e in suite["expectations"]:
            out.append((suite["name"], e["meta"]["check"], relation, e["kwargs"]["unexpected_rows_query"]))
    return out


def render(query: str, relation: str) -> str:
    # GX substitutes {batch} with the table and unescapes doubled braces (str.format)
    return query.format(batch=relation)


def main() -> None:
    import psycopg2

    from yibao import pg
    from yibao.quality import _register_run

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["raw", "marts"], default="raw")
    ap.add_argument("--run-id", required=True)
    ap.add_argument("--schema", default="marts_build", help="marts stage: the schema validated")
    ap.add_argument("--url", default=None)
    ap.add_argument("--register-raw-loads", default=None,
                    help="register the raw run first: 'all' (every ledger load, a catch-up) or 'night:YYYY-MM-DD'"
                         " (every load from the first of that business date on)")
    ap.add_argument("--as-of", type=dt.date.fromisoformat, default=None, help="night/as-of date when registering")
    ap.add_argument("--explain", type=int, default=0, help="EXPLAIN ANALYZE the N slowest checks")
    ap.add_argument("--only", default=None, help="substring of suite.check to run")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    url = args.url or pg.url()

    conn = psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    if args.register_raw_loads:
        if args.register_raw_loads == "all":
            cur.execute("select load_id from raw.load_ledger order by 1")
        else:
            day = dt.date.fromisoformat(args.register_raw_loads.split(":", 1)[1])
            cur.execute("select load_id from raw.load_ledger where load_id >= (select min(load_id)"
                        " from raw.load_ledger where business_date = %s) order by 1", (day,))
        ids = [r[0] for r in cur.fetchall()]
        cur.execute("select max(business_date) from raw.load_ledger")
        night = args.as_of or cur.fetchone()[0]
        with psycopg2.connect(url) as c2:
            _register_run(c2, args.run_id, "raw", night, load_ids=ids)
        print(f"registered raw run {args.run_id}: {len(ids)} loads, night {night}")
    cur.execute("select set_config('yibao.dq_run_id', %s, false)", (args.run_id,))
    if args.stage == "marts":
        cur.execute(f"set search_path = {args.schema}")

    timings = []
    if args.stage == "raw" and any("audit.dq_night_row_findings" in q for *_, q in checks("raw")):
        # the one-scan row checks run before the checkpoint (yibao.quality._row_checks)
        from yibao.quality import CHECKPOINTS, _row_checks

        t = time.perf_counter()
        with psycopg2.connect(url) as c2:
            _row_checks(c2, args.run_id, CHECKPOINTS["raw"])
        t_pass = time.perf_counter() - t
        timings.append((t_pass, 0.0, t_pass, 0, "(row checks: one scan per asset)", "-- yibao.quality._row_checks"))
        print(f"  {t_pass:8.2f}s  row checks, one scan per asset", flush=True)
    for suite, check, relation, query in checks(args.stage):
        name = f"{suite}.{check}"
        if args.only and args.only not in name:
            continue
        sql = render(query, relation)
        t = time.perf_counter()
        cur.execute(f"select count(*) from ({sql}) as substituted_batch_subquery")
        n = cur.fetchone()[0]
        t_count = time.perf_counter() - t
        t = time.perf_counter()
        cur.execute(sql)
        cur.fetchmany(200)
        t_rows = time.perf_counter() - t
        timings.append((t_count + t_rows, t_count, t_rows, n, name, sql))
        print(f"  {t_count + t_rows:8.2f}s  {name} ({n} rows)", flush=True)
    timings.sort(reverse=True)
    total = sum(t[0] for t in timings)
    print(f"\n{args.stage} stage, run {args.run_id}: {len(timings)} checks, {total:.1f} s of SQL "
          f"(count + rows, as GX runs them)")
    print(f"{'seconds':>8} {'count s':>8} {'rows s':>8} {'rows':>6}  check")
    for tot, tc, tr, n, name, _ in timings[: args.top]:
        print(f"{tot:8.2f} {tc:8.2f} {tr:8.2f} {n:>6}  {name}")
    for tot, _, _, _, name, sql in [t for t in timings if not t[5].startswith("--")][: args.explain]:
        cur.execute("explain (analyze, buffers, costs off, timing off) " + sql)
        print(f"\n=== EXPLAIN ANALYZE {name} ({tot:.2f} s)")
        print("\n".join(r[0] for r in cur.fetchall()))
    conn.close()


if __name__ == "__main__":
    main()
