"""Single-machine figures for docs/scale-out.md, measured on the embedded PostgreSQL.

    .venv/bin/python infra/bench/scale_figures.py [--rows 2000000] [--hospitals 120]

Works in a scratch database ``yibao_bench`` (dropped and re-created; the warehouse is untouched):
1. raw.usage-shaped rows: insert throughput into a plain table vs one range-partitioned by month of
   business_date; "latest version per natural key" for one month on each; retiring one month
   (DELETE vs DETACH PARTITION).
2. Row-level security: the same aggregate over a fct_usage_pricing-shaped mart as bi_reader
   (policy USING true) and as a county role (hospital_code = any(visible hospitals)).
3. audit.apply_marts_security on the §7 sample marts (infra/fixtures/marts_sample.sql).
Prints a Markdown table. Timings are wall-clock on whatever machine runs it; run it alone.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parents[2]
DB = "yibao_bench"


def timed(cur, sql: str, params=None) -> float:
    started = time.perf_counter()
    cur.execute(sql, params)
    return time.perf_counter() - started


USAGE_COLUMNS = """
    load_id bigint not null, business_date date not null, source_file text not null, source_row integer not null,
    loaded_at timestamptz not null default now(), usage_id text, hospital_code text, visit_id text,
    consumable_code text, quantity numeric(18,4), charge_unit_price numeric(18,4), charge_amount numeric(18,2),
    used_at timestamp, extra jsonb"""

GENERATE = """
    insert into {table} (load_id, business_date, source_file, source_row, usage_id, hospital_code, visit_id,
                         consumable_code, quantity, charge_unit_price, charge_amount, used_at)
    select g / 5000, date '2025-01-01' + (g * 365 / %(rows)s)::int, 'f.csv', g %% 5000,
           'U' || (g %% (%(rows)s * 9 / 10)), 'H4107' || lpad((g %% %(hosp)s)::text, 7, '0'), 'V' || g / 3,
           'C' || (g %% 997), 1 + g %% 3, 100 + g %% 900, (1 + g %% 3) * (100 + g %% 900),
           timestamp '2025-01-01' + make_interval(secs => g * 31536000.0 / %(rows)s)
    from generate_series(1, %(rows)s) g"""

LATEST_ONE_MONTH = """
    select count(*) from (
        select distinct on (hospital_code, usage_id) hospital_code, usage_id, charge_amount
        from {table}
        where business_date >= date '2025-06-01' and business_date < date '2025-07-01'
        order by hospital_code, usage_id, business_date desc, load_id desc, source_row desc) latest"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--hospitals", type=int, default=120)
    args = parser.parse_args()

    from yibao import db, pg

    url = pg.start()
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"drop database if exists {DB} with (force)")
        cur.execute(f"create database {DB}")
    admin.close()
    conn = psycopg2.connect(url.rsplit("/", 1)[0] + "/" + DB)
    db.bootstrap(conn)
    conn.autocommit = True
    cur = conn.cursor()
    p = {"rows": args.rows, "hosp": args.hospitals}
    out: list[tuple[str, str]] = []

    # 1. raw table: plain vs partitioned by month
    cur.execute(f"create table bench_plain ({USAGE_COLUMNS})")
    cur.execute(
        f"create table bench_part ({USAGE_COLUMNS}) partition by range (business_date)"
    )
    for month in range(1, 13):
        start = f"2025-{month:02d}-01"
        end = "2026-01-01" if month == 12 else f"2025-{month + 1:02d}-01"
        cur.execute(
            f"create table bench_part_{month:02d} partition of bench_part for values from ('{start}') to ('{end}')"
        )
    cur.execute("create table bench_part_default partition of bench_part default")
    t_plain = timed(cur, GENERATE.format(table="bench_plain"), p)
    t_part = timed(cur, GENERATE.format(table="bench_part"), p)
    cur.execute("vacuum analyze bench_plain")
    cur.execute("vacuum analyze bench_part")
    cur.execute("select pg_total_relation_size('bench_plain')")
    size_mb = cur.fetchone()[0] / 2**20
    out.append(
        (
            "insert rows (plain table)",
            f"{args.rows:,} rows in {t_plain:.1f} s = {args.rows / t_plain:,.0f} rows/s; {size_mb:,.0f} MB",
        )
    )
    out.append(
        (
            "insert rows (12 monthly partitions)",
            f"{args.rows:,} rows in {t_part:.1f} s = {args.rows / t_part:,.0f} rows/s",
        )
    )
    for table in ("bench_plain", "bench_part"):
        timed(cur, LATEST_ONE_MONTH.format(table=table))  # warm the cache
        runs = [timed(cur, LATEST_ONE_MONTH.format(table=table)) for _ in range(3)]
        out.append(
            (
                f"latest version per key, one month ({'plain' if table == 'bench_plain' else 'partitioned'})",
                f"{min(runs):.2f} s",
            )
        )
    t_delete = timed(
        cur, "delete from bench_plain where business_date < date '2025-02-01'"
    )
    t_detach = timed(cur, "alter table bench_part detach partition bench_part_01")
    out.append(
        (
            "retire one month",
            f"DELETE {t_delete:.2f} s vs DETACH PARTITION {t_detach * 1000:.0f} ms",
        )
    )

    # 2. row-level security overhead on a mart
    cur.execute(
        "create table marts.fct_usage_pricing as select hospital_code, usage_id, charge_amount as"
        " unreasonable_excess_amount from bench_plain"
    )
    cur.execute(
        "create table marts.dim_hospital as select distinct hospital_code,"
        " '4107' || lpad((right(hospital_code, 2)::int % 10)::text, 2, '0') as county_code from bench_plain"
    )
    cur.execute("alter table marts.fct_usage_pricing owner to yibao_transformer")
    cur.execute("alter table marts.dim_hospital owner to yibao_transformer")
    cur.execute("select audit.create_county_role('410701')")
    cur.execute("select audit.apply_marts_security('marts')")
    cur.execute("select count(*) from marts.fct_usage_pricing")
    mart_rows = cur.fetchone()[0]
    query = (
        "select count(*), sum(unreasonable_excess_amount) from marts.fct_usage_pricing"
    )
    figures = {}
    for role in ("bi_reader", "county_410701"):
        cur.execute(f"set role {role}")
        timed(cur, query)
        figures[role] = min(timed(cur, query) for _ in range(3))
        cur.execute(query)
        figures[role + "_rows"] = cur.fetchone()[0]
        cur.execute("reset role")
    out.append(
        (
            f"aggregate over {mart_rows:,}-row mart as bi_reader",
            f"{figures['bi_reader']:.2f} s",
        )
    )
    out.append(
        (
            f"same as a county role (sees {figures['county_410701_rows']:,} rows)",
            f"{figures['county_410701']:.2f} s",
        )
    )
    cur.execute("drop table marts.fct_usage_pricing, marts.dim_hospital")

    # 3. apply_marts_security on the sample marts
    cur.execute("set search_path = marts")
    cur.execute(
        (ROOT / "infra" / "fixtures" / "marts_sample.sql").read_text(encoding="utf-8")
    )
    cur.execute("reset search_path")
    cur.execute("select count(*) from pg_tables where schemaname = 'marts'")
    n_tables = cur.fetchone()[0]
    runs = []
    for _ in range(5):
        runs.append(timed(cur, "select audit.apply_marts_security('marts')"))
    out.append(
        (
            f"audit.apply_marts_security on {n_tables} mart tables",
            f"{min(runs) * 1000:.0f} ms (best of 5), {max(runs) * 1000:.0f} ms worst",
        )
    )
    conn.close()

    print("| measurement | result |\n|---|---|")
    for name, value in out:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
