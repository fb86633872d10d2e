"""Small shared helpers: column positions, money text, weighted choice."""

from __future__ import annotations

import bisect
import datetime as dt
import random

from ..contract import CLAIM, PURCHASE, USAGE

# Column positions (canonical order from contract.py).
PI = {c.name: i for i, c in enumerate(PURCHASE.columns)}
UI = {c.name: i for i, c in enumerate(USAGE.columns)}
CI = {c.name: i for i, c in enumerate(CLAIM.columns)}

_FIXED_TIME = dt.datetime(2020, 1, 1)
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def _cents(c: int) -> str:
    """Integer cents → '12.34' / '-12.34'."""
    if c >= 0:
        q, r = divmod(c, 100)
        return f"{q}.{r:02d}"
    q, r = divmod(-c, 100)
    return f"-{q}.{r:02d}"


def _price(p4: int) -> str:
    """Price in 1/10000 yuan → text with 2 decimals, or 4 when needed."""
    if p4 < 0:
        return "-" + _price(-p4)
    whole, frac = divmod(p4, 10000)
    return f"{whole}.{frac // 100:02d}" if frac % 100 == 0 else f"{whole}.{frac:04d}"


def _line_cents(qty: int, p4: int) -> int:
    """round(quantity × unit_price, 2), half up (away from zero), in cents."""
    v = qty * p4
    return (v + 50) // 100 if v >= 0 else -((-v + 50) // 100)


def _count(rng: random.Random, mean: float) -> int:
    """A non-negative integer count around mean (± 12 %)."""
    if mean <= 0:
        return 0
    m = mean * (0.88 + 0.24 * rng.random())
    n = int(m)
    return n + (1 if rng.random() < m - n else 0)


def _weighted(items):
    """(values, cumulative weights normalised to end at exactly 1.0) for bisect-based choice."""
    values, cum, total = [], [], 0.0
    for v, w in items:
        if w <= 0:
            continue
        total += w
        values.append(v)
        cum.append(total)
    cum = [c / total for c in cum]
    cum[-1] = 1.0
    return values, cum


def _pick(rng: random.Random, table) -> object:
    values, cum = table
    return values[bisect.bisect_right(cum, rng.random())]
