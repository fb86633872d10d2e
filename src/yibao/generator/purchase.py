"""purchase.csv: deliveries to the hospitals, payment re-sends and returns."""

from __future__ import annotations

import datetime as dt
import math

from ..contract import PURCHASE
from .common import PI, _cents, _line_cents, _price
from .hospitals import _Hospital
from .world import PRODUCT_BY_KEY, REST_FACTOR, SUPPLIER_USCC, _udi
from .writers import _Sink


class _Purchases:
    """The purchase extract (mixed into the city)."""

    def _purchase_row(self, rng, h: _Hospital, day: dt.date, key: str, qty: int, price4: int,
                      order_date: dt.date, via: bool) -> list[str]:
        p = PRODUCT_BY_KEY[key]
        code = h.code_of(key)
        h.n_purchase += 1
        fmt = h.dates
        row = [""] * len(PURCHASE.columns)
        row[PI["purchase_line_id"]] = f"CG{day:%Y%m%d}{h.n_purchase:07d}"
        row[PI["hospital_code"]] = h.code
        row[PI["order_date"]] = fmt(order_date)
        row[PI["delivery_date"]] = fmt(day)
        row[PI["consumable_code"]] = code
        row[PI["udi_di"]] = _udi(code) if p.high_value and rng.random() < h.fmt.fills_udi else ""
        row[PI["product_name"]] = p.product_name
        row[PI["spec"]] = p.specs[rng.randrange(len(p.specs))]
        row[PI["manufacturer"]] = p.manufacturer
        row[PI["supplier_uscc"]] = SUPPLIER_USCC[(int(p.brand) + (rng.random() < 0.3)) % len(SUPPLIER_USCC)]
        row[PI["quantity"]] = str(qty)
        row[PI["unit_price"]] = _price(price4)
        row[PI["amount"]] = _cents(_line_cents(qty, price4))
        row[PI["via_platform"]] = h.fmt.yes if via else h.fmt.no
        row[PI["invoice_no"]] = f"{rng.randrange(10**8):08d}" if rng.random() < 0.6 else ""
        return row

    def _purchases(self, rng, h: _Hospital, day: dt.date, workday: bool, sink: _Sink) -> None:
        # re-sent lines (payment made) and returns scheduled for today
        for row in self.pending_purchase.pop((h.index, day), ()):
            sink.emit(row)
        use = self.expected_daily_use(h) if not h.reorder else None
        if use is not None:  # first day: set reorder points, stock 0 → everything is ordered today
            for key in h.formulary:
                p = PRODUCT_BY_KEY[key]
                if p.kind == "low":
                    e = max(10.0, h.profile["low"] * 400 * self.volume)
                else:
                    e = use.get(key, 0.0)
                h.reorder[key] = (max(2, math.ceil(e * 4)), max(5, math.ceil(e * 10)))
                h.stock[key] = 0
        for key in h.formulary:
            p = PRODUCT_BY_KEY[key]
            if p.kind == "low":  # consumed outside the usage extract
                h.stock[key] -= int(h.reorder[key][1] * 0.1 * (0.5 + rng.random()))
            point, qty = h.reorder[key]
            if h.stock[key] >= point:
                continue
            if not workday and rng.random() > REST_FACTOR["purchase"] and h.stock[key] > 0:
                continue  # fewer deliveries on rest days, unless out of stock
            qty = qty + max(0, -h.stock[key])
            qty = max(1, int(qty * (0.8 + 0.4 * rng.random())))
            self._deliver(rng, h, day, key, qty, sink)
            if rng.random() < 0.005 and p.high_value:  # a second delivery the same day at another price
                self._deliver(rng, h, day, key, max(1, qty // 3), sink, price_shift=True)

    def _deliver(self, rng, h: _Hospital, day: dt.date, key: str, qty: int, sink: _Sink,
                 price_shift: bool = False) -> None:
        p = PRODUCT_BY_KEY[key]
        standard = self.standard_price(h, key, day)
        price = standard
        selected = p.vbp is not None and self.selected_price(key, day) is not None
        if selected and rng.random() < h.violation_rate:
            price = (standard * (105, 110, 120)[rng.randrange(3)] // 100) // 100 * 100  # price violation
        if price_shift:  # R1: the highest price of the day is the reference
            price = price + price // 20 // 100 * 100
        order_date = day - dt.timedelta(1 + rng.randrange(6))
        via = rng.random() >= (h.off_platform if p.high_value else 0.1)
        row = self._purchase_row(rng, h, day, key, qty, price, order_date, via)
        sink.emit(row)
        h.stock[key] = h.stock.get(key, 0) + qty
        h.last_price[key] = price
        # payment re-send
        if selected:
            r = rng.random()
            if r < 0.78:
                paid = self.cal.add_workdays(day, 3 + rng.randrange(28))
            elif r < 0.90:
                paid = self.cal.add_workdays(self.cal.add_workdays(day, 30), 1 + rng.randrange(45))
            else:
                paid = None
        else:
            paid = self.cal.next_workday(day + dt.timedelta(20 + rng.randrange(100))) if rng.random() < 0.6 else None
        if paid is not None and paid <= self.end:
            again = list(row)
            again[PI["paid_date"]] = h.dates(paid)
            again[PI["paid_amount"]] = row[PI["amount"]]
            if not again[PI["invoice_no"]]:
                again[PI["invoice_no"]] = f"{rng.randrange(10**8):08d}"
            self.pending_purchase.setdefault((h.index, paid), []).append(again)
        # a return (退货) of part of the delivery
        if p.high_value and rng.random() < 0.01:
            back = day + dt.timedelta(2 + rng.randrange(19))
            if back <= self.end:
                n = -min(qty, 1 + rng.randrange(3))
                h.n_purchase += 1
                ret = list(row)
                ret[PI["purchase_line_id"]] = f"CG{back:%Y%m%d}{h.n_purchase:07d}"
                ret[PI["delivery_date"]] = h.dates(back)
                ret[PI["quantity"]] = str(n)
                ret[PI["amount"]] = _cents(_line_cents(n, price))
                ret[PI["invoice_no"]] = ""
                self.pending_purchase.setdefault((h.index, back), []).append(ret)
                h.stock[key] += n
