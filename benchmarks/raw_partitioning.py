"""Does partitioning the raw extract tables by month of business_date pay at a year's scale?

    .venv/bin/python benchmarks/raw_partitioning.py [--rows 20000000] [--night-volume 3] [--nights 3]

Two scratch databases on the (embedded) server, each bootstrapped like the warehouse:
``yibao_bench_plain`` keeps ``raw.claim`` as it is; in ``yibao_bench_part`` it is range-partitioned by
month of business_date (one partition per month of the history and the nights, plus a default), with
the same BRIN index on load_id. Both get the same year of claim history (``--rows``, written by SQL,
10 % of them re-sends of a key delivered a month earlier). Then:

1. **The loader's real path**: a generated night of 100 hospitals (``yibao.generator``, all three
   extracts) is loaded by ``loader.load_files`` into each database in turn (interleaved, nights in
   the same order), and the claim file's server side alone (``COPY`` of the loader's own rows into
   ``raw.claim`` + BRIN summarising) is timed again on its own; both with and without a natural-key
   index (``hospital_code, settlement_id``), since staging may need one.
2. **Staging's "latest version" for one night**: for the night's claim rows, is there a newer version
   (the ``not exists`` of staging, bounded below by the night's first business date, which partition
   pruning can use), and the versions the night supersedes (any month: a re-send corrects an old key).
   With and without the natural-key index.
3. **Retention**: delete one month vs detach its partition.

Prints a Markdown table and the plans' partition counts; asserts nothing. Run it alone if you can:
on a shared machine compare the two columns of one run, not figures of different runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import re
import statistics
import sys
import time
from pathlib import Path

import psycopg2

from yibao import db, pg

DBS = {"plain": "yibao_bench_plain", "part": "yibao_bench_part"}
YEAR = dt.date(2025, 1, 1)
NIGHT0 = dt.date(2026, 1, 1)
KEY = b"benchmark-key-0123456789"

HISTORY = """
insert into raw.claim (load_id, business_date, source_file, source_row, settlement_id, hospital_code, visit_id,
                       patient_key, patient_sex, patient_birth_year, insurance_type, medical_category,
                       admission_date, discharge_date, settled_at, principal_diagnosis, drg_code, total_amount,
                       fund_paid, other_fund_paid, account_paid, cash_paid, negotiated_drug_amount)
select load_id, day, to_char(day, 'YYYYMMDD') || '/' || hosp || '/claim.csv', g %% 100000 + 1,
       'HS' || (case when ((g - 1) / %(n_hosp)s) %% 10 = 0 and g > %(back)s then g - %(back)s else g end), hosp, 'V' || g,
       lpad(to_hex(g * 2654435761), 64, 'a5'), case when g %% 2 = 0 then 'F' else 'M' end, 1940 + g %% 70,
       case when g %% 3 = 0 then '390' else '310' end, case when g %% 5 = 0 then '21' else '11' end,
       day - 3, day - 1, day + time '09:00', 'I25.102', null, 1000.00 + g %% 9000, 800.00 + g %% 7000, 0,
       100.00, 100.00, 0
from (
    select g, %(first_load)s + (g - 1) / %(per_load)s as load_id,
           %(year)s::date + ((g - 1) * 365 / %(rows)s)::int as day,
           (%(hospitals)s)[1 + (g %% %(n_hosp)s)] as hosp
    from generate_series(%(lo)s::bigint, %(hi)s::bigint) g
) s
"""


BRIN_OVERRIDE = """
create schema bench_override;
create function bench_override.brin_summarize_new_values(idx regclass) returns integer language plpgsql as $$
declare
    n integer := 0;
    leaf regclass;
begin
    if (select relkind from pg_class where oid = idx) = 'I' then
        for leaf in select relid from pg_partition_tree(idx) where isleaf loop
            n := n + pg_catalog.brin_summarize_new_values(leaf);
        end loop;
        return n;
    end if;
    return pg_catalog.brin_summarize_new_values(idx);
