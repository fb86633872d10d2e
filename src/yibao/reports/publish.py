"""Which month(s) the monthly_settlement DAG renders, from the publish log.

The nightly DAG's publish step appends a row to ``audit.publish_log(as_of_date, published_at)``
and emits the Asset ``yibao://marts/published``. A month's statements are due once its last day
has been published; a manual run may render any month whose last day has been published.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from .data import month_bounds

PUBLISH_LOG = "audit.publish_log"
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


def months_due(url: str, event_as_of_dates: Iterable[date] = ()) -> list[date]:
    """Months (first days) to render after a publication: those whose last day was just published.

    The latest publication is read from the publish log; as-of dates carried by the triggering
    asset events (extra ``as_of_date``, when the publisher sets it) are added, so nights published
    in quick succession and coalesced into one run still get their month rendered.
    """
    dates = {d for d in event_as_of_dates if d is not None}
    latest = latest_published(url)
    if latest is not None:
        dates.add(latest)
    return sorted({d.replace(day=1) for d in dates if is_month_end(d)})


def require_published(url: str, month: date) -> None:
    """A manual run may render a month only once its last day has been published."""
    last = month_bounds(month)[1]
    (published,) = _query(url, f"select max(as_of_date)::date from {PUBLISH_LOG}")
    if published is None or published < last:
        raise NotPublished(
            f"month {month:%Y-%m} is not complete: its last day {last} is after the latest published "
            f"as-of date {published}"
        )
