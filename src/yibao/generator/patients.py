"""The city's patient pool (ID numbers, insurance type, sex, birth year) and how hospitals draw from it."""

from __future__ import annotations

import datetime as dt
import random

from .. import codes
from .common import _pick, _weighted
from .hospitals import _Hospital
from .world import _BIRTH_REGIONS


class _Patients:
    """The patient pool (mixed into the city)."""

    def _make_patients(self) -> list[tuple[str, str, str, int]]:
        """City pool of (id_number, insurance_type, sex, birth_year); each hospital draws from a window."""
        daily = [(h.profile["claims"] + h.profile["pci"] + h.profile["joint"] + h.profile["gi"]) * self.volume
                 for h in self.hospitals]
        widths = [int(min(max(d * 25, 300), 250_000)) for d in daily]
        size = min(sum(widths), 400_000)
        rng = random.Random(f"yibao-patients|{self.seed}")
        rnd = rng.random
        latest = min(self.start - dt.timedelta(400), dt.date(2024, 12, 31)).toordinal()
        latest_year = dt.date.fromordinal(latest).year
        ages = _weighted([(a, 0.6 if a < 18 else (1.0 if a < 45 else (1.3 if a < 75 else 0.7))) for a in range(96)])
        regions = _BIRTH_REGIONS
        year_start = {}
        pool = []
        for _ in range(size):
            year = latest_year - _pick(rng, ages)
            first = year_start.get(year)
            if first is None:
                first = year_start[year] = dt.date(year, 1, 1).toordinal()
            birth = dt.date.fromordinal(min(first + int(rnd() * 365), latest - int(rnd() * 30)))
            region = regions[int(rnd() * len(regions))] if rnd() < 0.95 else "410700"
            male = rnd() < 0.5
            seq = int(rnd() * 500) * 2 + male
            first17 = f"{region}{birth.year:04d}{birth.month:02d}{birth.day:02d}{seq:03d}"
            idno = first17 + codes.ric_check_char(first17)
            age_now = self.start.year - birth.year
            if age_now < 18:
                ins = "390"
            elif age_now < 60:
                ins = "310" if rnd() < 0.55 else "390"
            else:
                ins = "310" if rnd() < 0.4 else "390"
            pool.append((idno, ins, "M" if male else "F", birth.year))
        offset = 0
        for h, w in zip(self.hospitals, widths):
            w = min(w, size)
            h.window = (offset % size, w)
            offset += max(1, size // max(1, len(self.hospitals)))
        return pool

    def patient(self, rng: random.Random, h: _Hospital, *, min_age: int = 0, female_fertile: bool = False):
        pool = self.patients
        size = len(pool)
        off, width = h.window
        year = self.start.year
        for _ in range(40):
            if rng.random() < 0.1:
                p = pool[rng.randrange(size)]
            else:
                p = pool[(off + rng.randrange(width)) % size]
            age = year - p[3]
            if female_fertile:
                if p[2] == "F" and 20 <= age <= 42:
                    return p
            elif age >= min_age:
                return p
        return None
