"""The DAGs under the real Airflow scheduler, as an operator runs them (issue 12).

`yibao airflow standalone` (scheduler, dag-processor, api-server, triggerer; LocalExecutor) is
started the way `make airflow-ui` starts it — with the virtualenv NOT on PATH — on a free loopback
port, against a private embedded PostgreSQL. The landing root is configured once, as the Airflow
Variable `yibao_landing` (set through the REST API). A small generated city (2 hospitals,
2025-01-24 … 2025-03-02) is delivered into it night by night:

1. both DAGs unpaused: the scheduler's own nightly run loads what has arrived (through 2025-01-27,
   the newest folder; its business date, yesterday, has no delivery: success with a warning);
2. a REST API night with conf `through` = 2025-01-31 (the month's last day): January's statements;
3. a REST API night without `through` and without a logical date (Airflow 3's default): the newest
   delivered day, 2025-03-02, jumping over 2025-02-28: February's statements;
4. `yibao run` while the scheduler is up, with a different environment: no new DAG version, and
   its publish renders nothing again.

Each publish triggers `monthly_settlement` through the Asset; every month's statements must appear
exactly once. Slow (minutes): marked ``scheduler``; deselect with ``-m "not scheduler"``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg2
import pytest

from yibao.config import AIRFLOW_DB, Settings

pytestmark = [pytest.mark.scheduler, pytest.mark.xdist_group("scheduler")]

TEST_KEY = "test-pseudonym-key-not-a-secret-0123456789"
START, END = dt.date(2025, 1, 24), dt.date(2025, 3, 2)
VENV_BIN = Path(sys.executable).parent
BOOT_TIMEOUT = 900  # seconds; generous: the CI machine may be shared
RUN_TIMEOUT = 2400


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """The Airflow 3 public REST API (/api/v2) with a simple-auth-manager token."""

    def __init__(self, base: str):
        self.base = base
        self.token: str | None = None

    def call(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth and self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        for attempt in range(5):
            try:
                with urllib.request.urlopen(req, timeout=300) as resp:
                    text = resp.read().decode()
                break
            except urllib.error.HTTPError as exc:
                raise AssertionError(f"{method} {path}: HTTP {exc.code}: {exc.read().decode()[:2000]}") from None
            except (TimeoutError, ConnectionError) as exc:
                # the API server serves one request at a time: its first task start can hold it for a minute
                if method != "GET" or attempt == 4:
                    raise AssertionError(f"{method} {path}: {exc!r}") from None
                time.sleep(5)
        return json.loads(text) if text else {}

    def login(self, password_file: Path) -> None:
        password = json.loads(password_file.read_text())["admin"]
        self.token = self.call("POST", "/auth/token", {"username": "admin", "password": password},
                               auth=False)["access_token"]

    def runs(self, dag_id: str) -> list[dict]:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=id")["dag_runs"]

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        body = {"logical_date": None, "conf": conf or {}}
        return self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(3)
        raise AssertionError(f"{dag_id} run {run_id} did not finish within {timeout}s")


def _seconds(run: dict) -> float:
    parse = dt.datetime.fromisoformat
    return (parse(run["end_date"].replace("Z", "+00:00")) - parse(run["start_date"].replace("Z", "+00:00"))).total_seconds()


def _deliver(city: Path, landing: Path, through: dt.date) -> None:
    """Copy the reference files and every business-date folder ≤ ``through`` into the landing root."""
    if not (landing / "reference").exists():
        shutil.copytree(city / "reference", landing / "reference")
    for day in sorted(p for p in city.iterdir() if p.is_dir() and p.name.isdigit()):
        if dt.datetime.strptime(day.name, "%Y%m%d").date() <= through and not (landing / day.name).exists():
            shutil.copytree(day, landing / day.name)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a LISTEN socket on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:
                if len(addr) == 8:
                    found.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
                else:
                    raw = b"".join(bytes.fromhex(addr[i:i + 8])[::-1] for i in range(0, 32, 8))
                    found.add(socket.inet_ntop(socket.AF_INET6, raw))
    return found


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A private PostgreSQL and `yibao airflow standalone` on it; torn down even when a test fails."""
    from yibao import db, pg
    from yibao.generator import generate_city

    root = tmp_path_factory.mktemp("scheduler")
    home = root / "home"
    own = Settings(home=home, database_url=None, pg_port=_free_port())
    city = root / "city"
    generate_city(city, seed=12, hospitals=2, start=START, end=END, volume=0.3, defect_rate=0.01)
    landing = root / "landing"
    landing.mkdir()

    api_port = _free_port()
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if p and Path(p).resolve() != VENV_BIN.resolve())
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "YIBAO_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update({"PATH": path, "YIBAO_HOME": str(home), "YIBAO_PG_PORT": str(own.pg_port),
                "YIBAO_PSEUDONYM_KEY": TEST_KEY, "AIRFLOW__API__PORT": str(api_port)})
    saved = {k: os.environ.get(k) for k in ("YIBAO_HOME", "YIBAO_PG_PORT", "YIBAO_DATABASE_URL")}
    proc = None

    def terminated(signum, frame):  # a SIGTERM (CI timeout) still runs the teardown below
        raise SystemExit(f"terminated by signal {signum}")

    previous_handler = signal.signal(signal.SIGTERM, terminated)
    log_path = root / "standalone.log"
    try:
        pg.start(own)
        os.environ.update({"YIBAO_HOME": str(home), "YIBAO_PG_PORT": str(own.pg_port)})
        os.environ.pop("YIBAO_DATABASE_URL", None)
        db.bootstrap()
        with open(log_path, "wb") as log:
            # exactly `make airflow-ui` with the venv not activated: the entry point by its path only
            proc = subprocess.Popen([str(VENV_BIN / "yibao"), "airflow", "standalone"], env=env, cwd=root,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        api = Api(f"http://127.0.0.1:{api_port}")
        password_file = home / "airflow" / "simple_auth_manager_passwords.json.generated"
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            assert proc.poll() is None, f"standalone exited {proc.returncode}:\n{log_path.read_text()[-5000:]}"
            assert time.monotonic() < deadline, f"no API after {BOOT_TIMEOUT}s:\n{log_path.read_text()[-5000:]}"
            try:
                health = api.call("GET", "/api/v2/monitor/health", auth=False)
                if health["scheduler"]["status"] == "healthy" and password_file.exists() \
                        and password_file.read_text().strip():
                    api.login(password_file)
                    names = {d["dag_id"] for d in api.call("GET", "/api/v2/dags")["dags"]}
                    if {"nightly_ingest", "monthly_settlement"} <= names:
                        break
            except (urllib.error.URLError, ConnectionError, OSError, AssertionError, KeyError):
                pass
            time.sleep(5)
        yield {"api": api, "port": api_port, "env": env, "landing": landing, "city": city, "home": home,
               "settings": own, "password_file": password_file, "log": log_path, "timings": []}
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        if proc is not None:  # components left behind by a standalone that died first
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        pg.stop(own)
        signal.signal(signal.SIGTERM, previous_handler)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _query(s: Settings, sql: str, params=(), database: str | None = None) -> list[tuple]:
    from yibao import pg

    with psycopg2.connect(pg.url(s, database) if database else pg.url(s)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _wait_monthly(api: Api, expected_runs: int, timeout: float = RUN_TIMEOUT) -> list[dict]:
    """Wait until ``expected_runs`` asset-triggered monthly_settlement runs exist and all have finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in api.runs("monthly_settlement") if r["run_type"] == "asset_triggered"]
        if len(runs) >= expected_runs and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        time.sleep(3)
    raise AssertionError(f"{expected_runs} monthly_settlement runs not finished within {timeout}s: {runs}")


def _statement_months(s: Settings) -> list[tuple]:
    return _query(s, "select to_char(month, 'YYYY-MM'), count(*) from audit.statement_log group by 1 order by 1")


def _monthly_runs(api: Api) -> list[dict]:
    return [r for r in api.runs("monthly_settlement") if r["run_type"] == "asset_triggered"]


@pytest.fixture(scope="module")
def nights(scheduler):
    """The nights of the module docstring, under the scheduler; results and timings per night."""
    api, s, landing, city = scheduler["api"], scheduler["settings"], scheduler["landing"], scheduler["city"]
    out: dict = {}
    api.call("POST", "/api/v2/variables", {"key": "yibao_landing", "value": str(landing)})
    api.call("PATCH", "/api/v2/dags/monthly_settlement", {"is_paused": False})

    # 1. unpausing: the scheduler's own run, on what has arrived so far
    _deliver(city, landing, dt.date(2025, 1, 27))
    api.call("PATCH", "/api/v2/dags/nightly_ingest", {"is_paused": False})
    deadline = time.monotonic() + RUN_TIMEOUT
    while not (scheduled := [r for r in api.runs("nightly_ingest") if r["run_type"] == "scheduled"]):
        assert time.monotonic() < deadline, "unpausing nightly_ingest created no scheduled run"
        time.sleep(3)
    out["scheduled"] = api.wait_run("nightly_ingest", scheduled[0]["dag_run_id"])
    out["monthly_after_1"] = _wait_monthly(api, 1) if out["scheduled"]["state"] == "success" else []
    out["statements_after_1"] = _statement_months(s)

    # 2. REST API night with `through` on January's last day
    _deliver(city, landing, dt.date(2025, 2, 3))
    out["with_through"] = api.wait_run("nightly_ingest", api.trigger("nightly_ingest", {"through": "2025-01-31"}))
    out["monthly_after_2"] = _wait_monthly(api, 2) if out["with_through"]["state"] == "success" else []
    out["statements_after_2"] = _statement_months(s)

    # 3. REST API night without `through` and without a logical date: jumps over 2025-02-28
    _deliver(city, landing, END)
    out["without_through"] = api.wait_run("nightly_ingest", api.trigger("nightly_ingest"))
    out["monthly_after_3"] = _wait_monthly(api, 3) if out["without_through"]["state"] == "success" else []
    out["statements_after_3"] = _statement_months(s)

    # 4. `yibao run` while the scheduler is up, with a CLI environment that differs from the scheduler's
    versions_before = _query(s, "select dag_id, count(*) from dag_version group by 1 order by 1", database=AIRFLOW_DB)
    cli_env = dict(scheduler["env"], YIBAO_LANDING="/nonexistent/cli-landing", YIBAO_TASK_RETRIES="0",
                   AIRFLOW__API__PORT=str(scheduler["port"]))
    started = time.monotonic()
    cli = subprocess.run([str(VENV_BIN / "yibao"), "run", "--through", END.isoformat()], env=cli_env,
                         capture_output=True, text=True, timeout=RUN_TIMEOUT)
    out["cli"] = {"returncode": cli.returncode, "seconds": time.monotonic() - started,
                  "tail": (cli.stdout + cli.stderr)[-4000:]}
    out["versions_before"] = versions_before
    out["versions_after"] = _query(s, "select dag_id, count(*) from dag_version group by 1 order by 1",
                                   database=AIRFLOW_DB)
    out["monthly_after_4"] = _wait_monthly(api, 4) if cli.returncode == 0 else []
    out["statements_after_4"] = _statement_months(s)
    # the scheduler's own cron (03:00 Asia/Shanghai, 19:00 UTC) may fire while the module runs and
    # publish once more: wait for every run to end, then leave out the publishes of those runs
    for run in api.runs("nightly_ingest"):
        api.wait_run("nightly_ingest", run["dag_run_id"])
    cron_runs = [r["dag_run_id"] for r in api.runs("nightly_ingest")
                 if r["run_type"] == "scheduled" and r["dag_run_id"] != scheduled[0]["dag_run_id"]]
    out["cron_runs"] = cron_runs
    out["run_log"] = [
        row for row in _query(s, "select run_id, as_of_date, detail from audit.run_log where step = 'load'"
                                 " order by logged_at")
        if row[0] not in cron_runs
    ]
    out["publish_log"] = [
        row[:1] for row in _query(s, "select as_of_date, run_id from audit.publish_log order by publish_id")
        if row[1] not in cron_runs
    ]

    timings = [(name, out[name]["run_type"], out[name]["state"], _seconds(out[name]))
               for name in ("scheduled", "with_through", "without_through")]
    monthly = [(r["dag_run_id"], r["state"], _seconds(r)) for r in out["monthly_after_4"] or out["monthly_after_3"]]
    report = {"nights": timings, "monthly": monthly, "cli_seconds": out["cli"]["seconds"],
              "loadavg": os.getloadavg()}
    print("\nnights under the scheduler:", json.dumps(report, indent=1))
    (scheduler["home"] / "timings.json").write_text(json.dumps(report, indent=1))
    return out


def test_ui_and_api_listen_on_loopback_only(scheduler):
    addresses = _listening_addresses(scheduler["port"])
    assert addresses, "nothing listens on the API port"
    assert addresses <= {"127.0.0.1", "::1"}, addresses


def test_admin_password_file_is_owner_only(scheduler):
    mode = scheduler["password_file"].stat().st_mode & 0o777
    assert mode == 0o600, oct(mode)


def test_started_without_the_venv_on_path(scheduler):
    # the fixture started standalone with the venv's bin removed from PATH; its components came up
    assert str(VENV_BIN) not in scheduler["env"]["PATH"].split(os.pathsep)
    text = scheduler["log"].read_text(errors="replace")
    assert "FileNotFoundError" not in text


def test_unpausing_runs_the_night_on_the_configured_landing_root(nights):
    run = nights["scheduled"]
    assert run["state"] == "success", run
    first = nights["run_log"][0]
    assert first[1] == dt.date(2025, 1, 27)  # the newest delivered folder, not "yesterday"
    assert any("no deliveries for" in note for note in first[2]["notes"]), first[2]
    assert nights["statements_after_1"] == []


def test_api_night_with_through_renders_the_month_it_ends(nights):
    assert nights["with_through"]["state"] == "success", nights["with_through"]
    assert nights["run_log"][1][1] == dt.date(2025, 1, 31)
    assert all(r["state"] == "success" for r in nights["monthly_after_2"]), nights["monthly_after_2"]
    assert nights["statements_after_2"] == [("2025-01", 1)]


def test_api_night_without_through_or_logical_date_jumps_over_a_month_end(nights):
    run = nights["without_through"]
    assert run["state"] == "success", run
    assert run["logical_date"] is None
    assert nights["run_log"][2][1] == END
    assert all(r["state"] == "success" for r in nights["monthly_after_3"]), nights["monthly_after_3"]
    assert nights["statements_after_3"] == [("2025-01", 1), ("2025-02", 1)]


def test_cli_run_while_the_scheduler_is_up_adds_no_dag_version(nights):
    assert nights["cli"]["returncode"] == 0, nights["cli"]["tail"]
    assert nights["versions_after"] == nights["versions_before"]
    # its publish triggered monthly_settlement once more: nothing is rendered twice
    assert all(r["state"] == "success" for r in nights["monthly_after_4"]), nights["monthly_after_4"]
    assert nights["statements_after_4"] == [("2025-01", 1), ("2025-02", 1)]
    assert [p[0] for p in nights["publish_log"]] == [dt.date(2025, 1, 27), dt.date(2025, 1, 31), END, END]


def test_each_month_is_on_disk_once(nights, scheduler):
    reports = scheduler["home"] / "reports"
    months = sorted(p.name for p in reports.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert months == ["2025-01", "2025-02"]
    for m in months:
        manifest = json.loads((reports / m / "manifest.json").read_text())
        assert manifest["hospitals"] and manifest["files"]