end $$;
"""


def timed(cur, sql: str, params=None) -> float:
    started = time.perf_counter()
    cur.execute(sql, params)
    return time.perf_counter() - started


def months(start: dt.date, end: dt.date):
    m = start.replace(day=1)
    while m <= end:
        nxt = (m.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        yield m, nxt
        m = nxt


def fresh(kind: str, last_night: dt.date) -> psycopg2.extensions.connection:
    admin = psycopg2.connect(pg.url(database="postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"drop database if exists {DBS[kind]} with (force)")
        cur.execute(f"create database {DBS[kind]}")
    admin.close()
    conn = psycopg2.connect(pg.url(database=DBS[kind]))
    db.bootstrap(conn)
    if kind == "part":
        with conn.cursor() as cur:
            # the bootstrap's columns, partitioned by month (the audit views are re-created below)
            cur.execute("alter table raw.claim rename to claim_plain")
            cur.execute("create table raw.claim (like raw.claim_plain including defaults) partition by range (business_date)")
            cur.execute("drop table raw.claim_plain cascade")
            for lo, hi in months(YEAR, last_night):
                cur.execute(f"create table raw.claim_{lo:%Y_%m} partition of raw.claim"
                            f" for values from ('{lo}') to ('{hi}')")
            cur.execute("create table raw.claim_default partition of raw.claim default")
            cur.execute("create index claim_load_brin on raw.claim using brin (load_id)")
            # The loader summarises raw.claim_load_brin after each COPY; on a partitioned index that
            # means its partitions' indexes. Shadow the function for this database only.
            cur.execute(BRIN_OVERRIDE)
            cur.execute(f"alter database {DBS[kind]} set search_path = bench_override, pg_catalog, \"$user\", public")
        conn.commit()
        db.bootstrap(conn)  # views and grants on the new parent
        conn.close()
        conn = psycopg2.connect(pg.url(database=DBS[kind]))
    conn.autocommit = False
    return conn


def fill_history(conn, rows: int, hospitals: list[str]) -> float:
    per_load = max(1, rows // 365 // len(hospitals))
    # a re-send names the key of the same hospital about a month earlier (never itself a re-send)
    back = len(hospitals) * (per_load * 30 + 1)
    started = time.perf_counter()
    step = 2_000_000
    with conn.cursor() as cur:
        for lo in range(1, rows + 1, step):
            cur.execute(HISTORY, {"lo": lo, "hi": min(rows, lo + step - 1), "rows": rows, "year": YEAR,
                                  "per_load": per_load, "first_load": 1_000_000, "hospitals": hospitals,
                                  "n_hosp": len(hospitals), "back": back})
            conn.commit()
        cur.execute("select setval('raw.load_ledger_load_id_seq', (select max(load_id) + 1 from raw.claim))")
        conn.commit()
        conn.autocommit = True
        cur.execute("vacuum analyze raw.claim")
        conn.autocommit = False
    return time.perf_counter() - started


def key_index(conn, on: bool) -> None:
    with conn.cursor() as cur:
        if on:
            cur.execute("create index if not exists claim_key_bench on raw.claim (hospital_code, settlement_id)")
        else:
            cur.execute("drop index if exists raw.claim_key_bench")
    conn.commit()


def load_night(conn, landing: Path, night: dt.date) -> tuple[float, int, tuple[int, int]]:
    from yibao.landing import discover
    from yibao.loader import load_files
    from yibao.pseudonym import Pseudonymiser

    files, _ = discover(landing, night, night)
    files = [f for f in files if f.is_reference or f.business_date == night]
    started = time.perf_counter()
    results = load_files(conn, files, Pseudonymiser(KEY), today=dt.date(2026, 6, 1), workers=1)
    secs = time.perf_counter() - started
    ids = [r.load_id for r in results if r.status == "loaded" and not r.file.is_reference]
    rows = sum(r.rows_read for r in results if r.status == "loaded" and not r.file.is_reference)
    return secs, rows, (min(ids), max(ids))


def raw_write(conn, load_ids: tuple[int, int], fresh_load_id: int) -> tuple[float, int]:
    """COPY the night's claim rows (as the loader wrote them) into raw.claim again, under a new load id."""
    buf = io.StringIO()
    with conn.cursor() as cur:
        cur.execute("select column_name from information_schema.columns where table_schema = 'raw'"
                    " and table_name = 'claim' and column_name not in ('load_id', 'loaded_at') order by ordinal_position")
        cols = [r[0] for r in cur.fetchall()]
        cur.copy_expert(f"copy (select {fresh_load_id}, {', '.join(cols)} from raw.claim where load_id between"
                        f" {load_ids[0]} and {load_ids[1]}) to stdout with (format csv)", buf)
        n = buf.getvalue().count("\n")
        buf.seek(0)
        started = time.perf_counter()
        cur.copy_expert(f"copy raw.claim (load_id, {', '.join(cols)}) from stdin with (format csv)", buf)
        cur.execute("select brin_summarize_new_values('raw.claim_load_brin'::regclass)")
        secs = time.perf_counter() - started
    conn.rollback()  # measured, not kept
    return secs, n


