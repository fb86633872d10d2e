"""
### nightly_ingest — 医保 nightly load, build, validate, publish

For business date **D**, every hospital's extracts under `<landing>/<YYYYMMDD>/<hospital_code>/` with
business date ≤ D that are not yet in the load ledger are loaded (late files are caught up: those of the
last 92 business dates every night, older ones at the weekly full walk; `YIBAO_LATE_WINDOW_DAYS`,
`YIBAO_FULL_WALK_DAYS`), then:

1. **load** — streaming COPY into `raw.*`, bad rows to `raw.quarantine`, bad files rejected in
   `raw.load_ledger`; ID numbers pseudonymised at the door.
2. **validate_raw** — Great Expectations coding and data-quality suites on the night's batch.
3. **transform** — `dbt build` (staging → intermediate → marts) into schema `marts_build`.
4. **validate_marts** — GX mart suites on `marts_build`; an error-level failure stops here.
5. **publish** — swaps `marts_build` in as `marts` atomically and emits the Asset
   `yibao://marts/published` (the monthly settlement DAG listens to it).

Re-running any night, or all of them, gives the same warehouse.

Settings are read when the tasks run, never when this file is parsed:
- **landing root**: the Airflow Variable `yibao_landing`, else the environment variable
  `YIBAO_LANDING`, else `$YIBAO_HOME/landing`; the run's conf `landing` overrides it for one run.
  A missing root fails the night at once with one line (no retries).
- **D** (`through`): the run's conf `through` (YYYY-MM-DD), else the day before the run's logical
  date in Asia/Shanghai (a REST API trigger without a logical date: the day before it was
  triggered), but not later than the newest `<YYYYMMDD>/` folder delivered. A night with no
  deliveries succeeds with warnings.
- conf `fail_fast` (set by `yibao run`): fail at the first error instead of retrying.
- conf `full_walk` (`yibao run --full-walk`): look for late files in every landing folder tonight.

Logic lives in the `yibao` package, dbt and GX: this file only wires tasks.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, task

from yibao.alerts import notify_failure  # stdlib only: light at parse time

MARTS_PUBLISHED = Asset("yibao://marts/published")


@dag(
    dag_id="nightly_ingest",
    schedule="0 3 * * *",
    start_date=pendulum.datetime(2025, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["yibao", "ingest", "dbt", "gx"],
    # constants only: whoever parses this file (scheduler, dag-processor, `yibao run`) serialises the same DAG
    default_args={
        "owner": "yibao-data",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        # a task failed for good: log night, step and first failing check; POST to the webhook if configured
        "on_failure_callback": notify_failure,
    },
    params={
        "landing": Param("", type="string", description="landing root for this run; empty = the configured one"),
        "through": Param("", type="string", pattern=r"^(\d{4}-\d{2}-\d{2})?$",
                         description="business date YYYY-MM-DD; empty = the day before the run"),
        "fail_fast": Param(False, type="boolean", description="fail at the first error instead of retrying"),
        "full_walk": Param(False, type="boolean",
                           description="look for late files in every landing folder tonight, not only the last 92 days'"),
    },
)
def nightly_ingest():
    @task
    def load(params=None, dag_run=None, run_id=None) -> dict:
        from yibao import pipeline

        with pipeline.task_errors(params):
            landing, through, warnings = pipeline.resolve_night(
                params, getattr(dag_run, "logical_date", None), getattr(dag_run, "run_after", None))
            with pipeline.airflow_connection("yibao_loader"):
                pipeline.setup()
                return pipeline.load(landing, through, run_id, warnings=warnings,
                                     full_walk=bool((params or {}).get("full_walk")))

    @task
    def validate_raw(loaded: dict, params=None, run_id=None) -> dict:
        import datetime as dt

        from yibao import pipeline

        with pipeline.task_errors(params), pipeline.airflow_connection("yibao_transformer"):
            return pipeline.validate_raw(dt.date.fromisoformat(loaded["through"]), loaded["load_ids"], run_id)

    @task
    def transform(loaded: dict, checked: dict, params=None, run_id=None) -> str:
        import datetime as dt

        from yibao import pipeline

        with pipeline.task_errors(params), pipeline.airflow_connection("yibao_transformer"):
            pipeline.transform(dt.date.fromisoformat(loaded["through"]), run_id)
        return loaded["through"]

    @task
    def validate_marts(through: str, params=None, run_id=None) -> dict:
        import datetime as dt

        from yibao import pipeline

        with pipeline.task_errors(params), pipeline.airflow_connection("yibao_transformer"):
            return pipeline.validate_marts(dt.date.fromisoformat(through), run_id)

    @task(outlets=[MARTS_PUBLISHED])
    def publish(through: str, checked: dict, loaded: dict, params=None, run_id=None, outlet_events=None) -> dict:
        import datetime as dt

        from yibao import pipeline

        with pipeline.task_errors(params), pipeline.airflow_connection("yibao_transformer"):
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
