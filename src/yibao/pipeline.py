"""The night's steps, called by the Airflow tasks (dags/nightly_ingest.py) and by tests.

load → validate the raw batch → dbt build into ``marts_build`` → validate the marts → publish
(swap ``marts_build`` and ``marts`` in one transaction). Each step is idempotent: re-running it for
the same night gives the same warehouse.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from . import db
from .config import MissingLandingRoot, business_date_before, landing_root, newest_business_date

if TYPE_CHECKING:
    from .transform import DbtRun

log = logging.getLogger("yibao.pipeline")

BUILD_SCHEMA = "marts_build"
PUBLISHED_SCHEMA = "marts"


@contextmanager
def airflow_connection(conn_id: str):
    """Inside an Airflow task, use the Airflow connection ``conn_id`` (if defined) for the warehouse.

    Production defines ``yibao_loader`` (load) and ``yibao_transformer`` (validate, dbt, publish) as
    Airflow connections (env ``AIRFLOW_CONN_*``, the metadata DB or a secrets backend), so credentials
    live in Airflow, not in code; without them the embedded server or ``YIBAO_DATABASE_URL`` is used.
    """
    url = None
    try:
        from airflow.sdk import Connection

        url = Connection.get(conn_id).get_uri()
    except Exception:  # noqa: BLE001 - not defined (or not inside Airflow): keep the default
        url = None
    if not url:
        yield
        return
    url = url.replace("postgres://", "postgresql://", 1).split("?", 1)[0]
    previous = os.environ.get("YIBAO_DATABASE_URL")
    os.environ["YIBAO_DATABASE_URL"] = url
    log.info("warehouse connection: Airflow connection %s", conn_id)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("YIBAO_DATABASE_URL", None)
        else:
            os.environ["YIBAO_DATABASE_URL"] = previous


def resolve_night(params: dict | None, logical_date=None, run_after=None) -> tuple[Path, dt.date, list[str]]:
    """The landing root and business date of one nightly run, read when the task runs (not at parse time).

    Landing root: the run's conf ``landing`` if given, else :func:`yibao.config.landing_root`
    (Airflow Variable ``yibao_landing``, else ``YIBAO_LANDING``, else ``$YIBAO_HOME/landing``); a
    missing root raises :class:`MissingLandingRoot` with one line saying which setting named it.

    Business date ("through"): the run's conf ``through`` if given, else the day before the run's
    logical date in Asia/Shanghai (a run triggered without one, as Airflow 3's REST API does by
    default, uses the moment it was triggered: ``run_after``), but never later than the newest
    ``<YYYYMMDD>/`` folder of the landing root: a night whose folder has not arrived yet publishes as
    of the newest delivered day, with a warning, and the missing day is loaded when it arrives.
    """
    params = params or {}
    if params.get("landing"):
        landing, source = Path(params["landing"]).expanduser(), "the run's conf 'landing'"
    else:
        landing, source = landing_root()
    if not landing.is_dir():
        raise MissingLandingRoot(
            f"landing root {landing} does not exist (from {source}; set the Airflow Variable yibao_landing,"
            " or YIBAO_LANDING, to the folder the hospitals deliver into)"
        )
    warnings: list[str] = []
    if params.get("through"):
        return landing, dt.date.fromisoformat(str(params["through"])), warnings
    business = business_date_before(logical_date or run_after)
    newest = newest_business_date(landing)
    if newest is None:
        warnings.append(f"{landing} has no <YYYYMMDD>/ business-date folder: nothing delivered yet")
        return landing, business, warnings
    if newest < business:
        warnings.append(f"no deliveries for {business} yet: this night is published as of the newest delivered"
                        f" business date {newest}")
        return landing, newest, warnings
    return landing, business, warnings


@contextmanager
def task_errors(params: dict | None = None):
    """Inside an Airflow task: how an error ends the task.

    An operator's error (missing landing root, missing pseudonymisation key) fails at once, without
    retries, with its one-line message. With the run's conf ``fail_fast`` (``yibao run`` and
    ``yibao reports`` set it) every error does, so a run by hand does not wait out the retry delays;
    otherwise the task's retries apply. A run setting, not a parse-time one: every process that
    parses the DAG file serialises the same DAG.
    """
    from .pseudonym import MissingKey

    try:
        yield
    except (MissingLandingRoot, MissingKey) as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from None
    except Exception as exc:
        if (params or {}).get("fail_fast"):
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        raise


def _log_step(run_id: str, step: str, as_of: dt.date | None, status: str, seconds: float, detail: dict) -> None:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "insert into audit.run_log (run_id, step, as_of_date, status, seconds, detail) values (%s, %s, %s, %s, %s, %s)",
            (run_id, step, as_of, status, round(seconds, 3), json.dumps(detail, default=str, ensure_ascii=False)),
        )


def setup() -> None:
    """Create schemas, roles and raw tables (idempotent) on the embedded server.

    In production the nightly login may not create objects: the bootstrap runs once per deployment
    (``warehouse-init`` in infra/compose, see docs/deployment.md), not in the nightly task.
    """
    from .config import settings

    if settings().embedded:
        db.bootstrap()


def load(landing: Path, through: dt.date, run_id: str, since: dt.date | None = None,
         warnings: list[str] | None = None, full_walk: bool = False) -> dict:
    from .loader import load_landing

    started = time.perf_counter()
    night = load_landing(Path(landing), through, since=since, full_walk=full_walk)
    night.warnings[:0] = list(warnings or [])
    if not any(f.file.business_date == through for f in night.files):
        night.warnings.append(f"no deliveries for business date {through} (no file in {Path(landing) / f'{through:%Y%m%d}'})")
    text = night.summary_text()
    log.info("%s", text)
    for w in night.warnings:
        log.warning("%s", w)
    out = {
        "through": through.isoformat(),
        "load_ids": night.load_ids,
        "files_loaded": sum(1 for f in night.files if f.status == "loaded"),
        "files_rejected": sum(1 for f in night.files if f.status == "rejected"),
        "files_skipped": night.files_skipped,
        # the walk of the folders before the night's, beside its load (None: there was none)
        "walk": None if night.walk_seconds is None else {
            "from": night.walked_from.isoformat() if night.walked_from else None,  # None: every folder
            "listed": night.walk_listed, "known": night.skipped_earlier, "seconds": round(night.walk_seconds, 3)},
        "rows_read": sum(f.rows_read for f in night.files),
        "rows_loaded": sum(f.rows_loaded for f in night.files),
        "rows_quarantined": sum(f.rows_quarantined for f in night.files),
        "rows_held": sum(f.rows_held or 0 for f in night.files if f.status == "rejected"),
        "notes": night.warnings,
        "summary": text,
    }
    _log_step(run_id, "load", through, "ok", time.perf_counter() - started,
              {k: v for k, v in out.items() if k not in ("load_ids", "summary")})
    return out


def validate_raw(through: dt.date, load_ids: list[int], run_id: str) -> dict:
    from . import pg
    from .quality import validate_night

    started = time.perf_counter()
    report = validate_night(pg.url(), through, load_ids, run_id)
    log.info("%s", report.summary_text())
    _log_step(run_id, "validate_raw", through, "failed" if report.errors else "ok", time.perf_counter() - started,
              {"errors": len(report.errors), "warnings": len(report.warnings)})
    report.raise_if_errors()
    return {"errors": len(report.errors), "warnings": len(report.warnings)}


def transform(through: dt.date, run_id: str) -> DbtRun:
    """dbt build of the night into the build schema; returns what it ran (an upgrade's refreshes included)."""
    from .transform import build

    started = time.perf_counter()
    try:
        run = build(as_of=through, marts_schema=BUILD_SCHEMA)
    except Exception:
        _log_step(run_id, "transform", through, "failed", time.perf_counter() - started, {})
        raise
    log.info("%s", run.summary_text())
    kinds = [n.resource_type for n in run.nodes]
    _log_step(run_id, "transform", through, "ok", time.perf_counter() - started,
              {"models": kinds.count("model"), "tests": kinds.count("test"), "warnings": len(run.warnings)})
    return run


def validate_marts(through: dt.date, run_id: str) -> dict:
    from . import pg
    from .quality import validate_marts as _validate

    started = time.perf_counter()
    report = _validate(pg.url(), BUILD_SCHEMA, through, run_id)
    log.info("%s", report.summary_text())
    _log_step(run_id, "validate_marts", through, "failed" if report.errors else "ok", time.perf_counter() - started,
              {"errors": len(report.errors), "warnings": len(report.warnings)})
    report.raise_if_errors()
    return {"errors": len(report.errors), "warnings": len(report.warnings)}


def publish(through: dt.date, run_id: str, files_loaded: int = 0) -> dict:
    """Swap the validated build schema in as ``marts``, atomically; the old marts become the next build base."""
    started = time.perf_counter()
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("select nspname from pg_namespace where nspname in (%s, %s)", (BUILD_SCHEMA, PUBLISHED_SCHEMA))
        present = {r[0] for r in cur.fetchall()}
        if BUILD_SCHEMA not in present:
            raise RuntimeError(f"nothing to publish: schema {BUILD_SCHEMA} does not exist (did the dbt build run?)")
        cur.execute("lock table audit.publish_log in exclusive mode")
        if PUBLISHED_SCHEMA in present:
            cur.execute(f"alter schema {PUBLISHED_SCHEMA} rename to marts_previous")
        cur.execute(f"alter schema {BUILD_SCHEMA} rename to {PUBLISHED_SCHEMA}")
        if PUBLISHED_SCHEMA in present:
            cur.execute(f"alter schema marts_previous rename to {BUILD_SCHEMA}")
        cur.execute("select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
                    " where n.nspname = 'audit' and p.proname = 'apply_marts_security'")
        if cur.fetchone():
            cur.execute("select audit.apply_marts_security(%s)", (PUBLISHED_SCHEMA,))
        cur.execute("insert into audit.publish_log (as_of_date, run_id, load_ids) values (%s, %s, %s)",
                    (through, run_id, files_loaded))
    _log_step(run_id, "publish", through, "ok", time.perf_counter() - started, {})
    return {"as_of_date": through.isoformat()}
