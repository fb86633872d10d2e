"""Running the real Airflow DAGs from the command line (``airflow dags test``), with the project's
Airflow home, DAG folder and metadata database (database ``airflow`` on the same PostgreSQL).

Airflow's own output (a few thousand lines a night: scheduler internals, every task's log) goes to
a log file under ``<YIBAO_HOME>/logs/runs/``; the caller is told as each task ends (``on_step``) and
gets the failing task and its first error lines when the run fails (:class:`DagRunFailed`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
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


def run_airflow(*args: str, check: bool = True, extra_env: dict | None = None,
                log_file: Path | None = None, verbose: bool = True,
                on_line: Callable[[str], None] | None = None) -> int:
    """Run the airflow CLI. Its output goes to the terminal, or (``log_file``) appended to that file,
    and also to the terminal when ``verbose``; ``on_line`` sees every output line as it comes."""
    env = airflow_env()
    env.update(extra_env or {})
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    secure_password_file()
    if log_file is None and on_line is None:
        returncode = subprocess.run([airflow_bin(), *args], env=env).returncode
    else:
        returncode = _stream([airflow_bin(), *args], env, log_file, verbose, on_line)
    if check and returncode != 0:
        where = f" (log: {log_file})" if log_file else ""
        raise SystemExit(f"airflow {' '.join(args[:3])} failed with exit code {returncode}{where}")
    return returncode


def _stream(cmd: list[str], env: dict, log_file: Path | None, verbose: bool,
            on_line: Callable[[str], None] | None) -> int:
    out = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_file, "a", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                encoding="utf-8", errors="replace", bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            if out is not None:
                out.write(line)
            if verbose or out is None:
                sys.stdout.write(line)
                sys.stdout.flush()
            if on_line is not None:
                on_line(line)
        return proc.wait()
    finally:
        if out is not None:
            out.close()


def new_log_file(name: str) -> Path:
    """A fresh file for one command's Airflow output: ``<YIBAO_HOME>/logs/runs/<name>_<timestamp>.log``."""
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    path = settings().home / "logs" / "runs" / f"{name}_{stamp}.log"
    n = 1
    while path.exists():
        n += 1
        path = path.with_name(f"{name}_{stamp}_{n}.log")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def ensure_airflow_db(log_file: Path | None = None, verbose: bool = True) -> None:
    """Migrate Airflow's metadata database once per Airflow version (idempotent)."""
    from importlib.metadata import version  # importing airflow here would create ~/airflow

    s = settings()
    marker = s.airflow_home / f".migrated-{version('apache-airflow')}"
    if marker.exists():
        return
    run_airflow("db", "migrate", log_file=log_file, verbose=verbose)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(dt.datetime.now().isoformat(), encoding="utf-8")


