"""
### monthly_settlement — 月度结算单 for every hospital and the bureau's citywide overview

Runs when the nightly DAG publishes the marts (Asset `yibao://marts/published`). It renders a
month only once that month's **last night** has been published: the as-of date of the latest row
of `audit.publish_log` (plus any `as_of_date` carried in the triggering asset events, so nights
published back to back are not missed) must be the last day of a month. Other nights: nothing to do.

Trigger it by hand with `{"month": "YYYY-MM"}` to (re)render any month whose last day has been
published. Re-rendering a month from the same marts gives byte-identical files.

Output, under `$YIBAO_HOME/reports/<YYYY-MM>/` (swapped in whole):
- per hospital `<code>_<name>_<YYYY-MM>_结算单.xlsx` + `.pdf`
- for the bureau `全市_<YYYY-MM>_结算总览.xlsx` + `.pdf`
- `manifest.json`: file, sha256, bytes, row counts per sheet, PDF pages.

Logic lives in `yibao.reports` (reads only the `marts` schema); this file only wires tasks.
"""

from __future__ import annotations

import os
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
    # YIBAO_TASK_RETRIES=0 when run by hand (`yibao reports`): fail fast instead of waiting out retries
    default_args={
        "owner": "yibao-data",
        "retries": int(os.environ.get("YIBAO_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=5),
        # a task failed for good: log night, step and first failing check; POST to the webhook if configured
        "on_failure_callback": notify_failure,
    },
    params={
        "month": Param(
            "",
            type="string",
            pattern=r"^(\d{4}-(0[1-9]|1[0-2]))?$",
            description="YYYY-MM to render on demand; empty = the month just completed, if any",
        ),
    },
)
def monthly_settlement():
    @task
    def months_to_render(params=None, triggering_asset_events=None) -> list[str]:
        import datetime as dt

        from yibao import pg
        from yibao.reports import months_due, parse_month, require_published

        url = pg.url()
        if params and params.get("month"):
            month = parse_month(params["month"])
            require_published(url, month)
            return [f"{month:%Y-%m}"]
        published = []
        for events in (triggering_asset_events or {}).values():
            for event in events:
                value = (event.extra or {}).get("as_of_date")
                if value:
                    published.append(dt.date.fromisoformat(str(value)))
        return [f"{m:%Y-%m}" for m in months_due(url, published)]

    @task(max_active_tis_per_dagrun=1)
    def render(month: str) -> dict:
        import json

        from yibao import pg
        from yibao.config import settings
        from yibao.reports import parse_month, render_month

        folder = render_month(pg.url(), parse_month(month), settings().reports_dir)
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        return {"month": month, "folder": str(folder), "files": len(manifest["files"]),
                "hospitals": manifest["hospitals"]}

    render.expand(month=months_to_render())


monthly_settlement()
