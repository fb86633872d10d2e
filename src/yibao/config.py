"""Settings, read from the environment (and nothing else).

| variable | default | meaning |
|---|---|---|
| ``YIBAO_HOME`` | ``<project>/.yibao`` | where the embedded PostgreSQL, Airflow home, demo city and reports live |
| ``YIBAO_DATABASE_URL`` | unset | an external PostgreSQL (``postgresql://user:pw@host:5432/db``); unset = embedded server |
| ``YIBAO_PG_PORT`` | ``54329`` | TCP port of the embedded server (loopback only) |
| ``YIBAO_PSEUDONYM_KEY`` | unset | secret for patient pseudonymisation (HMAC-SHA256); required by the loader |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 54329
WAREHOUSE_DB = "yibao"
AIRFLOW_DB = "airflow"


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
