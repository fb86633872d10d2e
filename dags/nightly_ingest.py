"""
### nightly_ingest — 医保 nightly load, build, validate, publish

For business date **D** (the `through` param, default: the day before the run's logical date in
Asia/Shanghai), every hospital's extracts under `<landing>/<YYYYMMDD>/<hospital_code>/` with business
date ≤ D that are not yet in the load ledger are loaded (late files are caught up), then:

1. **load** — streaming COPY into `raw.*`, bad rows to `raw.quarantine`, bad files rejected in
   `raw.load_ledger`; ID numbers pseudonymised at the door.
2. **validate_raw** — Great Expectations coding and data-quality suites on the night's batch.
3. **transform** — `dbt build` (staging → intermediate → marts) into schema `marts_build`.
4. **validate_marts** — GX mart suites on `marts_build`; an error-level failure stops here.
5. **publish** — swaps `marts_build` in as `marts` atomically and emits the Asset
   `yibao://marts/published` (the monthly settlement DAG listens to it).

Re-running any night, or all of them, gives the same warehouse. Params: `landing` (path),
`through` (YYYY-MM-DD). Logic lives in the `yibao` package, dbt and GX: this file only wires tasks.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, task

from yibao.alerts import notify_failure  # stdlib only: light at parse time

MARTS_PUBLISHED = Asset("yibao://marts/published")


def _through(params: dict, logical_date) -> str:
    if params.get("through"):
        return params["through"]
    local = pendulum.instance(logical_date).in_timezone("Asia/Shanghai")
    return local.subtract(days=1).to_date_string()


@dag(
    dag_id="nightly_ingest",
    schedule="0 3 * * *",
    start_date=pendulum.datetime(2025, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["yibao", "ingest", "dbt", "gx"],
    # YIBAO_TASK_RETRIES=0 when run by hand (`yibao run`): fail fast instead of waiting out retries
    default_args={
        "owner": "yibao-data",
        "retries": int(os.environ.get("YIBAO_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=5),
        # a task failed for good: log night, step and first failing check; POST to the webhook if configured
        "on_failure_callback": notify_failure,
    },
    params={
        "landing": Param(os.environ.get("YIBAO_LANDING", ""), type="string", description="landing directory"),
        "through": Param("", type="string", description="business date YYYY-MM-DD; empty = day before the run"),
    },
)
def nightly_ingest():
    @task
    def load(params=None, logical_date=None, run_id=None) -> dict:
        import datetime as dt
        from pathlib import Path

        from yibao import pipeline
        from yibao.config import settings

        landing = Path(params.get("landing") or settings().demo_landing)
        through = dt.date.fromisoformat(_through(params, logical_date))
        with pipeline.airflow_connection("yibao_loader"):
            pipeline.setup()
            return pipeline.load(landing, through, run_id)

    @task
    def validate_raw(loaded: dict, run_id=None) -> dict:
        import datetime as dt

        from yibao import pipeline

        with pipeline.airflow_connection("yibao_transformer"):
            return pipeline.validate_raw(dt.date.fromisoformat(loaded["through"]), loaded["load_ids"], run_id)

    @task
    def transform(loaded: dict, checked: dict, run_id=None) -> str:
        import datetime as dt

        from yibao import pipeline

        with pipeline.airflow_connection("yibao_transformer"):
            pipeline.transform(dt.date.fromisoformat(loaded["through"]), run_id)
        return loaded["through"]

    @task
    def validate_marts(through: str, run_id=None) -> dict:
        import datetime as dt

        from yibao import pipeline

        with pipeline.airflow_connection("yibao_transformer"):
            return pipeline.validate_marts(dt.date.fromisoformat(through), run_id)

    @task(outlets=[MARTS_PUBLISHED])
    def publish(through: str, checked: dict, loaded: dict, run_id=None, outlet_events=None) -> dict:
        import datetime as dt

        from yibao import pipeline

        with pipeline.airflow_connection("yibao_transformer"):
            published = pipeline.publish(dt.date.fromisoformat(through), run_id, loaded["files_loaded"])
        if outlet_events is not None:
            outlet_events[MARTS_PUBLISHED].extra = {"as_of_date": through}
        return published

    loaded = load()
    raw_ok = validate_raw(loaded)
    through = transform(loaded, raw_ok)
    marts_ok = validate_marts(through)
    publish(through, marts_ok, loaded)


nightly_ingest()
