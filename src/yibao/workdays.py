"""Mainland China working-day calendar (docs/rules.md R5) as a dbt seed.

The statutory holidays and adjusted working days (调休) come from the ``chinesecalendar`` package,
which covers a fixed range of years (2004-2026 in version 1.11). ``export_seed`` writes them to
``dbt_project/seeds/cn_workday_calendar.csv``: for every covered year, every day that is not an
ordinary Monday-Friday working day or Saturday/Sunday rest day, i.e. the days of each statutory
holiday period and the adjusted working days. Every other day of a covered year follows the week
(Monday-Friday work), exactly as in the package; a year is covered when it has rows (every year has
New Year's Day). Listing only the exceptions keeps the seed at ~35 rows a year, so that loading it
costs nothing in the nightly build. The file is committed and a test checks it equals a fresh
export, so a package upgrade that adds a year shows up as a diff.

Years the package lacks are covered by the bureau's ``workday_overrides.csv`` reference file; dbt
combines the two (``int_workday_calendar``) and fails the build for a date in a year neither covers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

from .config import PROJECT_ROOT

SEED_PATH = PROJECT_ROOT / "dbt_project" / "seeds" / "cn_workday_calendar.csv"
SEED_COLUMNS = ("calendar_date", "is_workday", "day_kind", "holiday_name")


class CalendarCoverageError(LookupError):
    """A date in a year the bundled calendar does not cover."""


def covered_years() -> list[int]:
    """Every year the installed ``chinesecalendar`` knows the holidays and 调休 days of."""
    import chinese_calendar
    from chinese_calendar import constants

    known = {d.year for d in constants.holidays} | {d.year for d in constants.workdays}
    years = []
    for year in range(min(known), max(known) + 1):
        try:
            chinese_calendar.is_workday(dt.date(year, 1, 1))
        except NotImplementedError:
            continue
        years.append(year)
    return years


def is_workday(day: dt.date) -> bool:
    """Whether ``day`` is a working day in mainland China (bundled calendar only)."""
    import chinese_calendar

    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError as exc:
        raise CalendarCoverageError(
            f"the bundled working-day calendar does not cover year {day.year} "
            f"(covered: {covered_years()[0]}-{covered_years()[-1]}); "
            "add the year's dates to reference/workday_overrides.csv"
        ) from exc


def day_kind(day: dt.date) -> tuple[bool, str, str]:
    """(is_workday, kind, holiday name) with kind one of workday, weekend, holiday, adjusted_workday."""
    import chinese_calendar

    workday = is_workday(day)
    _, name = chinese_calendar.get_holiday_detail(day)
    weekend = day.isoweekday() >= 6
    if workday:
        kind = "adjusted_workday" if weekend else "workday"
    else:
        kind = "holiday" if (name or not weekend) else "weekend"
    return workday, kind, name or ""


def seed_rows() -> list[tuple[str, str, str, str]]:
    """The days of every covered year that differ from the plain week or belong to a holiday."""
    rows = []
    for year in covered_years():
        day = dt.date(year, 1, 1)
        while day.year == year:
            workday, kind, name = day_kind(day)
            if name or kind not in ("workday", "weekend"):
                rows.append(
                    (day.isoformat(), "true" if workday else "false", kind, name)
                )
            day += dt.timedelta(days=1)
    return rows


def calendar_from_seed(path: Path | str = SEED_PATH) -> dict[dt.date, bool]:
    """Every day of every year the seed covers -> is_workday (the seed's rows, else Mon-Fri)."""
    listed: dict[dt.date, bool] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            listed[dt.date.fromisoformat(row["calendar_date"])] = (
                row["is_workday"] == "true"
            )
    days: dict[dt.date, bool] = {}
    for year in sorted({d.year for d in listed}):
        day = dt.date(year, 1, 1)
        while day.year == year:
            days[day] = listed.get(day, day.isoweekday() < 6)
            day += dt.timedelta(days=1)
    return days


def render_seed() -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SEED_COLUMNS)
    writer.writerows(seed_rows())
    return buf.getvalue()


def export_seed(path: Path | str = SEED_PATH) -> Path:
    """(Re)generate the dbt seed ``cn_workday_calendar.csv`` from the installed package."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_seed(), encoding="utf-8")
    return path


def nth_workday_after(day: dt.date, n: int) -> dt.date:
    """The n-th working day after ``day`` (day 1 = the first working day after it); R5 due dates."""
    if n < 1:
        raise ValueError("n must be >= 1")
    while n:
        day += dt.timedelta(days=1)
        if is_workday(day):
            n -= 1
    return day


if __name__ == "__main__":  # pragma: no cover
    print(export_seed())
