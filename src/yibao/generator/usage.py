"""usage.csv: high-value consumables used in surgeries, with refunds."""

from __future__ import annotations

import datetime as dt

from ..contract import USAGE
from .common import UI, _cents, _count, _line_cents, _pick, _price, _weighted
from .hospitals import _Doctor, _Hospital
from .world import _SURGERY_BASE_YUAN, DEPARTMENTS, PRODUCTS, REST_FACTOR, _udi
from .writers import _Sink


class _Usage:
    """The usage extract (mixed into the city)."""

    def _usage_row(self, rng, h: _Hospital, visit: str, patient: str, dept: str, doctor: str, surgery: str,
                   key: str, qty: int, price4: int, at: dt.datetime, day: dt.date) -> list[str]:
        code = h.code_of(key)
        h.n_usage += 1
        row = [""] * len(USAGE.columns)
        row[UI["usage_id"]] = f"SY{day:%Y%m%d}{h.n_usage:07d}"
        row[UI["hospital_code"]] = h.code
        row[UI["visit_id"]] = visit
        row[UI["patient_id_no"]] = patient
        row[UI["dept_code"]] = dept
        row[UI["doctor_code"]] = doctor
        row[UI["surgery_id"]] = surgery
        row[UI["consumable_code"]] = code
        row[UI["udi_di"]] = _udi(code) if rng.random() < h.fmt.fills_udi else ""
        row[UI["batch_no"]] = f"{at:%y%m}{rng.randrange(10000):04d}" if rng.random() < 0.7 else ""
        row[UI["quantity"]] = str(qty)
        row[UI["charge_unit_price"]] = _price(price4)
        row[UI["charge_amount"]] = _cents(_line_cents(qty, price4))
        row[UI["used_at"]] = f"{h.dates(at.date())} {at:%H:%M:%S}"
        return row

    def _pick_product(self, rng, h: _Hospital, kind: str, doctor: _Doctor) -> str:
        cands = [p for p in PRODUCTS if p.kind == kind and p.status == "active" and p.key in h.formulary]
        if doctor.loyal_brand and rng.random() < 0.93:
            mine = [p for p in cands if p.brand == doctor.loyal_brand and p.vbp]
            if mine:
                return mine[rng.randrange(len(mine))].key
        vbp = [p for p in cands if p.vbp]
        if vbp and rng.random() < (0.85 if kind == "stent" else 0.9):
            cands = vbp
        elif vbp:
            cands = [p for p in cands if not p.vbp] or cands
        return _pick(rng, _weighted((p.key, p.weight) for p in cands))

    def _surgery_lines(self, rng, h: _Hospital, kind: str, doctor: _Doctor) -> list[tuple[str, int]]:
        lines: dict[str, int] = {}

        def add(key, q):
            lines[key] = lines.get(key, 0) + q

        outlier = rng.random() < 0.012
        if kind == "pci":
            n = 1 + (rng.random() < 0.45) + (rng.random() < 0.22)
            first = self._pick_product(rng, h, "stent", doctor)
            add(first, 1)
            for _ in range(n - 1):
                add(first if rng.random() < 0.8 else self._pick_product(rng, h, "stent", doctor), 1)
            add(self._pick_product(rng, h, "balloon", doctor), 1 + (rng.random() < 0.2))
            if outlier:  # complex multi-vessel case with expensive non-selected devices
                add("N2" if "N2" in h.formulary else "N1", 3 + rng.randrange(3))
                add("B3", 2)
            if h.untraceable and rng.random() < 0.006:  # 跟台: a device the hospital never bought
                add(h.untraceable, 1)
        elif kind in ("hip", "knee"):
            add(self._pick_product(rng, h, kind, doctor), 1)
            if kind == "hip" and rng.random() < 0.5:
                add(self._pick_product(rng, h, "screw", doctor), 1 + rng.randrange(4))
            elif kind == "knee" and rng.random() < 0.15:
                add(self._pick_product(rng, h, "screw", doctor), 1 + rng.randrange(2))
            if outlier:  # revision with an imported system
                add("NH" if kind == "hip" else "NK", 1)
                add("SC2", 6 + rng.randrange(4))
        else:
            add("ST1" if rng.random() < 0.6 else "ST2", 1 + (rng.random() < 0.25))
            add("CL1", 1 + rng.randrange(4))
            if outlier:
                add("ST1", 4)
        return list(lines.items())

    def _usage_and_surgeries(self, rng, h: _Hospital, day: dt.date, workday: bool, sink: _Sink) -> None:
        for row in self.pending_usage.pop((h.index, day), ()):  # refunds scheduled earlier
            sink.emit(row)
        factor = 1.0 if workday else REST_FACTOR["surgery"]
        plan = []
        for kind in ("pci", "hip", "knee", "gi"):
            for _ in range(_count(rng, self._surgery_rate(h, kind) * factor)):
                plan.append(kind)
        for kind in plan:
            doctor_kind = "joint" if kind in ("hip", "knee") else kind
            patient = self.patient(rng, h, min_age=40 if kind != "gi" else 18)
            if patient is None:
                continue
            doctor: _Doctor = _pick(rng, h.doctor_tables[doctor_kind])
            dept = DEPARTMENTS[doctor_kind][0]
            h.n_visit += 1
            h.n_surgery += 1
            visit = f"ZY{h.n_visit:09d}"
            surgery = f"SS{day:%Y%m%d}{h.n_surgery:05d}"
            admission = day - dt.timedelta(rng.randrange(3))
            los = {"pci": (2, 5), "hip": (5, 10), "knee": (5, 10), "gi": (3, 7)}[kind]
            discharge = day + dt.timedelta(los[0] + rng.randrange(los[1] - los[0] + 1))
            at = dt.datetime.combine(day, dt.time(8 + rng.randrange(10), rng.randrange(60), rng.randrange(60)))
            net = 0
            for key, qty in self._surgery_lines(rng, h, kind, doctor):
                ref = h.last_price.get(key)
                price = ref if ref is not None else self.standard_price(h, key, day)
                if rng.random() < h.markup_rate:  # charged above the purchase price
                    price = price * (105 + rng.randrange(11)) // 100 // 100 * 100
                row = self._usage_row(rng, h, visit, patient[0], dept, doctor.code, surgery, key, qty, price, at, day)
                sink.emit(row)
                h.stock[key] = h.stock.get(key, 0) - qty
                net += _line_cents(qty, price)
                at += dt.timedelta(minutes=1 + rng.randrange(5))
                if rng.random() < 0.02:  # refund (退费) of the line before discharge
                    back = day + dt.timedelta(rng.randrange(min(3, (discharge - day).days + 1)))
                    n = -qty if qty == 1 or rng.random() < 0.5 else -1
                    refund_at = dt.datetime.combine(back, dt.time(16 + rng.randrange(4), rng.randrange(60), 0))
                    if back <= self.end:
                        ref_row = self._usage_row(rng, h, visit, patient[0], dept, doctor.code, surgery, key, n,
                                                  price, refund_at, back)
                        ref_row[UI["udi_di"]] = row[UI["udi_di"]]
                        ref_row[UI["batch_no"]] = row[UI["batch_no"]]
                        if back == day:
                            sink.emit(ref_row)
                        else:
                            self.pending_usage.setdefault((h.index, back), []).append(ref_row)
                        h.stock[key] += -n
                    net += _line_cents(n, price)
            diag, drg, cat = _pick(rng, self._diag_tables[kind if kind != "gi" else "gi"])
            if kind == "pci" and cat == "24" and rng.random() < 0.5:
                cat = "21"
            if discharge <= self.end:
                self.pending_claims.setdefault((h.index, discharge), []).append(
                    ("surgery", visit, patient, cat, admission, discharge, diag, drg, net, _SURGERY_BASE_YUAN[kind])
                )
