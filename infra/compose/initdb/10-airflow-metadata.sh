#!/usr/bin/env bash
# Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d):
# Airflow's metadata database and its owner, separate from the warehouse database "yibao".
# The warehouse itself (schemas, roles, tables) is bootstrapped by the warehouse-init service,
# with the same infra/sql files as the embedded server.
set -euo pipefail
: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is not set}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v airflow_password="$AIRFLOW_DB_PASSWORD" <<'SQL'
select format('create role airflow login password %L', :'airflow_password')
 where not exists (select 1 from pg_roles where rolname = 'airflow') \gexec
select 'create database airflow owner airflow encoding ''UTF8'''
 where not exists (select 1 from pg_database where datname = 'airflow') \gexec
-- only the airflow role connects to Airflow's metadata (warehouse access: infra/sql/040_roles.sql)
revoke all on database airflow from public;
SQL
