"""Smart audit (R11-R22): an incremental night of fee lines on top of a history, against a full build.

Synthetic fee lines are inserted straight into ``raw.fee_detail`` with SQL (the loader is not
timed here), a third of them with item codes of the packaged national rule library (so that they
match rules), the rest with codes no rule matches; the national library is loaded into
``raw.ref_audit_rules`` as the loader would. Then:

1. a full ``dbt run`` of the audit models (and what they need) through the history's last day;
2. one night of ``--night`` more lines (a new load, next business date) and an incremental run;
3. for comparison, the same night's run on an empty history (a fresh database with only the night).

Prints the seconds of each audit model in each run. Run e.g.::

    .venv/bin/python benchmarks/audit_night.py --history 1000000 --night 50000
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import time
from pathlib import Path

from yibao import pg

AUDIT_MODELS = ("stg_", "int_audit", "int_exam", "int_claims_with_deductions", "fct_audit",
                "fct_exam", "fct_settlement_deduction")


def _ledger(cur, kind, day, name, n):
    cur.execute(
        "insert into raw.load_ledger (file_kind, hospital_code, business_date, source_file, sha256,"
        " status, rows_read, rows_loaded) values (%s, null, %s, %s, md5(random()::text), 'loaded', %s, %s)"
        " returning load_id",
        (kind, day, name, n, n),
    )
    return cur.fetchone()[0]


def load_national_rules(cur) -> None:
    from importlib.resources import files

    text = (files("yibao") / "data" / "audit_rules_national.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    lid = _ledger(cur, "reference:audit_rules_national", None, "audit_rules_national.csv", len(rows))
    cols = ["rule_id", "rule_type", "item_prefix", "item_name", "severity", "allowed_sex", "min_age_days",
            "max_age_days", "min_hospital_level", "max_quantity", "days", "main_item_prefix",
            "diagnosis_prefixes", "exam_class", "threshold", "effective_from", "effective_to", "source"]
    buf = io.StringIO()
    w = csv.writer(buf)
    for i, r in enumerate(rows, start=1):
        w.writerow([lid, i, *[r.get(c) or None for c in cols]])
    buf.seek(0)
    cur.copy_expert(
        f"copy raw.ref_audit_rules (load_id, source_row, {', '.join(cols)}) from stdin with (format csv)", buf
    )


def insert_lines(cur, day: dt.date, n: int, offset: int, spread_days: int) -> None:
    """n fee lines (ids offset+1..offset+n), charged over the spread_days up to day; every third
    line carries a national rule's item code, the others codes no rule matches."""
    lid = _ledger(cur, "fee_detail", day, f"bench/{day}", n)
    cur.execute(
        """
        with codes as (
            select array_agg(item_prefix order by rule_id) as code, count(*)::int as n
            from raw.ref_audit_rules where item_prefix is not null
        )
        insert into raw.fee_detail (load_id, business_date, source_file, source_row, fee_line_id,
            hospital_code, visit_id, patient_key, patient_sex, patient_age_days, item_type, item_code,
            item_name, charged_at, quantity, unit_price, amount, exam_result)
        select %(lid)s, %(day)s, 'bench', g, 'FL' || (%(off)s + g),
            'H4107020' || lpad(((%(off)s + g) / 20 %% 40)::text, 4, '0'),
            'V' || ((%(off)s + g) / 20), 'P' || ((%(off)s + g) / 20 %% 200000),
            case when ((%(off)s + g) / 20) %% 2 = 0 then 'M' else 'F' end,
            ((%(off)s + g) / 20 * 7919) %% 30000,
            '11',
            case when g %% 3 = 0 then codes.code[1 + (g * 31) %% codes.n] else 'ZZ' || g end,
            'bench',
            %(day)s::timestamp - ((((%(off)s + g) / 20) %% %(spread)s) || ' days')::interval
                + ((g %% 600) || ' minutes')::interval,
            1, 10.00, 10.00, null
        from generate_series(1, %(n)s) as g, codes
        """,
        {"lid": lid, "day": day, "off": offset, "n": n, "spread": spread_days},
    )


def _models_seconds() -> list[tuple[str, float]]:
    from yibao.transform import DBT_PROJECT_DIR

    target = os.environ.get("DBT_TARGET_PATH") or str(DBT_PROJECT_DIR / "target")
    data = json.loads((Path(target) / "run_results.json").read_text())
    out = [(r["unique_id"].split(".")[-1], r["execution_time"]) for r in data["results"]
           if r["unique_id"].startswith("model.")]
    return sorted((m for m in out if m[0].startswith(AUDIT_MODELS)), key=lambda x: -x[1])


def _run(as_of: dt.date, url: str, full: bool) -> float:
    from yibao.transform import run_dbt

    t = time.perf_counter()
    run_dbt(["run", "--select", "+fct_audit_findings", "+fct_exam_positive_rate_monthly",
             "+fct_audit_summary_monthly", "+fct_settlement_deduction", *(["--full-refresh"] if full else [])],
            as_of=as_of, url=url)
    return time.perf_counter() - t


def _print(title: str, seconds: float, top: int) -> None:
    print(f"{title}: {seconds:.1f} s (load average {os.getloadavg()[0]:.2f})")
    for m, s in _models_seconds()[:top]:
        print(f"  {m:<40} {s:8.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--history", type=int, default=1_000_000)
    ap.add_argument("--night", type=int, default=50_000)
    ap.add_argument("--top", type=int, default=10)
    args = ap.parse_args()
    import psycopg2

    from yibao import db

    pg.start()
    history_day, night_day = dt.date(2025, 6, 30), dt.date(2025, 7, 1)
    results = {}
    for name, history in (("history", args.history), ("empty", 0)):
        database = f"yibao_audit_bench_{name}"
        url = pg.url(database=database)
        os.environ["YIBAO_DATABASE_URL"] = url
        pg.admin_sql([f'drop database if exists "{database}"', f'create database "{database}"'])
        db.bootstrap()
        conn = psycopg2.connect(url)
        conn.autocommit = True
        cur = conn.cursor()
        load_national_rules(cur)
        if history:
            insert_lines(cur, history_day, history, 0, 180)
        cur.execute("analyze raw.fee_detail")
        seconds = _run(history_day, url, full=True)
        _print(f"full build, {history:,} lines of history", seconds, args.top)
        insert_lines(cur, night_day, args.night, args.history, 30)
        cur.execute("analyze raw.fee_detail")
        seconds = _run(night_day, url, full=False)
        results[name] = seconds
        _print(f"incremental night of {args.night:,} lines on {history:,} lines", seconds, args.top)
        conn.close()
        pg.admin_sql([f'drop database if exists "{database}"'])
    print(f"night on {args.history:,} lines: {results['history']:.1f} s; "
          f"night on an empty history: {results['empty']:.1f} s")


if __name__ == "__main__":
    main()
