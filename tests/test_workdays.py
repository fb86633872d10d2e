"""The working-day calendar seed (R5): committed file = fresh export, and it means what it says."""

from __future__ import annotations

import csv
import datetime as dt

import chinese_calendar
import pytest

from yibao import workdays


def test_committed_seed_equals_fresh_export():
    committed = workdays.SEED_PATH.read_text(encoding="utf-8")
    assert committed == workdays.render_seed(), (
        "dbt_project/seeds/cn_workday_calendar.csv is stale: run "
        "`python -c 'from yibao import workdays; workdays.export_seed()'`"
    )


def test_export_seed_writes_the_file(tmp_path):
    path = workdays.export_seed(tmp_path / "seed.csv")
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(workdays.SEED_COLUMNS)
    assert {r["is_workday"] for r in rows} == {"true", "false"}
    assert {r["day_kind"] for r in rows} <= {"holiday", "adjusted_workday"}


def test_seed_covers_every_year_the_package_covers():
    years = workdays.covered_years()
    assert years == list(range(years[0], years[-1] + 1))
    assert years[0] <= 2005 and years[-1] >= 2025
    with open(workdays.SEED_PATH, encoding="utf-8", newline="") as fh:
        seed_years = {
            dt.date.fromisoformat(r["calendar_date"]).year for r in csv.DictReader(fh)
        }
    assert seed_years == set(years)


def test_seed_reproduces_the_package_day_by_day():
    days = workdays.calendar_from_seed()
    years = workdays.covered_years()
    assert len(days) == sum(
        366 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 365 for y in years
    )
    wrong = [d for d, flag in days.items() if chinese_calendar.is_workday(d) != flag]
    assert wrong == []


def test_national_day_2025_worked_example():
    assert workdays.is_workday(dt.date(2025, 9, 28))  # Sunday, adjusted working day
    assert workdays.is_workday(dt.date(2025, 10, 11))  # Saturday, adjusted working day
    assert not any(workdays.is_workday(dt.date(2025, 10, d)) for d in range(1, 9))
    assert workdays.nth_workday_after(dt.date(2025, 9, 28), 1) == dt.date(2025, 9, 29)
    assert workdays.nth_workday_after(dt.date(2025, 9, 28), 3) == dt.date(2025, 10, 9)
    assert workdays.nth_workday_after(dt.date(2025, 9, 28), 30) == dt.date(2025, 11, 14)


def test_uncovered_year_raises_naming_it():
    year = workdays.covered_years()[-1] + 1
    with pytest.raises(workdays.CalendarCoverageError, match=str(year)):
        workdays.is_workday(dt.date(year, 3, 2))
