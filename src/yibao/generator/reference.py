"""The city's reference data: VBP batches and prices, expected use and declared amounts, and the
bureau's reference files written from them."""

from __future__ import annotations

import csv
import datetime as dt
import random

from ..contract import REFERENCE
from .common import _cents, _pick, _price
from .hospitals import _Hospital
from .world import _SURGERY_BASE_YUAN, JOINT_PREFIX, PRODUCT_BY_KEY, PRODUCTS, REST_FACTOR, STENT_PREFIX, Product


class _ReferenceData:
    """Reference data of the city (mixed into the city)."""

    def _make_batches(self) -> list[dict]:
        """VBP batches with cycles covering [start, end]: stents by calendar year, joints May-April."""
        batches = []
        for year in range(self.start.year, self.end.year + 1):
            batches.append({
                "batch_id": f"ZJ{year}", "kind": "stent",
                "batch_name": f"冠脉支架集中带量采购（{year}年度）", "category_prefix": STENT_PREFIX,
                "cycle_start": dt.date(year, 1, 1), "cycle_end": dt.date(year, 12, 31), "renewal": year - 2024,
            })
        first = self.start.year - 1 if self.start < dt.date(self.start.year, 5, 1) else self.start.year
        for year in range(first, self.end.year + 1):
            cs = dt.date(year, 5, 1)
            if cs > self.end:
                break
            batches.append({
                "batch_id": f"GJ{year}", "kind": "joint",
                "batch_name": f"人工关节集中带量采购（{year}-{year + 1}周期）", "category_prefix": JOINT_PREFIX,
                "cycle_start": cs, "cycle_end": dt.date(year + 1, 4, 30), "renewal": year - 2024,
            })
        return batches

    def selected_price(self, key: str, day: dt.date) -> int | None:
        """Selected price of a VBP product on a day (renewals cut S2 and H1 by 2.5 % per cycle after 2025)."""
        p = PRODUCT_BY_KEY[key]
        if p.vbp is None:
            return None
        for b in self.batches:
            if b["kind"] == p.vbp and b["cycle_start"] <= day <= b["cycle_end"]:
                return self._batch_price(p, b)
        return None

    @staticmethod
    def _batch_price(p: Product, batch: dict) -> int:
        if p.key in ("S2", "H1") and batch["renewal"] > 1:
            price = p.price4
            for _ in range(batch["renewal"] - 1):
                price = (price * 975 // 1000) // 100 * 100
            return price
        return p.price4

    def standard_price(self, h: _Hospital, key: str, day: dt.date) -> int:
        """What the hospital pays normally: the selected price, else its discounted list price."""
        sel = self.selected_price(key, day)
        if sel is not None:
            return sel
        p = PRODUCT_BY_KEY[key]
        if p.kind == "low":
            return p.price4
        return int(p.price4 * h.discount) // 100 * 100

    # -- expectations (reference data is built from them) ------------------------------------------

    def _surgery_rate(self, h: _Hospital, kind: str) -> float:
        if kind in ("hip", "knee"):
            return h.profile["joint"] * self.volume * (0.55 if kind == "hip" else 0.45)
        return h.profile[kind] * self.volume

    def expected_daily_use(self, h: _Hospital) -> dict[str, float]:
        """Expected units used per working day by product key (without doctor loyalty)."""
        use: dict[str, float] = {}

        def add(key, q):
            use[key] = use.get(key, 0.0) + q

        pci = self._surgery_rate(h, "pci")
        if pci:
            stents = pci * 1.67
            sel = [p for p in PRODUCTS if p.kind == "stent" and p.vbp and p.status == "active"]
            non = [p for p in PRODUCTS if p.kind == "stent" and not p.vbp and p.status == "active"
                   and p.key != h.untraceable]
            ws, wn = sum(p.weight for p in sel), sum(p.weight for p in non)
            for p in sel:
                add(p.key, stents * 0.85 * p.weight / ws)
            for p in non:
                add(p.key, stents * 0.15 * p.weight / wn)
            balloons = [p for p in PRODUCTS if p.kind == "balloon"]
            wb = sum(p.weight for p in balloons)
            for p in balloons:
                add(p.key, pci * 1.2 * p.weight / wb)
        for kind in ("hip", "knee"):
            rate = self._surgery_rate(h, kind)
            if not rate:
                continue
            sel = [p for p in PRODUCTS if p.kind == kind and p.vbp]
            non = [p for p in PRODUCTS if p.kind == kind and not p.vbp and p.status == "active"]
            ws, wn = sum(p.weight for p in sel), sum(p.weight for p in non)
            for p in sel:
                add(p.key, rate * 0.9 * p.weight / ws)
            for p in non:
                add(p.key, rate * 0.1 * p.weight / wn)
            screws = [p for p in PRODUCTS if p.kind == "screw"]
            wsc = sum(p.weight for p in screws)
            for p in screws:
                add(p.key, rate * (1.2 if kind == "hip" else 0.3) * p.weight / wsc)
        gi = self._surgery_rate(h, "gi")
        if gi:
            add("ST1", gi * 0.75)
            add("ST2", gi * 0.5)
            add("CL1", gi * 2.5)
        return use

    def _year_day_factors(self, year: int, kind: str) -> float:
        """Σ over the days of a year of the activity factor (1 on working days)."""
        key = (year, kind)
        if key not in self._cache:
            total = 0.0
            d = dt.date(year, 1, 1)
            while d.year == year:
                total += 1.0 if self.cal.is_workday(d) else REST_FACTOR[kind]
                d += dt.timedelta(1)
            self._cache[key] = total
        return self._cache[key]

    def _declared_per_claim(self, obstetrics: bool) -> dict[str, tuple[float, float]]:
        """Mean (fund − negotiated) in cents of one outpatient / non-surgical inpatient claim (Monte Carlo)."""
        key = ("per-claim", obstetrics)
        if key not in self._cache:
            rng = random.Random(f"yibao-mc|{self.seed}|{obstetrics}")
            out_mix = self._out_mix if obstetrics else self._out_mix_no_ob
            in_mix = self._in_mix if obstetrics else self._in_mix_no_ob
            samples = 4000
            result = {}
            for ins in ("310", "390"):
                o = sum(self._declared(*self.claim_money(rng, _pick(rng, out_mix), ins, 0)) for _ in range(samples))
                i = sum(self._declared(*self.claim_money(rng, _pick(rng, in_mix), ins, 0)) for _ in range(samples))
                result[ins] = (o / samples, i / samples)
            self._cache[key] = result
        return self._cache[key]

    def expected_declared(self, h: _Hospital, year: int) -> dict[str, int]:
        """Expected Σ(fund_paid − negotiated) of a year by insurance type, in cents."""
        sample = self.patients[:5000]
        share310 = sum(1 for p in sample if p[1] == "310") / len(sample)
        per_claim = self._declared_per_claim(h.level != "基层")
        claims = h.profile["claims"] * self.volume
        out_n = claims * (1 - h.profile["inpatient"]) * self._year_day_factors(year, "outpatient")
        in_n = claims * h.profile["inpatient"] * self._year_day_factors(year, "inpatient")
        surgery_days = self._year_day_factors(year, "surgery")
        surgery = 0.0  # total cost in cents
        for kind, base in _SURGERY_BASE_YUAN.items():
            rate = self._surgery_rate(h, kind)
            if rate:
                surgery += rate * surgery_days * (base + self._mean_consumables(h, kind)) * 100
        result = {}
        for ins, share in (("310", share310), ("390", 1 - share310)):
            o, i = per_claim[ins]
            fund_ratio = 0.825 if ins == "310" else 0.635
            result[ins] = int(share * (out_n * o + in_n * i + surgery * fund_ratio * 0.985))
        return result

    @staticmethod
    def _declared(total, fund, other, account, cash, nego) -> int:
        return fund - nego

    def _mean_consumables(self, h: _Hospital, kind: str) -> float:
        """Mean consumables charge (yuan) of one surgery of a kind, by sampling the selection model."""
        if not self._surgery_rate(h, kind):
            return 0.0
        doctors = h.doctors["joint" if kind in ("hip", "knee") else kind]
        key = ("consumables", kind, h.discount, h.untraceable, tuple(h.formulary), tuple(d.loyal_brand for d in doctors))
        if key not in self._cache:
            rng = random.Random(f"yibao-mc-consumables|{self.seed}|{kind}")
            total = 0
            samples = 400
            for i in range(samples):
                for k, qty in self._surgery_lines(rng, h, kind, doctors[i % len(doctors)]):
                    total += qty * self.standard_price(h, k, self.start)
            self._cache[key] = total / samples / 10000
        return self._cache[key]

    # -- reference files ----------------------------------------------------------------------------

    def write_reference(self) -> None:
        ref = self.landing / "reference"
        ref.mkdir(parents=True, exist_ok=True)
        tables: dict[str, list[list[str]]] = {}
        tables["hospitals"] = [[h.code, h.name, h.level, h.county, h.ownership] for h in self.hospitals]
        tables["consumable_catalog"] = [
            [code, p.generic_name, code[:7], "Y" if p.high_value else "N", p.status]
            for code, p in sorted(self.catalog_codes.items())
        ]
        tables["vbp_batches"] = [
            [b["batch_id"], b["batch_name"], b["category_prefix"], b["cycle_start"].isoformat(), b["cycle_end"].isoformat()]
            for b in self.batches
        ]
        tables["vbp_products"] = []
        tables["vbp_agreed_volumes"] = []
        for b in self.batches:
            members = [p for p in PRODUCTS if p.vbp == b["kind"]]
            for p in members:
                tables["vbp_products"].append(
                    [b["batch_id"], p.group, p.code, p.manufacturer, _price(self._batch_price(p, b)), _price(p.pre_price4)]
                )
            groups = sorted({p.group for p in members})
            # sized on the part of the cycle the city's data can cover (a cycle may start before `start`)
            cycle_days = (b["cycle_end"] - max(b["cycle_start"], self.start)).days + 1
            for h in self.hospitals:
                if (b["kind"] == "stent" and h.profile["pci"] <= 0) or (b["kind"] == "joint" and h.profile["joint"] <= 0):
                    continue
                use = self.expected_daily_use(h)
                rng = random.Random(f"yibao-agreed|{self.seed}|{b['batch_id']}|{h.code}")
                for g_i, group in enumerate(groups):
                    daily = sum(use.get(p.key, 0.0) for p in members if p.group == group)
                    expected = daily * cycle_days * (5 / 7 + 2 / 7 * REST_FACTOR["surgery"])
                    # completed early / on track / behind, by hospital and group
                    k = (0.3, 0.85, 1.5)[(h.index + g_i) % 3] * (0.9 + 0.2 * rng.random())
                    ratio = ("0.7", "0.8", "0.55")[(h.index + 2 * g_i) % 3]
                    base = max(1, round(expected * k / float(ratio)))
                    if ratio == "0.55" and base >= 100:
                        base = round(base / 100) * 100  # ceil(100 × 0.55) = 55 exactly, not 56
                    tables["vbp_agreed_volumes"].append([b["batch_id"], h.code, group, str(base), ratio])
        tables["fund_budgets"] = []
        years = range(self.start.year, self.end.year + 1)
        for year in years:
            for h in self.hospitals:
                declared = self.expected_declared(h, year)
                for ins in ("310", "390"):
                    budget = int(declared[ins] * h.budget_factor[ins])
                    budget = max(100_00, (budget + 5000) // 10000 * 10000)  # whole hundreds of yuan
                    weights = [""] * 12
                    if h.index == 1:
                        w = [800, 700, 850, 830, 840, 820, 850, 860, 840, 870, 860]
                        w.append(10000 - sum(w))
                        weights = [f"0.{x:04d}" for x in w]
                    tables["fund_budgets"].append([str(year), h.code, ins, _cents(budget), *weights])
        tables["settlement_params"] = []
        for year in years:
            rng = random.Random(f"yibao-params|{self.seed}|{year}")
            tables["settlement_params"].append(
                [str(year), ("0.60", "0.70", "0.80", "0.90", "1.00")[rng.randrange(5)],
                 ("0.00", "0.10", "0.20", "0.30")[rng.randrange(4)]]
            )
        overrides = []
        for year in years:
            if year > self.cal.max_bundled:
                overrides += [[d.isoformat(), "Y" if w else "N"] for d, w in self.cal.overrides(year).items()]
        if overrides:
            tables["workday_overrides"] = overrides
        for name, rows in tables.items():
            path = ref / f"{name}.csv"
            with open(path, "w", encoding="utf-8", newline="") as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow([c.name for c in REFERENCE[name]])
                w.writerows(rows)
            self.reference_rows[name] = len(rows)
            self.files["reference"] += 1
            self.bytes += path.stat().st_size
