"""Smart audit (R11-R22): an incremental night of fee lines on top of a history, against the same
night on an empty history.

The data are synthetic and written straight into the raw tables with set-based SQL (the loader is
not timed here), deterministic in the line and visit numbers, so that the same night can be added
to any history:

- 40 hospitals of every level (R13, R21 reads levels >= 二级), the packaged national rule library
  and a bureau file with the local exam rules (R20 repeat_exam, R21 positive_rate for CT and 彩超,
  R22 readmission);
- visits of 20 fee lines, one claim (settlement) per visit, a fifth of them inpatient stays of up
  to 10 days (R14, R19, R22 and the deductions path run); patients keep their sex and age and
  mostly go to one hospital (R22 readmissions, R16/R20 windows across hospitals);
- the patient pool is scaled to the visits: 4 visits per patient and year (--visits-per-patient;
  299k patients for 10 M lines), one visit in 8 a follow-up of the visit before (same patient,
  days later: R16/R20 repeats and R22 readmissions in every night). --legacy-patients: the pool
  of the 2026-11 measurement ((history + 1 M) / 150 patients, 73k for 10 M lines, ~7.5 visits
  each in 5.5 months; no follow-ups), for comparison;
- every third line carries an item code of the national library (R11-R19 findings), one line in
  each visit of two is a CT or 彩超 examination with a result P/N (R20, R21); the lines of the
  history are spread over the months before its last day;
- the night: new visits charged over the 30 days before the night (late lines into the history's
  months) with their claims, plus late lines and refunds on visits of the history (1 % of the
  night's lines each; --late-percent).

Steps, so that the history is built once and the timed night runs on a fresh copy of it:

    # 1. the raw history (template <name>_raw), then its full dbt build, kept as the template
    #    database of the nights (not timed; `history` builds the raw one too when missing)
    .venv/bin/python benchmarks/audit_night.py raw --history 10000000
    .venv/bin/python benchmarks/audit_night.py history --history 10000000
    # 2. the same night on an empty history, then on a copy of the template (timed; under the
    #    shared benchmark lock); --keep keeps the night databases for `explain`; --warm reads each
    #    night database into the OS cache first (a nightly warehouse has its history there);
    #    --repeat N runs N pairs and prints the median ratio (one pair moves by ±0.2 run to run)
    flock /work/wt/_issues/bench.lock .venv/bin/python benchmarks/audit_night.py night \\
        --history 10000000 --night 1000000 --keep --warm --repeat 5
    # 3. EXPLAIN of every audit model's incremental query on the kept night (seq scans of big
    #    tables); --analyze --verbose: EXPLAIN (ANALYZE, BUFFERS), the plans; --models a,b: only those
    .venv/bin/python benchmarks/audit_night.py explain --history 10000000
    # 4. drop the databases
    .venv/bin/python benchmarks/audit_night.py drop --history 10000000

``all`` runs the three in a row (small sizes). Prints the seconds of the runs and the slowest models.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import statistics
import time
from pathlib import Path

from yibao import pg

HOSPITALS = 40
LINES_PER_VISIT = 20
# the national library applies from 2026-01-14 at the latest
HISTORY_START, HISTORY_DAY, NIGHT_DAY = dt.date(2026, 1, 15), dt.date(2026, 6, 30), dt.date(2026, 7, 1)
CT_ITEM, US_ITEM = "002103000010000", "002104000010000"
SELECT = ["+fct_audit_findings", "+fct_exam_positive_rate_monthly", "+fct_audit_summary_monthly",
          "+fct_settlement_deduction"]
BUREAU_RULES = [
    # rule_id, rule_type, item_prefix, severity, days, exam_class, threshold
    ("BENCH-REP-CT", "repeat_exam", "002103", "suspicious", 7, None, None),
    ("BENCH-REP-US", "repeat_exam", "002104", "suspicious", 7, None, None),
    ("BENCH-PR-CT", "positive_rate", "002103", "suspicious", None, "CT", "0.70"),
    ("BENCH-PR-US", "positive_rate", "002104", "suspicious", None, "彩超", "0.70"),
    ("BENCH-RDM", "readmission", None, "suspicious", 15, None, None),
]
# R19 (no national row): the line 2 of one visit in 50 (item code ZZ002 + zeros), for appendicitis
# and pneumonia only
INDICATION_RULE = ("BENCH-IND", "indication", "ZZ0020000000000", "suspicious", "K35|J18")


def _ledger(cur, kind, day, name, n):
    cur.execute(
        "insert into raw.load_ledger (file_kind, hospital_code, business_date, source_file, sha256,"
        " status, rows_read, rows_loaded) values (%s, null, %s, %s, md5(random()::text), 'loaded', %s, %s)"
        " returning load_id",
        (kind, day, name, n, n),
    )
    return cur.fetchone()[0]


def load_reference(cur) -> None:
    """Hospitals, the packaged national library, the bureau's exam rules."""
    from importlib.resources import files

    lid = _ledger(cur, "reference:hospitals", None, "reference/hospitals.csv", HOSPITALS)
    cur.execute(
        """insert into raw.ref_hospitals (load_id, source_row, hospital_code, hospital_name, level,
               county_code, ownership)
           select %s, h, 'H410702' || lpad(h::text, 5, '0'), 'bench ' || h,
               (array['三级', '二级', '一级', '基层'])[1 + h %% 4], '410702', 'public'
           from generate_series(1, %s) as h""",
        (lid, HOSPITALS),
    )
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
    lid = _ledger(cur, "reference:audit_rules", None, "reference/audit_rules.csv", len(BUREAU_RULES) + 1)
    for i, (rid, rtype, prefix, sev, days, exam_class, threshold) in enumerate(BUREAU_RULES, start=1):
        cur.execute(
            """insert into raw.ref_audit_rules (load_id, source_row, rule_id, rule_type, item_prefix,
                   severity, days, exam_class, threshold) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (lid, i, rid, rtype, prefix, sev, days, exam_class, threshold),
        )
    rid, rtype, prefix, sev, diagnoses = INDICATION_RULE
    cur.execute(
        """insert into raw.ref_audit_rules (load_id, source_row, rule_id, rule_type, item_prefix, severity,
               diagnosis_prefixes) values (%s, %s, %s, %s, %s, %s, %s)""",
        (lid, len(BUREAU_RULES) + 1, rid, rtype, prefix, sev, diagnoses),
    )


# One visit v (a global number): patient, hospital, first day, length, category, diagnosis.
# Patients: `patients` of them; a patient goes to "their" hospital two visits in three.
# Follow-ups (realistic pool, `followup` = 8): visit v with v % 8 = 1 is a follow-up of visit
# b = v - 1: the same patient, category, stay length, diagnosis and examination (line 1), on the
# base's hospital every other time (else another one), first day `stay + v % 5` days after the
# base's (R16/R20 repeats, R22 readmissions, whatever the pool's size). followup = 0: none (the
# legacy pool). Every attribute but visit_id and first_day is a function of b.
_VISIT = f"""
    select v,
        'P' || (b * 7 %% %(patients)s) as patient_key,
        (b * 7 %% %(patients)s) as p,
        'H410702' || lpad((1 + case
            when b <> v and (v / %(followup)s) %% 2 = 1 then (b + 17) %% {HOSPITALS}
            when b %% 3 = 0 then b %% {HOSPITALS}
            else (b * 7 %% %(patients)s) %% {HOSPITALS} end)::text, 5, '0') as hospital_code,
        %(visit_prefix)s || v as visit_id,
        %(first_day)s::date + ((b * 37) %% %(span)s)::int
            + (case when b <> v then (case when b %% 5 = 0 then 1 + b %% 10 else 1 end) + v %% 5 else 0 end)::int
            as first_day,
        (case when b %% 5 = 0 then 1 + b %% 10 else 1 end)::int as stay_days,
        case when b %% 5 = 0 then '21' else '11' end as medical_category,
        (array['K35.800', 'J18.900', 'I10.x00', 'E11.900', 'N39.000', 'K80.200', 'I63.900', 'J44.100',
               'C34.900', 'M54.500'])[1 + (b / 5) %% 10] as principal_diagnosis,
        b
"""
# Id prefixes (visit, fee line, settlement). The history numbers its visits 0..n without padding,
# so the night's visits (numbered from n + 10 M) would sort among the history's ids ('V11500000'
# lies between 'V1150000' and 'V1150001') and every index keyed by them would take the night's rows
# at thousands of places. A HIS numbers visits, fee lines (费用明细流水号) and settlements with serial
# numbers, so a night's new ids sort after the earlier ones of the hospital: the night's new visits
# get prefixes that sort after the history's ("after", default; all their numbers have the same
# width). --night-ids interleaved keeps the history's prefixes (the runs before, §7.7).
ID_PREFIXES = {"history": ("V", "FL", "S"), "after": ("W", "FM", "T")}
_BASE = """(select v, case when %(followup)s > 0 and v %% %(followup)s = 1 then v - 1 else v end as b
           from ({visits_sql}) as vs (v)) as based"""


def _bench_codes(cur, params: dict) -> None:
    """The library's item codes as small numbered tables (joined by hash; an array of 15k codes
    subscripted per line was detoasted per line)."""
    cur.execute("""
        drop table if exists pg_temp.bench_codes, pg_temp.bench_window_codes, pg_temp.bench_included;
        create temporary table bench_codes as
        select row_number() over (order by rule_id) as k, item_prefix as code
        from raw.ref_audit_rules where item_prefix is not null and length(item_prefix) >= 15;
        create temporary table bench_window_codes as
        select row_number() over (order by rule_id) as k, item_prefix as code
        from raw.ref_audit_rules
        where rule_type in ('daily_quantity', 'min_interval_days', 'course_days') and length(item_prefix) >= 15;
        create temporary table bench_included as
        select row_number() over (order by rule_id) as k, item_prefix as b, main_item_prefix as a
        from raw.ref_audit_rules where rule_type = 'included_in' and length(item_prefix) >= 15;
        analyze pg_temp.bench_codes; analyze pg_temp.bench_window_codes; analyze pg_temp.bench_included""")
    for table, key in (("bench_codes", "n_codes"), ("bench_window_codes", "n_window"), ("bench_included", "n_included")):
        cur.execute(f"select count(*) from pg_temp.{table}")
        params[key] = cur.fetchone()[0]


def insert_visits(cur, kind_day: dt.date, visits_sql: str, first_day: dt.date, span_days: int,
                  pool: tuple[int, int], name: str, lines: tuple[int, int] = (1, LINES_PER_VISIT),
                  claims: bool = True, ids: str = "history", **params) -> None:
    """Fee lines lines[0]..lines[1] of the visits (visits_sql: a set of v) and, if claims, their
    claims, in one fee_detail and one claim load of business date kind_day. Line 21 is a late line
    (an item code of the library), line 22 the refund (quantity -1) of line 3. ids: the id prefixes
    (ID_PREFIXES) of the visits, lines and settlements."""
    patients, followup = pool
    params = {**params, "first_day": first_day, "span": max(span_days, 1), "patients": patients,
              "followup": followup,
              "day": kind_day, "lpv": LINES_PER_VISIT, "ct": CT_ITEM, "us": US_ITEM,
              "lo": lines[0], "hi": lines[1], **dict(zip(("visit_prefix", "line_prefix", "settlement_prefix"),
                                                          ID_PREFIXES[ids]))}
    _bench_codes(cur, params)
    cur.execute(f"select count(*) from ({visits_sql}) as v", params)
    n_visits = cur.fetchone()[0]
    lid = _ledger(cur, "fee_detail", kind_day, f"bench/{name}/fee_detail", n_visits * (lines[1] - lines[0] + 1))
    cur.execute(
        f"""
        with
        visits as ({_VISIT} from {_BASE.format(visits_sql=visits_sql)})
        insert into raw.fee_detail (load_id, business_date, source_file, source_row, fee_line_id,
            hospital_code, visit_id, patient_key, patient_sex, patient_age_days, item_type, item_code,
            item_name, dept_code, doctor_code, charged_at, quantity, unit_price, amount, exam_result)
        select %(lid)s, %(day)s, 'bench', row_number() over (),
            %(line_prefix)s || visits.v || '-' || i, visits.hospital_code, visits.visit_id, visits.patient_key,
            case when visits.p %% 2 = 0 then 'M' else 'F' end,
            (visits.p * 7919) %% 30000 + (visits.first_day - date '2026-01-01'),
            case when i %% 3 = 0 then '11' else '21' end,
            case
                when i = 1 and visits.b %% 4 = 0 then %(ct)s
                when i = 1 and visits.b %% 4 = 1 then %(us)s
                -- the patient's own item (R15, R16, R17 windows), an included pair (R18: B always, A
                -- on every other visit), else any code of the library
                when line.c = 3 then own.code
                when i = 6 then included.b
                when i = 4 and visits.v %% 2 = 0 then included.a
                when line.c %% 3 = 0 then any_code.code
                else 'ZZ' || lpad(i::text, 3, '0') || lpad((visits.v %% 50)::text, 10, '0')
            end,
            'bench', '0301', 'D41070200' || lpad((visits.v %% 97)::text, 4, '0'),
            (visits.first_day + (line.c %% visits.stay_days))::timestamp + ((8 * 60 + i * 7) || ' minutes')::interval,
            q.quantity, 10.00, q.quantity * 10.00,
            case when i = 1 and visits.b %% 4 in (0, 1)
                 then case when ((visits.v * 131) %% 100) < 60 + (visits.v %% 40) / 2 then 'P' else 'N' end
            end
        from visits
        cross join generate_series(%(lo)s, %(hi)s) as i
        cross join lateral (select case when i = 22 then 3 else i end as c) as line
        left join pg_temp.bench_codes as any_code
            on any_code.k = 1 + ((visits.v * %(lpv)s + line.c) * 31) %% %(n_codes)s
        left join pg_temp.bench_window_codes as own on own.k = 1 + (visits.p * 31) %% %(n_window)s
        left join pg_temp.bench_included as included on included.k = 1 + (visits.v * 31) %% %(n_included)s
        cross join lateral (
            select case when i = 22 then -1 when i %% 9 = 0 then 3 else 1 end::numeric as quantity
        ) as q
        """,
        {**params, "lid": lid},
    )
    if not claims:
        return
    lid = _ledger(cur, "claim", kind_day, f"bench/{name}/claim", n_visits)
    cur.execute(
        f"""
        with visits as ({_VISIT} from {_BASE.format(visits_sql=visits_sql)})
        insert into raw.claim (load_id, business_date, source_file, source_row, settlement_id,
            hospital_code, visit_id, patient_key, patient_sex, patient_birth_year, insurance_type,
            medical_category, admission_date, discharge_date, settled_at, principal_diagnosis,
            total_amount, fund_paid, other_fund_paid, account_paid, cash_paid, negotiated_drug_amount)
        select %(lid)s, %(day)s, 'bench', row_number() over (), %(settlement_prefix)s || visits.v, visits.hospital_code,
            visits.visit_id, visits.patient_key, case when visits.p %% 2 = 0 then 'M' else 'F' end,
            (2026 - ((visits.p * 7919) %% 30000) / 365)::smallint, '310', visits.medical_category,
            case when visits.medical_category = '21' then visits.first_day end,
            case when visits.medical_category = '21' then visits.first_day + visits.stay_days - 1 end,
            (visits.first_day + visits.stay_days - 1)::timestamp + interval '17 hours',
            visits.principal_diagnosis, 240.00, 150.00, 0, 30.00, 60.00, 0
        from visits
        """,
        {**params, "lid": lid},
    )


def _models_seconds() -> list[tuple[str, float]]:
    from yibao.transform import DBT_PROJECT_DIR

    target = os.environ.get("DBT_TARGET_PATH") or str(DBT_PROJECT_DIR / "target")
    data = json.loads((Path(target) / "run_results.json").read_text())
    out = [(r["unique_id"].split(".")[-1], r["execution_time"]) for r in data["results"]
           if r["unique_id"].startswith("model.")]
    return sorted(out, key=lambda x: -x[1])


def _run(as_of: dt.date, url: str, full: bool) -> float:
    from yibao.transform import run_dbt

    t = time.perf_counter()
    run_dbt(["run", "--select", *SELECT, *(["--full-refresh"] if full else [])], as_of=as_of, url=url)
    return time.perf_counter() - t


def _print(title: str, seconds: float, top: int) -> list[tuple[str, float]]:
    models = _models_seconds()
    print(f"{title}: {seconds:.1f} s (load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})", flush=True)
    for m, s in models[:top]:
        print(f"  {m:<44} {s:8.2f} s", flush=True)
    return models


def _sizes(cur) -> str:
    cur.execute("select pg_size_pretty(pg_database_size(current_database()))")
    size = cur.fetchone()[0]
    parts = []
    for table in ("raw.fee_detail", "raw.claim", "intermediate.int_audit_rule_matches",
                  "marts.fct_audit_findings", "intermediate.int_claims_with_deductions"):
        cur.execute("select to_regclass(%s) is not null", (table,))
        if cur.fetchone()[0]:
            cur.execute(f"select count(*) from {table}")
            parts.append(f"{table} {cur.fetchone()[0]:,}")
    cur.execute("select to_regclass('marts.fct_audit_findings') is not null")
    if cur.fetchone()[0]:
        cur.execute("select rule_type, count(*) from marts.fct_audit_findings group by 1 order by 1")
        parts.append("findings by rule type: " + ", ".join(f"{t} {n:,}" for t, n in cur.fetchall()))
        cur.execute("select count(*), count(*) filter (where is_alert) from marts.fct_exam_positive_rate_monthly")
        rows, alerts = cur.fetchone()
        parts.append(f"R21 rows {rows} (alerts {alerts})")
        cur.execute("select count(*) from intermediate.int_audit_deductible_lines")
        parts.append(f"deductible lines {cur.fetchone()[0]:,}")
    return f"database {size}; " + ", ".join(parts)


def _connect(database: str):
    import psycopg2

    url = pg.url(database=database)
    os.environ["YIBAO_DATABASE_URL"] = url
    conn = psycopg2.connect(url)
    conn.autocommit = True
    return url, conn


def _history_visits(history: int) -> int:
    return history // LINES_PER_VISIT


# The patient pool. Realistic (default): patients scaled to the visits at VISITS_PER_PATIENT_YEAR
# visits per patient and year (the insured persons who come in a few times a year; a city of 100
# hospitals has millions of insured; 299k patients for 10 M lines), one visit in FOLLOWUP a follow-up of the visit before (the
# same patient within days), so that R16/R20/R22 keep firing in every night. Legacy
# (--legacy-patients, the 2026-11 measurement): (history + 1 M) / 150 patients (73k for 10 M
# lines: ~7.5 visits each in 5.5 months), no follow-ups.
VISITS_PER_PATIENT_YEAR = 4.0
FOLLOWUP = 8
# the days the data cover (history and night), to scale visits to a year
_COVERED_DAYS = (NIGHT_DAY - HISTORY_START).days + 1


def _pool(args) -> tuple[int, int]:
    """(patients, followup) of the benchmark's city."""
    if args.legacy_patients:
        return max(2_000, (args.history + 1_000_000) // 150), 0
    # the history and a night of up to 1 M lines (independent of --night: the raw template and
    # the night must draw from the same pool)
    visits = (args.history + 1_000_000) // LINES_PER_VISIT
    per_year = visits * 365 / _COVERED_DAYS
    return max(2_000, round(per_year / args.visits_per_patient)), FOLLOWUP


def _warm_os_cache(cur) -> None:
    """--warm: read every file of the current database once, so that the night starts with its
    history in the OS page cache, as a warehouse that runs every night has it (not in PostgreSQL's
    shared buffers). A copy from the template is new files: without this the history night reads
    the pages it probes from disk or from whatever of the copy the OS kept, while the empty night
    reads the rows it has just written; the difference between two runs was larger than any change
    measured (docs/scale-out.md §7.6). Not timed; its seconds and size are printed."""
    cur.execute("select oid from pg_database where datname = current_database()")
    base = pg.settings().pgdata / "base" / str(cur.fetchone()[0])
    started, size = time.perf_counter(), 0
    for path in sorted(base.iterdir()):
        with open(path, "rb", buffering=0) as f:
            while chunk := f.read(8 << 20):
                size += len(chunk)
    print(f"  OS cache warmed: {size / 2**30:.1f} GiB read in {time.perf_counter() - started:.0f} s", flush=True)


def _create_empty(database: str) -> tuple[str, object]:
    from yibao import db

    pg.admin_sql([f'drop database if exists "{database}"', f'create database "{database}"'])
    url, conn = _connect(database)
    db.bootstrap()
    load_reference(conn.cursor())
    return url, conn


def build_raw(args) -> None:
    """The raw history alone (set-based SQL), kept as a template database (<template>_raw)."""
    database = f"yibao_audit_bench_{args.history}_raw"
    t = time.perf_counter()
    url, conn = _create_empty(database)
    cur = conn.cursor()
    visits = _history_visits(args.history)
    step = 250_000
    # the natural-key index is built once at the end (a bulk load, as a restore would)
    cur.execute("drop index raw.fee_detail_natural_key_idx")
    for v0 in range(0, visits, step):
        insert_visits(cur, HISTORY_DAY, "select generate_series(%(v0)s::bigint, %(v1)s::bigint)", HISTORY_START,
                      (HISTORY_DAY - HISTORY_START).days - 10, _pool(args), f"history{v0}",
                      v0=v0, v1=min(v0 + step, visits) - 1)
        print(f"  history visits {min(v0 + step, visits):,} / {visits:,} "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
    cur.execute("create index fee_detail_natural_key_idx"
                " on raw.fee_detail (hospital_code, fee_line_id, business_date, load_id, source_row)")
    cur.execute("vacuum analyze")
    print(f"raw history of {args.history:,} lines written in {time.perf_counter() - t:.0f} s; "
          + _sizes(cur), flush=True)
    conn.close()


def build_history(args) -> None:
    """The full dbt build of the raw history, kept as the template database of the nights."""
    template = f"yibao_audit_bench_{args.history}"
    raw = f"{template}_raw"
    import psycopg2

    with psycopg2.connect(pg.url(database="postgres")) as conn, conn.cursor() as cur:
        cur.execute("select 1 from pg_database where datname = %s", (raw,))
        have_raw = cur.fetchone() is not None
    conn.close()
    if not have_raw:
        build_raw(args)
    pg.admin_sql([f'drop database if exists "{template}"',
                  f'create database "{template}" template "{raw}" strategy file_copy'])
    if not args.keep:
        pg.admin_sql([f'drop database if exists "{raw}"'])
    url, conn = _connect(template)
    cur = conn.cursor()
    seconds = _run(HISTORY_DAY, url, full=True)
    _print(f"full build of the history ({args.history:,} lines)", seconds, args.top)
    cur.execute("vacuum analyze")
    print(_sizes(cur), flush=True)
    conn.close()


def _new_visits(cur, args, day: dt.date, first: int, count: int, name: str) -> None:
    """`count` new visits numbered from `first`, charged over the 30 days before `day`, with their
    claims, delivered on `day` (a night's, or --night-before's)."""
    insert_visits(cur, day, "select generate_series(%(v0)s::bigint, %(v1)s::bigint)", day - dt.timedelta(days=30),
                  30, _pool(args), name, ids="after" if args.night_ids == "after" else "history",
                  v0=first, v1=first + count - 1)


def _night(cur, args) -> None:
    """The night: new visits charged over the 30 days before it (with their claims), and on 1 %
    of its size of the history's visits a late line and a refund each (the same rows whatever
    the history holds: numbered from the history's size, never read from it; --late-percent sets
    the 1 %: 0 makes every line of the night a new visit's, so that the history is read only
    through the night's patients and their window groups)."""
    history, night = args.history, args.night
    late = round(night * args.late_percent / 100)
    _new_visits(cur, args, NIGHT_DAY, _history_visits(history) + 10_000_000, (night - 2 * late) // LINES_PER_VISIT, "night")
    if late and _history_visits(history):
        insert_visits(cur, NIGHT_DAY,
                      "select distinct (g::bigint * 104729) %% %(hv)s from generate_series(1, %(late)s) as g",
                      HISTORY_START, (HISTORY_DAY - HISTORY_START).days - 10, _pool(args), "late",
                      lines=(21, 22), claims=False, hv=_history_visits(history), late=late)
    cur.execute("analyze raw.fee_detail")
    cur.execute("analyze raw.claim")


def _night_before(cur, args) -> int:
    """--night-before: an ordinary night of the history's last day (not timed), before the timed
    one: new visits of another id range, charged over the 30 days before it, with their claims,
    half the timed night's size. Run on the history only, after its copy: a bureau's warehouse
    comes to a night from the night before, whose pages (the upper levels of the indexes the
    night probes, the recent heap pages) are still in shared buffers; a fresh copy of the
    template has none. The empty side needs none: every page it reads was written in the same
    minute. Returns the rows written."""
    new_visits = (args.night // 2) // LINES_PER_VISIT
    _new_visits(cur, args, HISTORY_DAY, _history_visits(args.history) + 5_000_000, new_visits, "before")
    cur.execute("analyze raw.fee_detail")
    cur.execute("analyze raw.claim")
    return new_visits * LINES_PER_VISIT


def run_night(args) -> dict:
    template = f"yibao_audit_bench_{args.history}"
    results = {}
    # the empty history first, so that dbt's compiled queries (`explain`) are the history's
    for name in ("empty", "history"):
        database = f"yibao_audit_bench_night_{name}"
        if name == "history":
            pg.admin_sql([f'drop database if exists "{database}"',
                          f'create database "{database}" template "{template}" strategy file_copy'])
            url, conn = _connect(database)
            if args.night_before:
                rows = _night_before(conn.cursor(), args)
                before = _run(HISTORY_DAY, url, full=False)
                print(f"  the night before ({HISTORY_DAY}, {rows:,} fee lines; not timed): {before:.1f} s", flush=True)
        else:
            url, conn = _create_empty(database)
            seconds = _run(HISTORY_DAY, url, full=True)
        cur = conn.cursor()
        # the same night's rows in both
        _night(cur, args)
        cur.execute("select count(*) from raw.fee_detail where business_date = %s", (NIGHT_DAY,))
        night_rows = cur.fetchone()[0]
        from yibao.transform import run_dbt

        run_dbt(["parse"], as_of=NIGHT_DAY, url=url)  # not timed: the manifest, as every night has it
        # the night's rows on disk before the clock starts (the template's copy is already synced:
        # CREATE DATABASE ... FILE_COPY syncs the files it copies; this took 0.2-0.5 s on 30 M lines)
        print(f"  writes flushed to disk in {pg.flush_writes():.1f} s (not timed)", flush=True)
        if args.warm:
            _warm_os_cache(cur)
        start_load = os.getloadavg()
        seconds = _run(NIGHT_DAY, url, full=False)
        results[name] = (seconds, night_rows, start_load)
        history = args.history if name == "history" else 0
        models = _print(f"incremental night of {night_rows:,} fee lines on {history:,} lines of history "
                        f"(load average at start {' '.join(f'{x:.2f}' for x in start_load)})", seconds, args.top)
        results[name + "_models"] = models
        print("  " + _sizes(cur), flush=True)
        conn.close()
        if not args.keep:
            pg.admin_sql([f'drop database if exists "{database}"'])
    h, e = results["history"][0], results["empty"][0]
    print(f"night on {args.history:,} lines of history: {h:.1f} s; the same night on an empty history: "
          f"{e:.1f} s; ratio {h / e:.2f}", flush=True)
    return results


def _print_pairs(history: int, pairs: list[tuple[float, float]]) -> None:
    """--repeat: every pair, then the medians and the ratio of the fastest run of each side. One
    pair's ratio moves by ±0.2 from run to run on this machine (docs/scale-out.md §7.8), so a
    change of a second or two shows only over several pairs."""
    ratios = [h / e for h, e in pairs]
    for i, ((h, e), r) in enumerate(zip(pairs, ratios), start=1):
        print(f"  pair {i}: {h:.1f} s on {history:,} lines of history, {e:.1f} s on nothing, ratio {r:.2f}")
    print(f"{len(pairs)} pairs: night on the history median {statistics.median(h for h, _ in pairs):.1f} s, "
          f"on nothing median {statistics.median(e for _, e in pairs):.1f} s; "
          f"ratio median {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}); "
          # the fastest run of each side: the least interference from the machine
          f"fastest {min(h for h, _ in pairs):.1f} s against {min(e for _, e in pairs):.1f} s, "
          f"ratio of the fastest {min(h for h, _ in pairs) / min(e for _, e in pairs):.2f}", flush=True)


# The groups each window model re-derives (macros/audit.sql audit_touched_groups), for `explain`.
FINDING_GROUPS = {
    "int_audit_line_rules": (["sex", "age", "hospital_level"], ["hospital_code", "fee_line_id"]),
    "int_audit_daily_quantity": (["daily_quantity"], ["hospital_code", "patient_key", "rule_id", "charge_date"]),
    "int_audit_min_interval": (["min_interval_days"], ["patient_key", "rule_id"]),
    "int_audit_course_days": (["course_days"], ["hospital_code", "visit_id", "rule_id"]),
    "int_audit_included_in": (["included_in"], ["hospital_code", "visit_id", "rule_id"]),
    "int_audit_repeat_exam": (["repeat_exam"], ["patient_key", "rule_id"]),
}
EXPLAINED = [*FINDING_GROUPS, "int_audit_rule_matches", "int_audit_claim_rules", "int_audit_readmission",
             "int_exam_results", "int_audit_deductible_lines", "int_claims_with_deductions"]
BIG_TABLES = ("fee_detail", "int_audit_rule_matches", "int_claims_with_deductions", "claim ")


def explain(args) -> None:
    """EXPLAIN of the audit models' incremental queries (as dbt compiled them for the last night)
    on the kept night database: which of them scan a big table whole (Seq Scan)."""
    import re

    from yibao.transform import DBT_PROJECT_DIR

    target = Path(os.environ.get("DBT_TARGET_PATH") or str(DBT_PROJECT_DIR / "target")) / "compiled" / "yibao"
    url, conn = _connect("yibao_audit_bench_night_history")
    cur = conn.cursor()
    cur.execute("select min(_batch_at)::text from intermediate.int_audit_rule_matches")
    since = cur.fetchone()[0]  # the history's full build: the night's matches are newer
    for model, (types, cols) in FINDING_GROUPS.items():
        prior = ", ".join(
            f"matches.{c}" if c in ("hospital_code", "fee_line_id")
            else "(prior.key ->> 'charge_date')::date" if c == "charge_date" else f"prior.key ->> '{c}'"
            for c in cols)
        in_types = ", ".join(f"'{t}'" for t in types)
        cur.execute(f"""
            create temporary table {model}__touched as
            select distinct {', '.join(cols)} from (
                select {', '.join(cols)} from intermediate.int_audit_rule_matches
                where _batch_at > '{since}'::timestamptz and rule_type in ({in_types})
                union all
                select {prior} from intermediate.int_audit_rule_matches as matches
                cross join lateral jsonb_array_elements(matches._prior_keys) as prior (key)
                where matches._batch_at > '{since}'::timestamptz and prior.key ->> 'rule_type' in ({in_types})
            ) as touched;
            analyze pg_temp.{model}__touched""")
    # the touched visits of the deductible lines and of R14/R19 (macro audit_touched_visits_tables)
    windows = "'daily_quantity', 'min_interval_days', 'repeat_exam'"
    changed = f"""
        select changed.hospital_code, changed.visit_id from intermediate.int_audit_rule_matches as changed
        where changed._batch_at > '{since}'::timestamptz and changed.visit_id is not null
        union
        select changed.hospital_code, prior.key ->> 'visit_id' from intermediate.int_audit_rule_matches as changed
        cross join lateral jsonb_array_elements(changed._prior_keys) as prior (key)
        where changed._batch_at > '{since}'::timestamptz and prior.key ->> 'visit_id' is not null"""
    cur.execute(f"""
        create temporary table int_audit_deductible_lines__windows as
        select patient_key, rule_id, coalesce(min(charge_date), '-infinity'::date) as from_date from (
            select patient_key, rule_id, charge_date from intermediate.int_audit_rule_matches
            where _batch_at > '{since}'::timestamptz and rule_type in ({windows})
            union all
            select prior.key ->> 'patient_key', prior.key ->> 'rule_id', (prior.key ->> 'charge_date')::date
            from intermediate.int_audit_rule_matches as matches
            cross join lateral jsonb_array_elements(matches._prior_keys) as prior (key)
            where matches._batch_at > '{since}'::timestamptz and prior.key ->> 'rule_type' in ({windows})
        ) as touched
        group by patient_key, rule_id;
        analyze pg_temp.int_audit_deductible_lines__windows;
        create temporary table int_audit_deductible_lines__visits as
        {changed}
        union
        select window_matches.hospital_code, window_matches.visit_id
        from pg_temp.int_audit_deductible_lines__windows as window_groups
        cross join lateral (
            select matches.hospital_code, matches.visit_id from intermediate.int_audit_rule_matches as matches
            where matches.patient_key = window_groups.patient_key and matches.rule_id = window_groups.rule_id
              and matches.rule_type in ({windows}) and matches.severity = 'violation'
              and matches.visit_id is not null and matches.charge_date >= window_groups.from_date
        ) as window_matches;
        analyze pg_temp.int_audit_deductible_lines__visits;
        -- the model reads what its pre-hook (macro audit_deductible_lines_diff) re-derived and found
        -- stored; the rows the night wrote stand in for both (same columns)
        create temporary table int_audit_deductible_lines__lines as
        select hospital_code, visit_id, fee_line_id, rule_id, rule_type, diagnosis_prefixes, flagged_amount
        from intermediate.int_audit_deductible_lines where _batch_at > '{since}'::timestamptz;
        analyze pg_temp.int_audit_deductible_lines__lines;
        create temporary table int_audit_deductible_lines__stored as
        select ctid as row_ctid, * from intermediate.int_audit_deductible_lines
        where _batch_at > '{since}'::timestamptz;
        analyze pg_temp.int_audit_deductible_lines__stored;
        create temporary table int_audit_claim_rules__visits as
        {changed}
        union
        select distinct hospital_code, visit_id from intermediate.int_claims_with_deductions
        where _batch_at > (select min(_batch_at) from intermediate.int_claims_with_deductions)
          and hospital_code is not null and visit_id is not null;
        analyze pg_temp.int_audit_claim_rules__visits""")
    # R21's months (macro audit_exam_results_delete_touched)
    cur.execute(f"""
        create temporary table int_exam_results__months as
        select hospital_code, date_trunc('month', charge_date)::date as month_start
        from intermediate.int_audit_rule_matches
        where _batch_at > '{since}'::timestamptz and rule_type = 'positive_rate' and charge_date is not null
        union
        select matches.hospital_code, date_trunc('month', (prior.key ->> 'charge_date')::date)::date
        from intermediate.int_audit_rule_matches as matches
        cross join lateral jsonb_array_elements(matches._prior_keys) as prior (key)
        where matches._batch_at > '{since}'::timestamptz and prior.key ->> 'rule_type' = 'positive_rate'
          and prior.key ->> 'charge_date' is not null;
        analyze pg_temp.int_exam_results__months""")
    cur.execute("create temporary table int_claims_with_deductions__night as select * from staging.stg_claims"
                " where business_date = %s; analyze pg_temp.int_claims_with_deductions__night", (NIGHT_DAY,))
    # int_audit_rule_matches' pre-hook (macro audit_matches_take_prior): the night's lines, and the
    # prior keys of their deleted matches (none are deleted here: the kept table holds tonight's matches)
    cur.execute("create temporary table int_audit_rule_matches__lines as"
                " select *, false as _has_other_versions from staging.stg_fee_lines where business_date = %s;"
                " analyze pg_temp.int_audit_rule_matches__lines;"
                " create temporary table int_audit_rule_matches__prior as"
                " select hospital_code, fee_line_id, _prior_keys as prior_keys"
                " from intermediate.int_audit_rule_matches where false", (NIGHT_DAY,))
    for model in EXPLAINED:
        if args.models and model not in args.models.split(","):
            continue
        path = next(target.glob(f"models/**/{model}.sql"))
        sql = path.read_text()
        sql = re.sub(r'"yibao_audit_bench_night_\w+"\.', "", sql)
        cur.execute(("explain (analyze, buffers) " if args.analyze else "explain ") + sql)
        plan = [r[0] for r in cur.fetchall()]
        seq = sorted({re.sub(r"\s+\(.*", "", line.strip().removeprefix("->").strip())
                      for line in plan if "Seq Scan on" in line and "__night" not in line
                      and any(t in line for t in BIG_TABLES)})
        print(f"  {model:<34} {'; '.join(seq) if seq else 'no seq scan of a big table'}",
              flush=True)
        if args.verbose:
            print("\n".join(plan))
    conn.close()


def drop(args) -> None:
    pg.admin_sql([f'drop database if exists "yibao_audit_bench_{args.history}"',
                  f'drop database if exists "yibao_audit_bench_{args.history}_raw"',
                  'drop database if exists "yibao_audit_bench_night_history"',
                  'drop database if exists "yibao_audit_bench_night_empty"'])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["raw", "history", "night", "explain", "drop", "all"])
    ap.add_argument("--history", type=int, default=1_000_000)
    ap.add_argument("--night", type=int, default=50_000)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--keep", action="store_true", help="keep the night databases (and the raw template)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="night: run the pair this many times (each on a fresh copy of the template), then "
                         "print every pair and the median ratio")
    ap.add_argument("--warm", action="store_true",
                    help="night: read each night database's files into the OS cache before the timed night")
    ap.add_argument("--night-ids", choices=["after", "interleaved"], default="after",
                    help="night: the ids of the night's new visits, lines and settlements sort after every "
                         "id of the history, as a HIS's serial numbers do (after, default), or among them "
                         "(interleaved: the runs before 2026-12-03 afternoon, docs/scale-out.md §7.7)")
    ap.add_argument("--night-before", action="store_true",
                    help="night: on the history, an ordinary night of its last day (half the night's size, not "
                         "timed) before the timed one, so that it starts from a night before, as a bureau's does")
    ap.add_argument("--verbose", action="store_true", help="explain: print the plans")
    ap.add_argument("--models", help="explain: only these models (comma-separated)")
    ap.add_argument("--analyze", action="store_true",
                    help="explain: EXPLAIN (ANALYZE, BUFFERS), i.e. run the queries (times, rows, pages)")
    ap.add_argument("--visits-per-patient", type=float, default=VISITS_PER_PATIENT_YEAR,
                    help="visits per patient and year of the realistic patient pool")
    ap.add_argument("--late-percent", type=float, default=1.0,
                    help="night: visits of the history given a late line and a refund each, in percent of "
                         "the night's lines (default 1; 0: the night's lines are all new visits')")
    ap.add_argument("--legacy-patients", action="store_true",
                    help="the 2026-11 pool: (history + 1 M) / 150 patients, no follow-ups")
    args = ap.parse_args()
    pg.start()
    if args.step == "raw":
        build_raw(args)
    if args.step in ("history", "all"):
        build_history(args)
    if args.step in ("night", "all"):
        pairs = []
        for i in range(args.repeat):
            if args.repeat > 1:
                print(f"pair {i + 1} of {args.repeat}", flush=True)
            results = run_night(args)
            pairs.append((results["history"][0], results["empty"][0]))
        if args.repeat > 1:
            _print_pairs(args.history, pairs)
    if args.step == "explain":
        explain(args)
    if args.step in ("drop", "all"):
        drop(args)


if __name__ == "__main__":
    main()
