"""Superset configuration for the BI proof and for a small production Superset (docs/bi.md).

Everything comes from the environment; nothing secret is in this file.

| variable | default | meaning |
|---|---|---|
| ``SUPERSET_HOME`` | required | Superset's own folder (metadata database, secret key) |
| ``SUPERSET_SECRET_KEY`` | ``$SUPERSET_HOME/secret_key`` (created by verify.sh) | signs sessions, encrypts DB passwords |
| ``SUPERSET_METADATA_URL`` | SQLite in ``$SUPERSET_HOME`` | Superset's metadata DB; PostgreSQL in production (never the warehouse) |
"""

import os
from pathlib import Path

_home = Path(os.environ["SUPERSET_HOME"])
SECRET_KEY = (
    os.environ.get("SUPERSET_SECRET_KEY")
    or (_home / "secret_key").read_text(encoding="utf-8").strip()
)
SQLALCHEMY_DATABASE_URI = (
    os.environ.get("SUPERSET_METADATA_URL") or f"sqlite:///{_home / 'superset.db'}"
)

BABEL_DEFAULT_LOCALE = "zh"
LANGUAGES = {
    "zh": {"flag": "cn", "name": "简体中文"},
    "en": {"flag": "us", "name": "English"},
}
# The warehouse is read-only for BI: no DML, no CSV upload, no CREATE TABLE AS from SQL Lab.
PREVENT_UNSAFE_DB_CONNECTIONS = True
FEATURE_FLAGS = {"DASHBOARD_RBAC": True, "ENABLE_TEMPLATE_PROCESSING": False}
SQLLAB_CTAS_NO_LIMIT = False
ROW_LIMIT = 50000
