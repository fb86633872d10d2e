"""Run-time settings of a night and the Airflow environment (issue 12, items 1-3, 5).

Where the landing root and the business date come from (read when a task runs), how an operator's
error ends a task, and the environment every Airflow process gets (venv on PATH, loopback only,
owner-only admin password file). The scheduler test (tests/test_scheduler.py) runs all of it for real.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from yibao import pipeline
from yibao.config import MissingLandingRoot, landing_root

VENV_BIN = Path(sys.executable).parent
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean settings environment: YIBAO_HOME in tmp, no landing configured anywhere."""
    monkeypatch.setenv("YIBAO_HOME", str(tmp_path / "home"))
    for name in ("YIBAO_LANDING", "AIRFLOW_VAR_YIBAO_LANDING", "AIRFLOW__API__HOST", "AIRFLOW__API__PORT",
                 "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _landing(root: Path, *days: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "reference").mkdir(exist_ok=True)
    for d in days:
        (root / d / "H1").mkdir(parents=True)
    return root


# --- 1. the venv's bin first on PATH -------------------------------------------------------------
def test_airflow_env_puts_the_venv_first_on_path(env):
    from yibao.orchestrate import airflow_env

    bare = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != VENV_BIN)
    env.setenv("PATH", bare)
    env.delenv("VIRTUAL_ENV", raising=False)
    got = airflow_env()
    assert got["PATH"].split(os.pathsep)[0] == str(VENV_BIN)
    assert shutil.which("airflow", path=got["PATH"]) == str(VENV_BIN / "airflow")
    # what Airflow's standalone does for each component: start `airflow` by its bare name
    out = subprocess.run(["airflow", "version"], env=got, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1].startswith("3.")


