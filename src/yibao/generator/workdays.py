"""Working days: chinese_calendar for the years it covers, synthetic schedules after that."""

from __future__ import annotations

import datetime as dt

from .world import _LUNAR_HOLIDAYS


class _Calendar:
    """Working days: chinese_calendar for the years it covers, synthetic schedules after that."""

    def __init__(self) -> None:
        import chinese_calendar
        from chinese_calendar import constants

        self._cc = chinese_calendar
        self.min_year = min(constants.holidays).year
        self.max_bundled = max(constants.holidays).year
        self._cache: dict[dt.date, bool] = {}
        self._synthetic: dict[int, dict[dt.date, bool]] = {}

    def overrides(self, year: int) -> dict[dt.date, bool]:
        """Synthetic holidays (False) and adjusted working days (True) of a year after the bundled calendar."""
        if year in self._synthetic:
            return self._synthetic[year]
        out: dict[dt.date, bool] = {}
        lunar = _LUNAR_HOLIDAYS.get(year)
        if lunar is not None:
            d = dt.date

            def block(first: dt.date, days: int, adjust: bool) -> None:
                days_ = [first + dt.timedelta(i) for i in range(days)]
                for x in days_:
                    out[x] = False
                if adjust:  # one weekend day before and one after become working days (调休)
                    for step, edge in ((-1, days_[0]), (1, days_[-1])):
                        x = edge + dt.timedelta(step)
                        for _ in range(7):
                            if x.weekday() >= 5 and x not in out:
                                out[x] = True
                                break
                            x += dt.timedelta(step)

            (sm, sd), (qm, qd), (dm, dd), (mm, md) = lunar
            block(d(year, 1, 1), 1, False)
            block(d(year, sm, sd) - dt.timedelta(1), 8, True)
            block(d(year, qm, qd), 1, False)
            block(d(year, 5, 1), 5, True)
            block(d(year, dm, dd), 1, False)
            mid = d(year, mm, md)
            if d(year, 10, 1) <= mid <= d(year, 10, 8):
                block(d(year, 10, 1), 8, True)
            else:
                block(mid, 1, False)
                block(d(year, 10, 1), 7, True)
        self._synthetic[year] = dict(sorted(out.items()))
        return self._synthetic[year]

    def is_workday(self, day: dt.date) -> bool:
        hit = self._cache.get(day)
        if hit is None:
            if self.min_year <= day.year <= self.max_bundled:
                hit = self._cc.is_workday(day)
            else:
                hit = self.overrides(day.year).get(day, day.weekday() < 5)
            self._cache[day] = hit
        return hit

    def add_workdays(self, day: dt.date, n: int) -> dt.date:
        """The n-th working day after day (day 1 = first working day after it)."""
        while n > 0:
            day += dt.timedelta(1)
            if self.is_workday(day):
                n -= 1
        return day

    def next_workday(self, day: dt.date) -> dt.date:
        while not self.is_workday(day):
            day += dt.timedelta(1)
        return day