@dataclass
class TaskOutcome:
    """One task instance of a DAG run, as Airflow's metadata database has it when it ended."""

    task_id: str
    map_index: int
    state: str | None
    seconds: float | None
    run_id: str

    @property
    def label(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"


@dataclass
class DagRunResult:
    dag_id: str
    run_id: str | None
    state: str | None
    log_file: Path
    tasks: list[TaskOutcome] = field(default_factory=list)
    error_lines: list[str] = field(default_factory=list)

    @property
    def failed_tasks(self) -> list[TaskOutcome]:
        return [t for t in self.tasks if t.state == "failed"]


class DagRunFailed(SystemExit):
    """A DAG run did not succeed: names the failing task(s), the first error lines and the log file."""

    def __init__(self, result: DagRunResult, logical_date: dt.date):
        self.result = result
        failed = ", ".join(t.label for t in result.failed_tasks) or "(no task failed: see the log)"
        lines = [f"DAG {result.dag_id} run for {logical_date} ended {result.state}: failed at {failed}"]
        lines += [f"  {line}" for line in result.error_lines]
        lines.append(f"full log: {result.log_file}")
        super().__init__("\n".join(lines))


_TASK_END = re.compile(r"\[DAG TEST\] end task task_id=(\S+) map_index=(-?\d+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERROR_LEVEL = re.compile(r"\[(error|critical)\s*\]")
MAX_ERROR_LINES = 12


def run_dag(dag_id: str, logical_date: dt.date | None, conf: dict, landing: Path | None = None, *,
            verbose: bool = False, on_step: Callable[[TaskOutcome], None] | None = None,
            log_file: Path | None = None) -> DagRunResult:
    """Run one real DAG run in-process (``airflow dags test``), or by the scheduler when one is running and
    the DAG is unpaused.

    ``logical_date``: the business date; the run's moment is 03:00 Asia/Shanghai on the next day,
    as a scheduled run's. None: now (the task then picks the business date, as for a REST API run).
    ``landing``: shorthand for the conf's ``landing`` (this run only).
    Airflow's output goes to ``log_file`` (default: a new file under ``<YIBAO_HOME>/logs/runs/``)
    and, when ``verbose``, to the terminal too; ``on_step`` is called as each task instance ends.
    Raises :class:`DagRunFailed` (a ``SystemExit``) when the run does not succeed.
    """
    pg.start()
    stamp = f"{logical_date:%Y%m%d}" if logical_date is not None else "latest"
    log_file = log_file or new_log_file(f"{dag_id}_{stamp}")
    ensure_airflow_db(log_file, verbose)
    if logical_date is None:
        when = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    else:
        when = dt.datetime.combine(logical_date + dt.timedelta(days=1), dt.time(3, 0)).isoformat() + "+08:00"
    # a run by hand fails at the first error instead of waiting out the production retry delays: a run
    # setting (conf), not a parse-time one, so this parse serialises the same DAG as the scheduler's
    conf = {"fail_fast": True, **conf}
    if landing is not None:
        conf.setdefault("landing", str(Path(landing).resolve()))
    result = DagRunResult(dag_id, None, None, log_file)
    errors = _ErrorLines()

    def report(outcome: TaskOutcome) -> None:
        result.tasks.append(outcome)
        if on_step is not None:
            on_step(outcome)

    if scheduler_running() and not dag_paused(dag_id):
        # `dags test` beside a live scheduler would race it for the same task instances: hand the run
        # to the scheduler instead (its tasks run with the scheduler's settings) and wait for it
        run_id = f"yibao_cli__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
        print(f"a scheduler is running: {dag_id} run {run_id} is handed to it; waiting for it to finish", flush=True)
        # no logical date (as a REST API trigger): the conf names the night, or the task takes the day before now
        run_airflow("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf),
                    log_file=log_file, verbose=verbose)
        result.run_id, result.state = run_id, wait_dag_run(dag_id, run_id)
        for outcome in _task_outcomes(dag_id, run_id):
            report(outcome)
    else:
        def on_line(line: str) -> None:
            errors.feed(line)
            ended = _TASK_END.search(line)
            if ended:
                outcome = _task_outcome(dag_id, ended.group(1), int(ended.group(2)))
                if outcome is not None:
                    report(outcome)

        run_airflow("dags", "test", dag_id, when, "--conf", json.dumps(conf),
                    check=False, log_file=log_file, verbose=verbose, on_line=on_line)
        result.run_id, result.state = _newest_run(dag_id, dt.datetime.fromisoformat(when))
        seen = {(t.task_id, t.map_index) for t in result.tasks}
        for outcome in _task_outcomes(dag_id, result.run_id):  # tasks that never ran (upstream failed) end silently
            if (outcome.task_id, outcome.map_index) not in seen and outcome.state != "success":
                report(outcome)
    result.error_lines = errors.lines
    if result.state != "success":
        raise DagRunFailed(result, logical_date)
    return result


class _ErrorLines:
    """The first error lines of a run's output: error-level log lines and the exception that ends each
    traceback (with its message's further lines), without timestamps and logger details."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._state = ""  # "traceback" inside one, "exception" on the message lines after it

    def _add(self, text: str) -> None:
        text = text.strip()
        if text and text not in self.lines and len(self.lines) < MAX_ERROR_LINES:
            self.lines.append(text[:300])

    def feed(self, line: str) -> None:
        line = _ANSI.sub("", line.rstrip("\n"))
        if _LOG_LINE.match(line):
            self._state = ""
            if _ERROR_LEVEL.search(line):
                message = _ERROR_LEVEL.split(line, maxsplit=1)[-1]
                self._add(re.split(r"\s\[[\w.]+\]\s", message, maxsplit=1)[0])
        elif line.startswith("Traceback (most recent call last)"):
            self._state = "traceback"
        elif self._state == "traceback":
            if line and not line.startswith((" ", "\t", "During handling", "The above exception")):
                self._state = "exception"
                self._add(line)
        elif self._state == "exception":
            self._add(line)


_LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _metadata_query(sql: str, params: tuple) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(pg.url(database=AIRFLOW_DB)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _newest_run(dag_id: str, logical_date: dt.datetime | None = None) -> tuple[str | None, str | None]:
    """run_id and state of the newest run of ``dag_id`` (at ``logical_date``, when given)."""
    rows = _metadata_query(
        "select run_id, state from dag_run where dag_id = %s and (%s::timestamptz is null or logical_date = %s)"
        " order by id desc limit 1", (dag_id, logical_date, logical_date))
    return rows[0] if rows else (None, None)


def _task_outcome(dag_id: str, task_id: str, map_index: int) -> TaskOutcome | None:
    rows = _metadata_query(
        "select ti.task_id, ti.map_index, ti.state, ti.duration, ti.run_id from task_instance ti"
        " where ti.dag_id = %s and ti.task_id = %s and ti.map_index = %s"
        " and ti.run_id = (select run_id from dag_run where dag_id = %s order by id desc limit 1)",
        (dag_id, task_id, map_index, dag_id),
    )
    return TaskOutcome(*rows[0]) if rows else None


def _task_outcomes(dag_id: str, run_id: str | None) -> list[TaskOutcome]:
    if run_id is None:
        return []
    rows = _metadata_query(
        "select task_id, map_index, state, duration, run_id from task_instance"
        " where dag_id = %s and run_id = %s order by priority_weight desc, start_date nulls last, task_id, map_index",
        (dag_id, run_id),
    )
    return [TaskOutcome(*r) for r in rows]


def task_result(outcome: TaskOutcome):
    """The value a task returned (its XCom ``return_value``), or None."""
    rows = _metadata_query(
        "select value from xcom where dag_id = (select dag_id from dag_run where run_id = %s limit 1)"
        " and run_id = %s and task_id = %s and map_index = %s and key = 'return_value'",
        (outcome.run_id, outcome.run_id, outcome.task_id, outcome.map_index),
    )
    return rows[0][0] if rows else None


def scheduler_running(within_seconds: int = 60) -> bool:
    """Whether an Airflow scheduler on this metadata database has sent a heartbeat lately."""
    rows = _metadata_query(
        "select 1 from job where job_type = 'SchedulerJob' and state = 'running'"
        " and latest_heartbeat > now() - make_interval(secs => %s) limit 1", (within_seconds,))
    return bool(rows)


def dag_paused(dag_id: str) -> bool:
    rows = _metadata_query("select is_paused from dag where dag_id = %s", (dag_id,))
    return bool(rows[0][0]) if rows else True


def wait_dag_run(dag_id: str, run_id: str, poll_seconds: float = 5.0) -> str | None:
    """Wait until the run ``run_id`` of ``dag_id`` has finished; its final state."""
    import time

    while True:
        rows = _metadata_query("select state from dag_run where dag_id = %s and run_id = %s", (dag_id, run_id))
        state = rows[0][0] if rows else None
        if state in ("success", "failed"):
            return state
        time.sleep(poll_seconds)