# --- 2. loopback only; the password file 0600 ----------------------------------------------------
def test_api_listens_on_loopback_and_tasks_reach_it_on_its_port(env):
    from yibao.orchestrate import airflow_env

    env.setenv("AIRFLOW__API__PORT", "18999")
    got = airflow_env()
    assert got["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert got["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18999/execution/"


def test_admin_password_file_is_owner_only(env, tmp_path):
    from yibao.orchestrate import airflow_env, password_file, secure_password_file

    path = password_file()
    assert airflow_env()["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(path)
    assert path == tmp_path / "home" / "airflow" / "simple_auth_manager_passwords.json.generated"
    secure_password_file()
    assert path.stat().st_mode & 0o777 == 0o600
    # a file an older version left world-readable is tightened, its content kept
    path.write_text('{"admin": "x"}')
    path.chmod(0o644)
    secure_password_file()
    assert path.stat().st_mode & 0o777 == 0o600 and path.read_text() == '{"admin": "x"}'


# --- 3. the landing root: one place, read at run time ---------------------------------------------
def test_landing_root_precedence(env, tmp_path):
    assert landing_root() == (tmp_path / "home" / "landing", "default $YIBAO_HOME/landing")
    env.setenv("YIBAO_LANDING", str(tmp_path / "from-env"))
    assert landing_root()[0] == tmp_path / "from-env"
    env.setenv("AIRFLOW_VAR_YIBAO_LANDING", str(tmp_path / "from-variable"))
    assert landing_root() == (tmp_path / "from-variable", "Airflow Variable yibao_landing")
    root = _landing(tmp_path / "from-variable", "20250105")
    conf = _landing(tmp_path / "from-conf", "20250105")
    assert pipeline.resolve_night({"through": "2025-01-05"})[0] == root
    assert pipeline.resolve_night({"landing": str(conf), "through": "2025-01-05"})[0] == conf


def test_missing_landing_root_is_one_clear_line(env, tmp_path):
    env.setenv("YIBAO_LANDING", str(tmp_path / "nowhere"))
    with pytest.raises(MissingLandingRoot) as err:
        pipeline.resolve_night({}, dt.datetime(2025, 1, 6, 3, tzinfo=SHANGHAI))
    text = str(err.value)
    assert "\n" not in text and str(tmp_path / "nowhere") in text and "YIBAO_LANDING" in text
    # inside a task it fails at once (no retries), with that line and no chained traceback
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as failed:
        with pipeline.task_errors({}):
            pipeline.resolve_night({})
    assert str(failed.value) == text and failed.value.__cause__ is None and failed.value.__suppress_context__


def test_fail_fast_is_a_run_setting(env):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(ValueError):  # a scheduled run: the task's retries apply
        with pipeline.task_errors({"fail_fast": False}):
            raise ValueError("boom")
    with pytest.raises(AirflowFailException, match="ValueError: boom"):  # `yibao run`: fail at once
        with pipeline.task_errors({"fail_fast": True}):
            raise ValueError("boom")


# --- 5. the business date, with and without a logical date ----------------------------------------
def test_through_from_conf_logical_date_or_run_after(env, tmp_path):
    landing = _landing(tmp_path / "landing", "20250104", "20250105", "20250106")
    # a scheduled run at 03:00 Shanghai on the 6th loads the 5th
    at_three = dt.datetime(2025, 1, 6, 3, tzinfo=SHANGHAI)
    assert pipeline.resolve_night({"landing": str(landing)}, at_three) == (landing, dt.date(2025, 1, 5), [])
    # 20:00 UTC on the 5th is already the 6th in Shanghai
    late_utc = dt.datetime(2025, 1, 5, 20, tzinfo=dt.UTC)
    assert pipeline.resolve_night({"landing": str(landing)}, late_utc)[1] == dt.date(2025, 1, 5)
    # Airflow 3 REST API trigger: logical_date None, run_after = when it was triggered
    assert pipeline.resolve_night({"landing": str(landing)}, None, at_three)[1] == dt.date(2025, 1, 5)
    # neither (a run by hand now): yesterday, capped at the newest delivered folder
    landing_now, through, warnings = pipeline.resolve_night({"landing": str(landing)}, None, None)
    assert through == dt.date(2025, 1, 6) and "no deliveries for" in warnings[0]
    # conf through wins
    assert pipeline.resolve_night({"landing": str(landing), "through": "2025-01-04"}, at_three)[1] == dt.date(2025, 1, 4)


def test_night_not_delivered_yet_publishes_as_of_the_newest_folder(env, tmp_path):
    landing = _landing(tmp_path / "landing", "20250103")
    _, through, warnings = pipeline.resolve_night({"landing": str(landing)}, dt.datetime(2025, 1, 6, 3, tzinfo=SHANGHAI))
    assert through == dt.date(2025, 1, 3)
    assert warnings == ["no deliveries for 2025-01-05 yet: this night is published as of the newest delivered"
                        " business date 2025-01-03"]
    empty = _landing(tmp_path / "empty")
    _, through, warnings = pipeline.resolve_night({"landing": str(empty)}, dt.datetime(2025, 1, 6, 3, tzinfo=SHANGHAI))
    assert through == dt.date(2025, 1, 5) and "nothing delivered yet" in warnings[0]


def test_a_night_with_no_deliveries_loads_nothing_and_warns(clean_warehouse, tmp_path):
    """The real loader on the real warehouse: a business date without a folder is a warning, not an error."""
    from yibao.generator import generate_city

    landing = tmp_path / "landing"
    generate_city(landing, seed=3, hospitals=1, start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 2), volume=0.1)
    first = pipeline.load(landing, dt.date(2025, 1, 2), "night-1")
    assert first["files_loaded"] > 0 and first["notes"] == []
    again = pipeline.load(landing, dt.date(2025, 1, 3), "night-2", warnings=["from resolve_night"])
    assert again["files_loaded"] == 0 and again["files_rejected"] == 0
    assert again["notes"][0] == "from resolve_night"
    assert any(n.startswith("no deliveries for business date 2025-01-03") for n in again["notes"])