NEWER = """
select count(*) from raw.claim s
where s.load_id between %(lo)s and %(hi)s
  and not exists (
      select 1 from raw.claim n
      where n.hospital_code = s.hospital_code and n.settlement_id = s.settlement_id
        and n.business_date >= %(night)s
        and (n.business_date, n.load_id, n.source_row) > (s.business_date, s.load_id, s.source_row))
"""
SUPERSEDED = """
select count(*) from raw.claim o
where o.load_id < %(lo)s
  and exists (select 1 from raw.claim s where s.load_id between %(lo)s and %(hi)s
              and s.hospital_code = o.hospital_code and s.settlement_id = o.settlement_id)
"""


def query_time(conn, sql: str, p: dict, repeat: int) -> tuple[float, int, str]:
    with conn.cursor() as cur:
        cur.execute("explain (analyze, format text) " + sql, p)  # warm, and the plan's shape
        plan = "\n".join(r[0] for r in cur.fetchall())
        runs = [timed(cur, sql, p) for _ in range(repeat)]
        cur.execute(sql, p)
        n = cur.fetchone()[0]
    conn.rollback()
    read = {m.group(2) for line in plan.splitlines() if "never executed" not in line
            for m in [re.search(r"(Seq Scan|Heap Scan|Index Scan using \S+|Index Only Scan using \S+)"
                                r" on (claim(?:_\d{4}_\d{2}|_default)?)\b", line)] if m}
    return min(runs), n, f"{len(read)} table(s) or partition(s) read"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20_000_000, help="claim rows of history (a year)")
    ap.add_argument("--hospitals", type=int, default=100)
    ap.add_argument("--night-volume", type=float, default=3.0, help="generator volume of each night")
    ap.add_argument("--nights", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", default=None, help="where to generate the nights (default: YIBAO_HOME/bench)")
    args = ap.parse_args()

    from yibao.config import settings
    from yibao.generator import generate_city

    pg.start()
    work = Path(args.work or settings().home / "bench")
    nights = [NIGHT0 + dt.timedelta(days=i) for i in range(args.nights)]
    landing = work / f"nights_h{args.hospitals}_v{args.night_volume:g}_n{args.nights}"
    if not (landing / "reference").exists():
        t = time.perf_counter()
        print(generate_city(landing, seed=11, hospitals=args.hospitals, start=nights[0], end=nights[-1],
                            volume=args.night_volume, defect_rate=0.001))
        print(f"nights generated in {time.perf_counter() - t:.0f} s")
    hospitals = sorted(line.split(",")[0] for line in
                       (landing / "reference" / "hospitals.csv").read_text(encoding="utf-8").splitlines()[1:])

    conns, out = {}, []
    for kind in ("plain", "part"):
        conns[kind] = fresh(kind, nights[-1])
        secs = fill_history(conns[kind], args.rows, hospitals)
        with conns[kind].cursor() as cur:
            cur.execute("select pg_total_relation_size('raw.claim'::regclass) + coalesce((select sum("
                        "pg_total_relation_size(inhrelid)) from pg_inherits where inhparent = 'raw.claim'::regclass), 0)")
            size = cur.fetchone()[0]
        conns[kind].rollback()
        out.append((f"history: {args.rows:,} claim rows by SQL ({kind})",
                    f"{secs:.0f} s = {args.rows / secs:,.0f} rows/s; {size / 2**30:.1f} GB"))
        print(out[-1], flush=True)

    # 1. the loader's real path, nights interleaved; the night's claim COPY alone
    loads = {k: [] for k in conns}
    night_ids: dict[str, list[tuple[int, int]]] = {k: [] for k in conns}
    for i, night in enumerate(nights):
        # alternate who goes first: the first to read a night's files reads them from disk
        for kind, conn in (list(conns.items()) if i % 2 == 0 else list(conns.items())[::-1]):
            secs, rows, ids = load_night(conn, landing, night)
            loads[kind].append((secs, rows))
            night_ids[kind].append(ids)
            print(f"night {night} {kind}: {rows:,} rows in {secs:.2f} s", flush=True)
    for kind in conns:
        best = min(s for s, _ in loads[kind])
        rows = statistics.mean(r for _, r in loads[kind])
        out.append((f"loader, one night of {args.hospitals} hospitals (~{rows:,.0f} rows, 3 extracts) ({kind})",
                    f"best {best:.2f} s, median {statistics.median(s for s, _ in loads[kind]):.2f} s"))
    p_last = {}
    for index in (False, True):
        for conn in conns.values():
            key_index(conn, index)
        for kind, conn in conns.items():
            with conn.cursor() as cur:
                cur.execute("select min(load_id), max(load_id) from raw.load_ledger where file_kind = 'claim'"
                            " and business_date = %s", (nights[-1],))
                lo, hi = cur.fetchone()
            conn.rollback()
            p_last[kind] = {"lo": lo, "hi": hi, "night": nights[-1]}
            runs = [raw_write(conn, (lo, hi), 9_000_000 + i) for i in range(args.repeat)]
            secs, n = min(runs)
            out.append((f"COPY the night's claim rows, server side ({kind}, {'BRIN + key index' if index else 'BRIN only'})",
                        f"{n:,} rows in {secs:.3f} s = {n / secs:,.0f} rows/s"))
            print(out[-1], flush=True)
        # 2. latest version for the night
        for kind, conn in conns.items():
            for name, sql in (("newer version exists (not exists, bounded by the night's date)", NEWER),
                              ("versions the night supersedes (any month)", SUPERSEDED)):
                secs, n, scans = query_time(conn, sql, p_last[kind], args.repeat)
                out.append((f"{name} ({kind}, {'key index' if index else 'no key index'})",
                            f"{secs:.3f} s ({n:,} rows; {scans})"))
                print(out[-1], flush=True)

    # 3. retention
    with conns["plain"].cursor() as cur:
        t_delete = timed(cur, "delete from raw.claim where business_date < date '2025-02-01'")
    conns["plain"].rollback()
    with conns["part"].cursor() as cur:
        t_detach = timed(cur, "alter table raw.claim detach partition raw.claim_2025_01")
    conns["part"].rollback()
    out.append(("retire January", f"DELETE {t_delete:.2f} s (+ vacuum later) vs DETACH PARTITION {t_detach * 1000:.0f} ms"))
    for conn in conns.values():
        conn.close()
    print(f"\nload average at the end: {os.getloadavg()}")
    print("| measurement | result |\n|---|---|")
    for name, value in out:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
