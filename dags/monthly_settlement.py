"""
### monthly_settlement — 月度结算单 for every hospital and the bureau's citywide overview

Runs when the nightly DAG publishes the marts (Asset `yibao://marts/published`). It renders every
month whose **last day a published night has passed** (the month-end night itself, a night that
jumps over the month end, a failed 31st caught up on the 1st) and that has not been rendered yet:
each rendering is logged in `audit.statement_log`, so every month is rendered exactly once. Other
nights: nothing to do.

Trigger it by hand with `{"month": "YYYY-MM"}` to (re)render any month whose last day has been
published (logged as `manual`). Re-rendering a month from the same marts gives byte-identical files.

Output, under `$YIBAO_HOME/reports/<YYYY-MM>/` (swapped in whole):
- per hospital `<code>_<name>_<YYYY-MM>_结算单.xlsx` + `.pdf`
- for the bureau `全市_<YYYY-MM>_结算总览.xlsx` + `.pdf`
- `manifest.json`: file, sha256, bytes, row counts per sheet, PDF pages.

Logic lives in `yibao.reports` (reads only the `marts` schema); this file only wires tasks.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, task

from yibao.alerts import notify_failure  # stdlib only: light at parse time

MARTS_PUBLISHED = Asset("yibao://marts/published")


@dag(
    dag_id="monthly_settlement",
    schedule=[MARTS_PUBLISHED],
    start_date=pendulum.datetime(2025, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["yibao", "reports", "settlement"],
    # constants only: whoever parses this file (scheduler, dag-processor, `yibao run`) serialises the same DAG
    default_args={
        "owner": "yibao-data",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        # a task failed for good: log night, step and first failing check; POST to the webhook if configured
        "on_failure_callback": notify_failure,
    },
    params={
        "month": Param(
            "",
            type="string",
            pattern=r"^(\d{4}-(0[1-9]|1[0-2]))?$",
            description="YYYY-MM to render on demand; empty = every completed month not rendered yet",
        ),
        "fail_fast": Param(False, type="boolean", description="fail at the first error instead of retrying"),
    },
)
def monthly_settlement():
    @task
    def months_to_render(params=None) -> list[str]:
        from yibao import pg, pipeline
        from yibao.reports import months_due, parse_month, require_published

        with pipeline.task_errors(params):
            url = pg.url()
            if params and params.get("month"):
                month = parse_month(params["month"])
                require_published(url, month)
                return [f"{month:%Y-%m}"]
            return [f"{m:%Y-%m}" for m in months_due(url)]

    @task(max_active_tis_per_dagrun=1)
    def render(month: str, params=None, run_id=None) -> dict:
        import json

        from yibao import pg, pipeline
        from yibao.config import settings
        from yibao.reports import parse_month, record_rendered, render_month

        with pipeline.task_errors(params):
            folder = render_month(pg.url(), parse_month(month), settings().reports_dir)
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            record_rendered(pg.url(), parse_month(month), run_id=run_id, folder=str(folder),
                            trigger="manual" if (params or {}).get("month") else "auto",
                            files=len(manifest["files"]))
        return {"month": month, "folder": str(folder), "files": len(manifest["files"]),
                "hospitals": manifest["hospitals"]}

    render.expand(month=months_to_render())


monthly_settlement()
