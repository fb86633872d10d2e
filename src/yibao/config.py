"""Settings, read from the environment (and nothing else).

| variable | default | meaning |
|---|---|---|
| ``YIBAO_HOME`` | ``<project>/.yibao`` | where the embedded PostgreSQL, Airflow home, demo city and reports live |
| ``YIBAO_DATABASE_URL`` | unset | an external PostgreSQL (``postgresql://user:pw@host:5432/db``); unset = embedded server |
| ``YIBAO_PG_PORT`` | ``54329`` | TCP port of the embedded server (loopback only) |
| ``YIBAO_PSEUDONYM_KEY`` | unset | secret for patient pseudonymisation (HMAC-SHA256); required by the loader |
| ``YIBAO_LANDING`` | ``$YIBAO_HOME/landing`` | landing root, when the Airflow Variable ``yibao_landing`` is not set |

The nightly settings an Airflow task needs (landing root, pseudonymisation key, warehouse
connections) are read **when the task runs**, never when a DAG file is parsed, so the scheduler and
``yibao run`` see the same values and every parser serialises the same DAG (see :func:`landing_root`).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 54329
WAREHOUSE_DB = "yibao"
AIRFLOW_DB = "airflow"
TIMEZONE = "Asia/Shanghai"  # the bureau's clock: business dates and the 03:00 nightly run
LANDING_VARIABLE = "yibao_landing"


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str | None
    pg_port: int

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def demo_landing(self) -> Path:
        return self.home / "landing"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"


def settings() -> Settings:
    home = Path(os.environ.get("YIBAO_HOME") or PROJECT_ROOT / ".yibao").resolve()
    return Settings(
        home=home,
        database_url=os.environ.get("YIBAO_DATABASE_URL") or None,
        pg_port=int(os.environ.get("YIBAO_PG_PORT") or DEFAULT_PORT),
    )


class MissingLandingRoot(RuntimeError):
    """The configured landing root does not exist (an operator's fix: one line, no retries)."""


def airflow_variable(name: str) -> str | None:
    """An Airflow Variable (its secrets backends, ``AIRFLOW_VAR_<NAME>``, then the metadata DB) or None.

    Inside a task this is Airflow's own lookup; outside Airflow only ``AIRFLOW_VAR_<NAME>`` is seen.
    """
    try:
        from airflow.sdk import Variable

        value = Variable.get(name, default=None)
    except Exception:  # noqa: BLE001 - not inside an Airflow task
        value = None
    return value or os.environ.get(f"AIRFLOW_VAR_{name.upper()}") or None


def landing_root() -> tuple[Path, str]:
    """The landing root the nightly run reads, and where that setting came from.

    One place for the scheduler and the CLI, read at task run time: the Airflow Variable
    ``yibao_landing`` (``yibao airflow variables set yibao_landing /data/landing``, or
    ``AIRFLOW_VAR_YIBAO_LANDING``, or a secrets backend), else the environment variable
    ``YIBAO_LANDING``, else ``$YIBAO_HOME/landing``. A run's conf ``landing`` (``yibao run --landing``)
    overrides it for that run only.
    """
    value = airflow_variable(LANDING_VARIABLE)
    if value:
        return Path(value).expanduser(), f"Airflow Variable {LANDING_VARIABLE}"
    value = os.environ.get("YIBAO_LANDING")
    if value:
        return Path(value).expanduser(), "environment variable YIBAO_LANDING"
    return settings().demo_landing, "default $YIBAO_HOME/landing"


def business_date_before(moment: dt.datetime | None) -> dt.date:
    """The business date a run at ``moment`` loads: the day before, on the bureau's clock."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(TIMEZONE)
    if moment is None:
        local = dt.datetime.now(tz)
    elif moment.tzinfo is None:
        local = moment.replace(tzinfo=dt.UTC).astimezone(tz)
    else:
        local = moment.astimezone(tz)
    return local.date() - dt.timedelta(days=1)


def newest_business_date(landing: Path) -> dt.date | None:
    """The newest ``<YYYYMMDD>/`` business-date folder of a landing root (None when there is none)."""
    days = []
    for p in Path(landing).iterdir():
        if p.is_dir() and p.name.isdigit() and len(p.name) == 8:
            try:
                days.append(dt.datetime.strptime(p.name, "%Y%m%d").date())
            except ValueError:
                continue
    return max(days) if days else None
