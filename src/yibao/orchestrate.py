"""Running the real Airflow DAGs from the command line (``airflow dags test``), with the project's
Airflow home, DAG folder and metadata database (database ``airflow`` on the same PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from . import pg
from .config import AIRFLOW_DB, PROJECT_ROOT, settings


def _dev_key() -> str:
    """A per-installation pseudonymisation key kept outside the repository (0600)."""
    path = settings().home / "secrets" / "pseudonym.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def airflow_env(landing: Path | None = None) -> dict[str, str]:
    s = settings()
    env = dict(os.environ)
    meta = pg.url(s, AIRFLOW_DB).replace("postgresql://", "postgresql+psycopg2://", 1)
    env.update(
        {
            "AIRFLOW_HOME": str(s.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Shanghai",
            "AIRFLOW__CORE__EXECUTOR": env.get("AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", meta),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(s.airflow_home / "logs"),
            "AIRFLOW__API__PORT": env.get("AIRFLOW__API__PORT", "8080"),
            "YIBAO_HOME": str(s.home),
            "YIBAO_PG_PORT": str(s.pg_port),
        }
    )
    if not (env.get("YIBAO_PSEUDONYM_KEY") or env.get("AIRFLOW_VAR_YIBAO_PSEUDONYM_KEY")):
        env["AIRFLOW_VAR_YIBAO_PSEUDONYM_KEY"] = _dev_key()
    if landing is not None:
        env["YIBAO_LANDING"] = str(Path(landing).resolve())
    return env


def airflow_bin() -> str:
    exe = Path(sys.executable).with_name("airflow")
    return str(exe) if exe.exists() else (shutil.which("airflow") or "airflow")


def run_airflow(*args: str, landing: Path | None = None, check: bool = True, extra_env: dict | None = None) -> int:
    env = airflow_env(landing)
    env.update(extra_env or {})
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([airflow_bin(), *args], env=env)
    if check and proc.returncode != 0:
        raise SystemExit(f"airflow {' '.join(args[:3])} failed with exit code {proc.returncode}")
    return proc.returncode


def ensure_airflow_db() -> None:
    """Migrate Airflow's metadata database once per Airflow version (idempotent)."""
    from importlib.metadata import version  # importing airflow here would create ~/airflow

    s = settings()
    marker = s.airflow_home / f".migrated-{version('apache-airflow')}"
    if marker.exists():
        return
    run_airflow("db", "migrate")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(dt.datetime.now().isoformat(), encoding="utf-8")


def run_dag(dag_id: str, logical_date: dt.date, conf: dict, landing: Path | None = None) -> None:
    """Run one real DAG run in-process (``airflow dags test``); raises SystemExit when it fails."""
    pg.start()
    ensure_airflow_db()
    # the logical date is the run's moment: 03:00 Asia/Shanghai on the day after the business date
    when = dt.datetime.combine(logical_date + dt.timedelta(days=1), dt.time(3, 0)).isoformat() + "+08:00"
    # a run by hand fails fast instead of waiting out the production retry delays
    retries = {"YIBAO_TASK_RETRIES": os.environ.get("YIBAO_TASK_RETRIES", "0")}
    run_airflow("dags", "test", dag_id, when, "--conf", json.dumps(conf), landing=landing, extra_env=retries)
    state = dag_run_state(dag_id)
    if state != "success":
        raise SystemExit(f"DAG {dag_id} run for {logical_date} ended {state}: see the task logs above")


def dag_run_state(dag_id: str) -> str | None:
    """State of the newest run of ``dag_id`` in Airflow's metadata database."""
    import psycopg2

    with psycopg2.connect(pg.url(database=AIRFLOW_DB)) as conn, conn.cursor() as cur:
        cur.execute("select state from dag_run where dag_id = %s order by id desc limit 1", (dag_id,))
        row = cur.fetchone()
    return row[0] if row else None
