"""``yibao`` — the command line of the 医保 governance warehouse.

    yibao db start|stop|reset|status     the embedded PostgreSQL (or report on the external one)
    yibao url [--airflow]                 connection URL of the warehouse (psql, BI tools, outside checks)
    yibao generate --out DIR …            a synthetic city's landing zone
    yibao run [--landing DIR] [--through D] [--full-walk]  the real nightly DAG (Airflow) on the landing root
    yibao reports [--month YYYY-MM]       monthly settlement reports (real monthly_settlement DAG)
    yibao load --landing DIR --through D  only the loader (no dbt, no GX, no publish), for debugging
    yibao airflow …                       the airflow CLI with this project's environment
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in YYYY-MM-DD form") from None


def cmd_db(args) -> int:
    from . import db, pg

    if args.action == "start":
        print(pg.start())
        db.bootstrap()
    elif args.action == "stop":
        pg.stop()
        print("stopped")
    elif args.action == "reset":
        pg.reset()
        print("embedded PostgreSQL stopped and its data directory deleted")
    else:
        from .config import settings

        s = settings()
        if s.embedded:
            if pg.is_running(s):
                print(f"embedded PostgreSQL in {s.pgdata}: running on port {pg.running_port(s) or s.pg_port}")
            else:
                print(f"embedded PostgreSQL in {s.pgdata}: stopped (starts on port {s.pg_port})")
        else:
            print(f"external PostgreSQL: {pg.url(s)}")
    return 0


def cmd_url(args) -> int:
    from . import pg
    from .config import AIRFLOW_DB

    print(pg.url(database=AIRFLOW_DB) if args.airflow else pg.url())
    return 0


def cmd_generate(args) -> int:
    from .generator import generate_city

    summary = generate_city(
        Path(args.out), seed=args.seed, hospitals=args.hospitals, start=args.start, end=args.end,
        volume=args.volume, defect_rate=args.defect_rate, fee_detail=args.fee_detail, fee_lines=args.fee_lines,
        audit_rate=args.audit_rate,
    )
    print(summary)
    return 0


def cmd_run(args) -> int:
    # the same settings as a scheduled run, read by the task when it runs (yibao.pipeline.resolve_night);
    # --landing / --through only override them for this run
    conf = {}
    if args.landing:
        landing = Path(args.landing).resolve()
        if not landing.is_dir():
            raise SystemExit(f"landing directory {landing} does not exist")
        conf["landing"] = str(landing)
    if args.through:
        conf["through"] = args.through.isoformat()
    if args.full_walk:
        conf["full_walk"] = True
    print(f"night through {args.through or '(the configured default)'}: nightly_ingest on"
          f" {conf.get('landing', 'the configured landing root')}")
    result = _run_dag_steps("nightly_ingest", args.through, conf, verbose=args.verbose)
    _print_results(result.run_id, args.through or _last_through())
    print(f"\nAirflow log: {result.log_file}")
    return 0


def _last_through() -> dt.date | None:
    """The business date the latest nightly run loaded through (it picked it when --through was not given)."""
    from . import db

    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("select as_of_date from audit.run_log where step = 'load' order by logged_at desc limit 1")
        row = cur.fetchone()
    return row[0] if row else None


def _run_dag_steps(dag_id: str, logical_date: dt.date | None, conf: dict, *, landing: Path | None = None,
                   verbose: bool = False):
    """One real DAG run, one line per task as it ends; on failure the failing step, its first error
    lines and the log file, then exit status 1."""
    from .orchestrate import DagRunFailed, run_dag

    def on_step(outcome) -> None:
        print(_step_line(dag_id, outcome), flush=True)

    try:
        return run_dag(dag_id, logical_date, conf, landing=landing, verbose=verbose, on_step=on_step)
    except DagRunFailed as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def _step_line(dag_id: str, outcome) -> str:
    ran = outcome.seconds is not None and outcome.state not in ("upstream_failed", "skipped")
    seconds = f"{outcome.seconds:7.1f}s" if ran else "       -"
    try:
        detail = _step_detail(dag_id, outcome)
    except Exception as exc:  # noqa: BLE001 - a summary line must never stop the run it reports on
        detail = f"(no detail: {exc})"
    return f"  {outcome.label:<16} {outcome.state or '-':<15} {seconds}  {detail}".rstrip()


def _step_detail(dag_id: str, outcome) -> str:
    """Rows, checks and warnings of a step: from audit.run_log for the night, from the task's
    return value for the monthly reports."""
    if outcome.state != "success":
        return ""
    if dag_id == "nightly_ingest":
        from . import db

        with db.connect() as conn, conn.cursor() as cur:
            cur.execute("select detail from audit.run_log where run_id = %s and step = %s order by logged_at desc"
                        " limit 1", (outcome.run_id, outcome.task_id))
            row = cur.fetchone()
        d = (row[0] if row else None) or {}
        if outcome.task_id == "load" and d:
            held = f", {d['rows_held']:,} held back in rejected files" if d.get("rows_held") else ""
            return (f"{d.get('rows_loaded', 0):,} rows loaded, {d.get('rows_quarantined', 0):,} quarantined{held}; files"
                    f" {d.get('files_loaded', 0)} loaded, {d.get('files_rejected', 0)} rejected,"
                    f" {d.get('files_skipped', 0)} already loaded")
        if outcome.task_id == "transform" and d:
            return f"{d.get('models', 0)} models, {d.get('tests', 0)} tests, {d.get('warnings', 0)} warnings"
        if "errors" in d:
            return f"{d['errors']} errors, {d.get('warnings', 0)} warnings"
        return ""
    from .orchestrate import task_result

    value = task_result(outcome)
    if isinstance(value, list):
        return "months: " + (", ".join(map(str, value)) or "none due")
    if isinstance(value, dict) and "files" in value:
        hospitals = value.get("hospitals")
        count = len(hospitals) if isinstance(hospitals, list | tuple) else hospitals
        return f"{value.get('month')}: {value['files']} files, {count} hospitals"
    return ""


def _print_results(run_id: str | None, through: dt.date) -> None:
    """The night's summary for the operator: what it refused, what the checks found, what is published."""
    from . import db

    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "select l.reject_reason, count(*), min(l.source_file) from raw.load_ledger l"
            " where l.status = 'rejected' and l.loaded_at >= (select min(logged_at) - interval '1 hour'"
            " from audit.run_log where run_id = %s) group by 1 order by 2 desc",
            (run_id,),
        )
        rejects = cur.fetchall()
        cur.execute(
            "select suite || '.' || check_name, severity, sum(failed) from audit.dq_results"
            " where run_id = %s and failed > 0 group by 1, 2 order by 2, 3 desc",
            (run_id,),
        )
        checks = cur.fetchall()
        cur.execute("select max(as_of_date) from audit.publish_log")
        published = cur.fetchone()[0]
        cur.execute("select table_name from information_schema.tables where table_schema = 'marts' order by 1")
        tables = [r[0] for r in cur.fetchall()]
        counts = []
        for t in tables:
            cur.execute(f'select count(*) from marts."{t}"')
            counts.append((t, cur.fetchone()[0]))
    print(f"\n=== night through {through} (run {run_id}) ===")
    if rejects:
        print("  rejected files: " + "; ".join(f"{r} ×{n} (e.g. {f})" for r, n, f in rejects))
    if checks:
        print("  checks that found something (failed rows):")
        for name, severity, failed in checks[:15]:
            print(f"    {severity:<7} {name:<55} {failed:>8,}")
        if len(checks) > 15:
            print(f"    … {len(checks) - 15} more in audit.dq_results")
    print(f"\nPublished marts as of {published}:")
    for t, n in counts:
        print(f"  marts.{t:<32} {n:>10,} rows")


