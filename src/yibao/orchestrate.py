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


def airflow_env() -> dict[str, str]:
    """The environment of every Airflow process this project starts (CLI runs, standalone, tests).

    The venv's ``bin`` comes first on PATH (Airflow's standalone starts its components by the bare
    name ``airflow``), the API server and UI listen on 127.0.0.1 only, and the simple auth manager's
    generated admin password is kept in ``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated``
    readable by its owner only (0600). Nothing run-specific is set here: the landing root and the
    like are read by the tasks when they run (:func:`yibao.config.landing_root`).
    """
    s = settings()
    env = dict(os.environ)
    meta = pg.url(s, AIRFLOW_DB).replace("postgresql://", "postgresql+psycopg2://", 1)
    venv_bin = str(Path(sys.executable).parent)
    path = env.get("PATH", "")
    if path.split(os.pathsep)[:1] != [venv_bin]:
        env["PATH"] = os.pathsep.join([venv_bin, *(p for p in path.split(os.pathsep) if p and p != venv_bin)])
    host = env.get("AIRFLOW__API__HOST", "127.0.0.1")
    port = env.get("AIRFLOW__API__PORT", "8080")
    env.update(
        {
            "AIRFLOW_HOME": str(s.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Shanghai",
            "AIRFLOW__CORE__EXECUTOR": env.get("AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", meta),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(s.airflow_home / "logs"),
            "AIRFLOW__API__HOST": host,
            "AIRFLOW__API__PORT": port,
            # tasks reach the API server here (Airflow's default, http://localhost:8080, may be another port or ::1)
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": env.get(
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"http://{_loopback(host)}:{port}/execution/"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": env.get(
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(password_file())),
            # the API server's first task start can take a minute or more on a small, busy machine
            # (seen: 45-90 s at load 15-20 on 2 cores); Airflow's 5 s (×5 tries) then fails the task before
            # it starts and the night waits out a 5-minute retry
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": env.get("AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT", "180"),
            "YIBAO_HOME": str(s.home),
            "YIBAO_PG_PORT": str(s.pg_port),
        }
    )
    if not (env.get("YIBAO_PSEUDONYM_KEY") or env.get("AIRFLOW_VAR_YIBAO_PSEUDONYM_KEY")):
        env["AIRFLOW_VAR_YIBAO_PSEUDONYM_KEY"] = _dev_key()
    return env


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "localhost") else ("[::1]" if host == "::" else host)


def password_file() -> Path:
    """Where the simple auth manager keeps the generated admin password (user ``admin``)."""
    return settings().airflow_home / "simple_auth_manager_passwords.json.generated"


def secure_password_file() -> Path:
    """Create the password file owner-only (0600) before Airflow writes the password into it.

    Airflow opens it for appending, so an existing file keeps its mode; an older file is tightened.
    """
    path = password_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
    os.close(fd)
    path.chmod(0o600)
    return path


def airflow_bin() -> str:
    exe = Path(sys.executable).with_name("airflow")
    return str(exe) if exe.exists() else (shutil.which("airflow") or "airflow")


def run_airflow(*args: str, check: bool = True, extra_env: dict | None = None) -> int:
    env = airflow_env()
    env.update(extra_env or {})
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    secure_password_file()
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


def run_dag(dag_id: str, logical_date: dt.date | None, conf: dict, landing: Path | None = None) -> None:
    """Run one real DAG run in-process (``airflow dags test``), or by the scheduler when one is running and
    the DAG is unpaused; raises SystemExit when it fails.

    ``logical_date``: the business date; the run's moment is 03:00 Asia/Shanghai on the next day,
    as a scheduled run's. None: now (the task then picks the business date, as for a REST API run).
    ``landing``: shorthand for the conf's ``landing`` (this run only).
    """
    pg.start()
    ensure_airflow_db()
    if logical_date is None:
        when = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    else:
        when = dt.datetime.combine(logical_date + dt.timedelta(days=1), dt.time(3, 0)).isoformat() + "+08:00"
    # a run by hand fails at the first error instead of waiting out the production retry delays: a run
    # setting (conf), not a parse-time one, so this parse serialises the same DAG as the scheduler's
    conf = {"fail_fast": True, **conf}
    if landing is not None:
        conf.setdefault("landing", str(Path(landing).resolve()))
    if scheduler_running() and not dag_paused(dag_id):
        # `dags test` beside a live scheduler would race it for the same task instances: hand the run
        # to the scheduler instead (its tasks run with the scheduler's settings) and wait for it
        run_id = f"yibao_cli__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
        print(f"a scheduler is running: {dag_id} run {run_id} is handed to it; waiting for it to finish", flush=True)
        # no logical date (as a REST API trigger): the conf names the night, or the task takes the day before now
        run_airflow("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf))
        state = wait_dag_run(dag_id, run_id)
    else:
        run_airflow("dags", "test", dag_id, when, "--conf", json.dumps(conf))
        state = dag_run_state(dag_id, dt.datetime.fromisoformat(when))
    if state != "success":
        raise SystemExit(f"DAG {dag_id} run for {logical_date} ended {state}: see the task logs above")


def dag_run_state(dag_id: str, logical_date: dt.datetime | None = None) -> str | None:
    """State of the newest run of ``dag_id`` (at ``logical_date``, when given) in Airflow's metadata database.

    With the scheduler up, the newest run may be a scheduled one: ``yibao run`` asks for its own.
    """
    import psycopg2

    with psycopg2.connect(pg.url(database=AIRFLOW_DB)) as conn, conn.cursor() as cur:
        cur.execute("select state from dag_run where dag_id = %s and (%s::timestamptz is null or logical_date = %s)"
                    " order by id desc limit 1", (dag_id, logical_date, logical_date))
        row = cur.fetchone()
    return row[0] if row else None


def _airflow_query(sql: str, params=()) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(pg.url(database=AIRFLOW_DB)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def scheduler_running(within_seconds: int = 60) -> bool:
    """Whether an Airflow scheduler on this metadata database has sent a heartbeat lately."""
    rows = _airflow_query(
        "select 1 from job where job_type = 'SchedulerJob' and state = 'running'"
        " and latest_heartbeat > now() - make_interval(secs => %s) limit 1", (within_seconds,))
    return bool(rows)


def dag_paused(dag_id: str) -> bool:
    rows = _airflow_query("select is_paused from dag where dag_id = %s", (dag_id,))
    return bool(rows[0][0]) if rows else True


def wait_dag_run(dag_id: str, run_id: str, poll_seconds: float = 5.0) -> str | None:
    """Wait until the run ``run_id`` of ``dag_id`` has finished; its final state."""
    import time

    while True:
        rows = _airflow_query("select state from dag_run where dag_id = %s and run_id = %s", (dag_id, run_id))
        state = rows[0][0] if rows else None
        if state in ("success", "failed"):
            return state
        time.sleep(poll_seconds)
