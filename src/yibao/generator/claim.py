"""claim.csv: settlements (outpatient, inpatient, surgeries), reversals and the claim money model."""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random

from .. import codes
from .common import CI, _cents, _count, _pick
from .hospitals import _Hospital
from .world import (
    _CATEGORY_MEANS,
    CHRONIC_DIAGNOSES,
    MATERNITY_INPATIENT,
    MATERNITY_OUTPATIENT,
    REST_FACTOR,
    TRAUMA_DIAGNOSES,
)
from .writers import _Sink


class _Claims:
    """The claim extract (mixed into the city)."""

    # -- claim money -------------------------------------------------------------------------------

    @staticmethod
    def claim_money(rng: random.Random, cat: str, ins: str, extra_cents: int, base_yuan: float | None = None):
        """(total, fund, other, account, cash, negotiated) in cents; total = fund + other + account + cash."""
        rnd = rng.random
        mean, sigma = _CATEGORY_MEANS[cat]
        if base_yuan is not None:
            mean, sigma = base_yuan, 0.35
        if cat == "12":
            total = (500, 1000, 1200, 1500, 2000, 5000)[int(rnd() * 6)]
        else:
            total = max(500, int(mean * 100 * math.exp(rng.gauss(-sigma * sigma / 2, sigma))))
        total += extra_cents
        nego = other = account = 0
        if cat in codes.INPATIENT_CATEGORIES:
            lo, hi = ((0.80, 0.95) if cat == "52" else ((0.75, 0.90) if ins == "310" else (0.55, 0.72)))
            fund = int(total * (lo + (hi - lo) * rnd()))
            rest = total - fund
            if total > 3_000_000 and rnd() < 0.7:
                other = int(rest * (0.3 + 0.3 * rnd()))
            elif ins == "390" and rnd() < 0.04:
                other = min(rest, total // 10)
            rest -= other
            if ins == "310" and rnd() < 0.2:
                account = min(rest, 10000 + int(rnd() * 190000))
            if rnd() < 0.06:
                nego = int(fund * (0.05 + 0.3 * rnd()))
        else:
            if cat == "14":
                lo, hi, p_fund = ((0.65, 0.85, 1.0) if ins == "310" else (0.55, 0.70, 1.0))
            elif cat == "51":
                lo, hi, p_fund = 0.6, 0.9, 1.0
            elif cat == "12":
                lo, hi, p_fund = 0.4, 0.6, 0.3
            else:
                lo, hi, p_fund = ((0.5, 0.7, 0.75) if ins == "310" else (0.45, 0.6, 0.6))
            fund = int(total * (lo + (hi - lo) * rnd())) if rnd() < p_fund else 0
            rest = total - fund
            if ins == "310" and rnd() < 0.6:
                account = int(rest * (0.3 + 0.7 * rnd()))
            if cat == "14" and fund and rnd() < 0.22:
                nego = int(fund * (0.1 + 0.5 * rnd()))
            elif fund and rnd() < 0.01:
                nego = int(fund * 0.3 * rnd())
        cash = total - fund - other - account
        return total, fund, other, account, cash, nego


    @staticmethod
    def _claim_row(h: _Hospital, ymd: str, dstr: str, secs: int, visit: str, pid: str, ins: str, cat: str,
                   admission: str, discharge: str, diag: str, drg: str, money, reversal_of: str = "") -> list[str]:
        """A claim row; ymd/dstr are the settlement day as YYYYMMDD and in the hospital's style."""
        h.n_claim += 1
        total, fund, other, account, cash, nego = money
        c = _cents
        return [
            f"JS{ymd}{h.n_claim:07d}", h.code, visit, pid, ins, cat, admission, discharge,
            f"{dstr} {secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}", diag, drg,
            c(total), c(fund), c(other), c(account), c(cash), c(nego), reversal_of,
        ]

    def _claims(self, rng, h: _Hospital, day: dt.date, workday: bool, sink: _Sink) -> None:
        rnd = rng.random
        ymd = f"{day:%Y%m%d}"
        fmt = h.dates
        dstr = fmt(day)
        for item in self.pending_claims.pop((h.index, day), ()):
            kind = item[0]
            if kind == "surgery":
                _, visit, patient, cat, admission, discharge, diag, drg, net, base = item
                money = self.claim_money(rng, cat, patient[1], max(0, net), base_yuan=base)
                secs = 8 * 3600 + int(rnd() * 9 * 3600)
                row = self._claim_row(h, ymd, dstr, secs, visit, patient[0], patient[1], cat, fmt(admission),
                                      fmt(discharge), diag, drg, money)
                reversed_ = self._emit_claim(rng, h, day, row, money, sink)
                if self._fee_sink is not None:
                    self._fee_visit(h, day, visit, patient, cat, admission, money[0], diag,
                                    self._claim_certain(reversed_))
            elif kind == "planned":  # a readmission or a referral planned by the audit (see .fees)
                _, patient, cat, admission, diag, drg = item
                frng = self.readmit_rng
                money = self.claim_money(frng, cat, patient[1], 0)
                h.n_planned += 1  # own numbers (ZY8…, MZ8…): the other extracts' visit ids stay as without audit
                visit = f"ZY8{h.n_planned:08d}" if admission else f"MZ8{h.n_planned:09d}"
                secs = 8 * 3600 + int(frng.random() * 9 * 3600)
                row = self._claim_row(h, ymd, dstr, secs, visit, patient[0], patient[1], cat,
                                      fmt(admission) if admission else "", dstr if admission else "", diag, drg, money)
                reversed_ = self._emit_claim(frng, h, day, row, money, sink)
                if self._fee_sink is not None:
                    self._fee_visit(h, day, visit, patient, cat, admission, money[0], diag,
                                    self._claim_certain(reversed_))
            elif kind == "reversal":
                _, o, money = item
                secs = 9 * 3600 + int(rnd() * 8 * 3600)
                neg = tuple(-x for x in money)
                row = self._claim_row(h, ymd, dstr, secs, o[CI["visit_id"]], o[CI["patient_id_no"]],
                                      o[CI["insurance_type"]], o[CI["medical_category"]], o[CI["admission_date"]],
                                      o[CI["discharge_date"]], o[CI["principal_diagnosis"]], o[CI["drg_code"]], neg,
                                      reversal_of=o[CI["settlement_id"]])
                sink.emit(row)
                if rnd() < 0.5:  # settled again, corrected
                    total, fund, other, account, cash, nego = money
                    adj = int(fund * (rnd() - 0.5) * 0.1)
                    money2 = (total, fund + adj, other, account, cash - adj, min(nego, max(fund + adj, 0)))
                    if money2[4] < 0:
                        money2 = money
                    secs = min(secs + 300 + int(rnd() * 3000), 86399)
                    row2 = self._claim_row(h, ymd, dstr, secs, o[CI["visit_id"]], o[CI["patient_id_no"]],
                                           o[CI["insurance_type"]], o[CI["medical_category"]], o[CI["admission_date"]],
                                           o[CI["discharge_date"]], o[CI["principal_diagnosis"]], o[CI["drg_code"]],
                                           money2)
                    sink.emit(row2)
        ob = h.level != "基层"
        claims = h.profile["claims"] * self.volume
        n_out = _count(rng, claims * (1 - h.profile["inpatient"]) * (1.0 if workday else REST_FACTOR["outpatient"]))
        n_in = _count(rng, claims * h.profile["inpatient"] * (1.0 if workday else REST_FACTOR["inpatient"]))
        out_vals, out_cum = self._out_mix if ob else self._out_mix_no_ob
        in_mix = self._in_mix if ob else self._in_mix_no_ob
        diag_out_vals, diag_out_cum = self._diag_tables["outpatient"]
        diag_chronic, diag_in = self._diag_tables["chronic"], self._diag_tables["inpatient"]
        pool = self.patients
        size = len(pool)
        off, width = h.window
        bisect_right = bisect.bisect_right
        claim_money = self.claim_money
        claim_row = self._claim_row
        emit = self._emit_claim
        fee = self._fee_sink is not None
        audit = self.fee_on
        for i in range(n_out + n_in):
            inpatient = i >= n_out
            cat = _pick(rng, in_mix) if inpatient else out_vals[bisect_right(out_cum, rnd())]
            if cat == "51" or cat == "52":
                patient = self.patient(rng, h, female_fertile=True)
                if patient is None:
                    cat = "21" if inpatient else "11"
                    patient = self.patient(rng, h)
            else:
                r = rnd()
                patient = pool[int(r * 10 * size) % size] if r < 0.1 else pool[(off + int(rnd() * width)) % size]
            drg = ""
            if inpatient:
                if cat == "52":
                    diag, drg = MATERNITY_INPATIENT[int(rnd() * 2)]
                elif cat == "22":
                    diag, drg = TRAUMA_DIAGNOSES[int(rnd() * 2)]
                else:
                    diag, drg = _pick(rng, diag_in)
                    if rnd() < 0.2:
                        drg = ""
                h.n_visit += 1
                visit = f"ZY{h.n_visit:09d}"
                los = 0 if cat == "28" else 2 + int(rnd() * 12)
                adm = day - dt.timedelta(los)
                admission, discharge = fmt(adm), dstr
                secs = 8 * 3600 + int(rnd() * 9 * 3600)
            else:
                if cat == "14":
                    diag = _pick(rng, diag_chronic)
                elif cat == "51":
                    diag = MATERNITY_OUTPATIENT[int(rnd() * 2)]
                elif rnd() < 0.9:
                    diag = diag_out_vals[bisect_right(diag_out_cum, rnd())]
                else:
                    diag = CHRONIC_DIAGNOSES[int(rnd() * len(CHRONIC_DIAGNOSES))]
                h.n_visit += 1
                visit = f"MZ{h.n_visit:010d}"
                admission = discharge = ""
                adm = None
                secs = 7 * 3600 + int(rnd() * 14 * 3600)
            money = claim_money(rng, cat, patient[1], 0)
            row = claim_row(h, ymd, dstr, secs, visit, patient[0], patient[1], cat, admission, discharge, diag, drg,
                            money)
            reversed_ = emit(rng, h, day, row, money, sink)
            if audit and cat == "21" and not reversed_:
                self._plan_readmission(h, day, patient, diag, drg)
            if fee:
                self._fee_visit(h, day, visit, patient, cat, adm, money[0], diag, self._claim_certain(reversed_))

    def _emit_claim(self, rng, h: _Hospital, day: dt.date, row: list[str], money, sink: _Sink) -> bool:
        """Write a new settlement; True when a reversal of it is scheduled."""
        sink.emit(row)
        if rng.random() < 0.006:  # reversed (冲正) later, sometimes in the next month or year
            later = day + dt.timedelta(1 + (rng.randrange(5) if rng.random() < 0.6 else rng.randrange(45)))
            if later <= self.end:
                self.pending_claims.setdefault((h.index, later), []).append(("reversal", list(row), money))
                return True
        return False

    def _claim_certain(self, reversed_: bool) -> bool:
        """The settlement just written will be its visit's effective one (loaded clean, never reversed)."""
        return not reversed_ and not self.settlements[-1]["lost"] and not self._claim_file_missing
