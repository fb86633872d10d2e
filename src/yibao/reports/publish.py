"""Which month(s) the monthly_settlement DAG renders, from the publish log and the statement log.

The nightly DAG's publish step appends a row to ``audit.publish_log(as_of_date, published_at)``
and emits the Asset ``yibao://marts/published``. A month's statements are due once a published
night has passed its last day — the night exactly on the month's end, or any later one (a night
that jumps over the month end, a failed 31st caught up on the 1st) — and they are rendered exactly
once: each rendering is recorded in ``audit.statement_log`` and a month recorded there is not due
again. A manual run may (re-)render any month whose last day has been published.
"""

from __future__ import annotations

import re
from datetime import date

from .data import month_bounds

PUBLISH_LOG = "audit.publish_log"
STATEMENT_LOG = "audit.statement_log"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class NotPublished(RuntimeError):
    pass


def parse_month(text: str) -> date:
    m = _MONTH.match(text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"month must be YYYY-MM, got {text!r}")
    return date(int(m.group(1)), int(m.group(2)), 1)


def is_month_end(d: date) -> bool:
    return d == month_bounds(d)[1]


def _query(url: str, sql: str):
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("select to_regclass(%s)", (PUBLISH_LOG,))
            if cur.fetchone()[0] is None:
                raise NotPublished(f"{PUBLISH_LOG} does not exist: nothing has been published yet")
            cur.execute(sql)
            return cur.fetchone()
    finally:
        conn.close()


def latest_published(url: str) -> date | None:
    """as_of_date of the most recent publication (by published_at)."""
    row = _query(url, f"select as_of_date::date from {PUBLISH_LOG} order by published_at desc, as_of_date desc limit 1")
    return row[0] if row else None


def months_due(url: str) -> list[date]:
    """Months (first days) whose statements are due and not rendered yet.

    Due: the month has rows in ``marts.fct_settlement_monthly`` and its last day is on or before the
    as-of date of the current marts (the latest publication). Not yet rendered: no row in
    ``audit.statement_log``. So a night that jumps over a month end, a failed month-end night caught
    up the next day, and nights coalesced into one asset-triggered run all render the month once;
    a republished night renders nothing again.
    """
    import psycopg2

    latest = latest_published(url)
    if latest is None:
        return []
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                f"""select distinct s.settlement_month::date from marts.fct_settlement_monthly s
                    where (date_trunc('month', s.settlement_month) + interval '1 month - 1 day')::date <= %s
                      and not exists (select 1 from {STATEMENT_LOG} l
                                      where l.month = date_trunc('month', s.settlement_month)::date)
                    order by 1""",
                (latest,),
            )
            return [r[0].replace(day=1) for r in cur.fetchall()]
    finally:
        conn.close()


def record_rendered(url: str, month: date, *, run_id: str | None = None, trigger: str = "auto",
                    folder: str | None = None, files: int | None = None) -> None:
    """Log one rendering of ``month`` in ``audit.statement_log`` (with the marts' as-of date)."""
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(f"select max(as_of_date) from {PUBLISH_LOG} where published_at ="
                        f" (select max(published_at) from {PUBLISH_LOG})")
            (as_of,) = cur.fetchone()
            cur.execute(f"insert into {STATEMENT_LOG} (month, as_of_date, run_id, trigger, folder, files)"
                        " values (%s, %s, %s, %s, %s, %s)", (month.replace(day=1), as_of, run_id, trigger, folder, files))
    finally:
        conn.close()


def require_published(url: str, month: date) -> None:
    """A manual run may render a month only once its last day has been published."""
    last = month_bounds(month)[1]
    (published,) = _query(url, f"select max(as_of_date)::date from {PUBLISH_LOG}")
    if published is None or published < last:
        raise NotPublished(
            f"month {month:%Y-%m} is not complete: its last day {last} is after the latest published "
            f"as-of date {published}"
        )
