#!/usr/bin/env bash
# The BI proof: a stock Apache Superset, in its own virtualenv, imports the exported dashboard
# (infra/superset/dashboard), connects to the warehouse as a bi_reader login and runs every chart's
# query (infra/superset/verify_charts.py). Not part of `make test`: the first run installs Superset
# from PyPI (~1-2 minutes, ~600 MB). Later runs reuse the virtualenv.
#
#   infra/superset/verify.sh              # against the warehouse as it is (needs published marts)
#   infra/superset/verify.sh --fixture    # first publish the §7 marts sample (only into an empty marts)
#
# Environment:
#   YIBAO_HOME     default <repo>/.yibao; the venv is $YIBAO_HOME/superset-venv, Superset's files
#                  (SQLite metadata, secret key, admin password) are in $YIBAO_HOME/superset
#   YIBAO_BI_URL   external warehouse: URL of its bi_reader login (e.g. the "superset" login of
#                  YIBAO_DB_LOGINS). Unset: embedded warehouse, a login superset_bi is created.
#   PYTHON         interpreter for the venv (3.10-3.12); default: the first python3.11/3.12/3.10/python3
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/infra/superset
export YIBAO_HOME=${YIBAO_HOME:-$ROOT/.yibao}
VENV=$YIBAO_HOME/superset-venv
export SUPERSET_HOME=$YIBAO_HOME/superset
export SUPERSET_CONFIG_PATH=$HERE/superset_config.py
export FLASK_APP=superset
export PYTHONWARNINGS=ignore
PROJECT_PY=$ROOT/.venv/bin/python
DATABASE_NAME="医保数据仓库 (bi_reader)"
FIXTURE=0
[[ "${1:-}" == "--fixture" ]] && FIXTURE=1

T0=$SECONDS
step() { printf '\n== %s  (+%ss)\n' "$1" "$((SECONDS - T0))"; }
quiet() { # run a Superset command, show its output only if it fails
  local log; log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then tail -40 "$log"; rm -f "$log"; return 1; fi
  rm -f "$log"
}

step "Superset virtualenv: $VENV"
pick_python() {
  local c
  for c in ${PYTHON:-} python3.11 python3.12 python3.10 python3; do
    command -v "$c" >/dev/null 2>&1 || continue
    "$c" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))' 2>/dev/null || continue
    case "$(command -v "$c")" in "$ROOT"/.venv/*) continue ;; esac   # never Airflow's venv
    echo "$c"; return 0
  done
  echo "no Python 3.10-3.12 found for Superset (set PYTHON)" >&2; return 1
}
REQ_HASH=$(sha256sum "$HERE/requirements.txt" | cut -c1-16)
if [[ ! -x $VENV/bin/superset || "$(cat "$VENV/.requirements" 2>/dev/null)" != "$REQ_HASH" ]]; then
  PY=$(pick_python)
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet -r "$HERE/requirements.txt"
  echo "$REQ_HASH" >"$VENV/.requirements"
fi
"$VENV/bin/python" -c 'import importlib.metadata as m; print("apache-superset", m.version("apache-superset"))'
# Superset's packages are its own: nothing of the project's .venv (Airflow) is on its path
"$VENV/bin/python" -c 'import sys, importlib.util as u; sys.exit(u.find_spec("airflow") is not None or sys.prefix.startswith(sys.argv[1]))' "$ROOT/.venv"

step "Superset home: $SUPERSET_HOME"
mkdir -p "$SUPERSET_HOME"
umask 077
[[ -s $SUPERSET_HOME/secret_key ]] || "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(48))' >"$SUPERSET_HOME/secret_key"
[[ -s $SUPERSET_HOME/admin_password ]] || "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(18))' >"$SUPERSET_HOME/admin_password"
umask 022
export SUPERSET_ADMIN_PASSWORD; SUPERSET_ADMIN_PASSWORD=$(cat "$SUPERSET_HOME/admin_password")
quiet "$VENV/bin/superset" db upgrade
quiet "$VENV/bin/superset" fab create-admin --username admin --firstname Yibao --lastname Admin \
  --email admin@localhost --password "$SUPERSET_ADMIN_PASSWORD"
quiet "$VENV/bin/superset" init

step "Warehouse side (project Python: $PROJECT_PY)"
if (( FIXTURE )); then
  "$PROJECT_PY" "$HERE/warehouse_side.py" fixture
fi
if [[ -z "${YIBAO_BI_URL:-}" ]]; then
  YIBAO_BI_URL=$("$PROJECT_PY" "$HERE/warehouse_side.py" bi-login | tail -1)
fi
export YIBAO_BI_URL
echo "bi_reader login: ${YIBAO_BI_URL%%:*}://$(sed -E 's#^[a-z+]+://([^:]+):[^@]*@#\1:***@#' <<<"$YIBAO_BI_URL")"

step "Import the exported dashboard (Superset's import API, as the UI's import dialog)"
quiet "$VENV/bin/python" "$HERE/import_dashboard.py"
quiet "$VENV/bin/superset" set-database-uri --database_name "$DATABASE_NAME" --uri "$YIBAO_BI_URL"

step "Run every chart through Superset as bi_reader"
"$VENV/bin/python" "$HERE/verify_charts.py" 2> >(grep -v -E '^(INFO|WARNI|DEBUG)|^[0-9-]+ [0-9:,]+:(INFO|WARNING|DEBUG)' >&2)

step "done in $((SECONDS - T0)) s — Superset UI: SUPERSET_HOME=$SUPERSET_HOME SUPERSET_CONFIG_PATH=$SUPERSET_CONFIG_PATH $VENV/bin/superset run -p 8088 (user admin, password in $SUPERSET_HOME/admin_password)"