def cmd_reports(args) -> int:
    from . import db

    if args.month:
        month = dt.date.fromisoformat(args.month + "-01")
    else:
        with db.connect() as conn, conn.cursor() as cur:
            cur.execute("select max(as_of_date) from audit.publish_log")
            as_of = cur.fetchone()[0]
        if as_of is None:
            raise SystemExit("nothing published yet: run `yibao run` first")
        nxt = as_of + dt.timedelta(days=1)
        month = (as_of.replace(day=1) if nxt.day == 1 else (as_of.replace(day=1) - dt.timedelta(days=1)).replace(day=1))
    last_day = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    print(f"monthly settlement reports for {month:%Y-%m}: monthly_settlement")
    result = _run_dag_steps("monthly_settlement", last_day, {"month": f"{month:%Y-%m}"}, verbose=args.verbose)
    from .config import settings

    print(f"reports: {settings().reports_dir / f'{month:%Y-%m}'}   (Airflow log: {result.log_file})")
    return 0


def cmd_load(args) -> int:
    from . import db
    from .loader import load_landing

    db.bootstrap()
    night = load_landing(Path(args.landing), args.through, since=args.since, full_walk=args.full_walk)
    print(night.summary_text())
    return 0


def cmd_airflow(args) -> int:
    from . import pg
    from .orchestrate import ensure_airflow_db, run_airflow

    pg.start()
    ensure_airflow_db()
    if args.rest[:1] == ["standalone"]:
        from .orchestrate import airflow_env, secure_password_file

        env = airflow_env()
        print(f"Airflow UI and REST API: http://{env['AIRFLOW__API__HOST']}:{env['AIRFLOW__API__PORT']} (loopback only);"
              f" user admin, password in {secure_password_file()} (readable by you only)", flush=True)
    return run_airflow(*args.rest, check=False)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="yibao", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("db", help="embedded PostgreSQL: start, stop, reset, status")
    p.add_argument("action", choices=["start", "stop", "reset", "status"])
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("url", help="print the warehouse connection URL")
    p.add_argument("--airflow", action="store_true", help="the Airflow metadata database instead")
    p.set_defaults(func=cmd_url)

    p = sub.add_parser("generate", help="write a synthetic city's landing zone")
    p.add_argument("--out", required=True, help="landing directory to write")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--hospitals", type=int, default=6)
    p.add_argument("--start", type=_date, required=True)
    p.add_argument("--end", type=_date, required=True)
    p.add_argument("--volume", type=float, default=1.0, help="rows scale factor per hospital and day")
    p.add_argument("--defect-rate", type=float, default=0.01)
    p.add_argument("--fee-detail", type=float, default=0.0,
                   help="share of hospitals that send fee_detail.csv (0 = none; writes reference/audit_rules.csv)")
    p.add_argument("--fee-lines", type=float, default=4.0,
                   help="mean fee lines of an outpatient visit (an inpatient stay: about half that a day)")
    p.add_argument("--audit-rate", type=float, default=0.03,
                   help="share of settled visits that get one injected smart-audit violation")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("run", help="run the nightly DAG (real Airflow run) on the landing root")
    p.add_argument("--landing", help="landing directory laid out per docs/extract-contract.md (default: the configured"
                   " landing root: Airflow Variable yibao_landing, else YIBAO_LANDING, else $YIBAO_HOME/landing)")
    p.add_argument("--through", type=_date, help="latest business date to load (default: yesterday in Asia/Shanghai,"
                   " but not later than the newest <YYYYMMDD>/ folder)")
    p.add_argument("--full-walk", action="store_true",
                   help="look for late files in every landing folder, not only those of the last 92 business dates"
                   " (a full walk also happens by itself every 7 nights)")
    p.add_argument("-v", "--verbose", action="store_true", help="show Airflow's whole output, not one line per step")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("reports", help="render a month's settlement reports (real monthly_settlement DAG run)")
    p.add_argument("--month", help="YYYY-MM (default: the latest month whose last day is published)")
    p.add_argument("-v", "--verbose", action="store_true", help="show Airflow's whole output, not one line per step")
    p.set_defaults(func=cmd_reports)

    p = sub.add_parser("load", help="only load landing files into raw tables")
    p.add_argument("--landing", required=True)
    p.add_argument("--through", type=_date, required=True)
    p.add_argument("--since", type=_date, help="backfill: only business dates from this one")
    p.add_argument("--full-walk", action="store_true",
                   help="look for late files in every landing folder, not only those of the last 92 business dates")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("airflow", help="the airflow CLI with this project's environment")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_airflow)

    args = parser.parse_args(argv)
    from .pg import PostgresError
    from .pseudonym import MissingKey

    try:
        return args.func(args)
    except (PostgresError, MissingKey) as exc:  # an operator's fix, not a bug: the message, no traceback
        print(f"yibao {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
