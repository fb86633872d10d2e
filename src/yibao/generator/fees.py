"""fee_detail.csv: every charged line of a visit (drugs, services, exams with results, refunds), for the
hospitals that send it, with injected smart-audit violations (R11-R20) and the bureau's local rules.

A visit's lines are written with its settlement (the hospital uploads them when it settles), so they sit
in the claim's folder; an inpatient stay's lines carry the charge dates of the stay. Clean lines obey
every rule of the effective library whatever its dates (a sex-limited drug only to the allowed sex, a
child-only drug only to children, level-limited drugs only at a high enough level, inpatient-only drugs
only on inpatient visits; codes under frequency, interval, course, included-item, indication and exam
rules only where a violation is injected). Their total stays within the claim's total_amount.

Violations are injected on a share (``audit_rate``) of the visits whose settlement is certain (written
clean, not reversed), one per visit, the rule types in turn. The findings are not counted by hand: the
evaluator in :mod:`.audit` computes them on the lines as written, and raises if a clean visit is flagged.
Readmissions (R22) come from the claims themselves (all hospitals), exam positive rates (R21) from the
exam lines.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
import re
import zlib
from decimal import ROUND_HALF_UP, Decimal

from ..contract import AUDIT_RULES_COLUMNS, FEE_DETAIL
from .audit import (
    LEVEL_RANK,
    OUTPATIENT_CATEGORIES,
    WINDOW_TYPES,
    Library,
    Line,
    VisitContext,
    bureau_row,
    evaluate_readmissions,
    evaluate_visit,
    evaluate_windows,
    national_rows,
)
from .common import CI, _cents, _count, _line_cents, _price

FI = {c.name: i for i, c in enumerate(FEE_DETAIL.columns)}

# Examinations (national service price norm codes: 2101 X-ray, 2103 CT, 2203 colour Doppler), with the
# class the bureau's positive-rate rules (R21) give them and a price range in yuan.
EXAMS = (
    ("002103000010000", "X线计算机体层(CT)平扫", "CT", 180, 260),
    ("002103000020000", "X线计算机体层(CT)增强扫描", "CT", 300, 420),
    ("002101020010000", "数字化X线摄影(DR)", "DR", 60, 90),
    ("002203010010000", "彩色多普勒超声常规检查", "彩超", 120, 160),
)
REPEAT_EXAM = "002103000010000"  # the CT that the local repeat-exam rule (R20) watches
EXAM_CLASSES = (("002103", "CT"), ("00210102", "DR"), ("002203", "彩超"))
# Local indication rule (R19): diabetes drug, only for these diagnoses.
INDICATION_DIAGNOSES = "E11|E14"
# Hospital # → the order in which hospitals start sending fee_detail (mixes levels for small shares).
_FEE_ORDER = (0, 2, 4, 5, 1, 3)
# Row defects of fee lines (defects.json; the loader's quarantine reasons); bad_exam_result last.
FEE_DEFECT_CLASSES = ("bad_item_code", "bad_item_type", "amount_mismatch", "bad_exam_result")
INJECTED_TYPES = (  # fee-line violations; readmissions (R22) are planned with the claims
    "sex", "age", "hospital_level", "inpatient_only", "daily_quantity", "min_interval_days", "course_days",
    "included_in", "included_in_visit", "indication", "repeat_exam",
)


def fee_hospitals(n: int, share: float) -> list[int]:
    """Indices of the hospitals that send fee_detail (a share of them; levels mixed)."""
    if share <= 0:
        return []
    order = [i for i in _FEE_ORDER if i < n] + list(range(len(_FEE_ORDER), n))
    return sorted(order[: max(1, round(share * n))])


def _corrupt_fee_row(drng: random.Random, cls: str, row: list[str]) -> tuple[str, str]:
    """Corrupt one field of a fee row in place for a defect class; (column, new value)."""
    if cls == "bad_item_code":  # malformed for its item type
        code = row[FI["item_code"]]
        forms = (code[:-1], code + "0", code[:4] + "-" + code[5:]) if code[0] in "XZ" else \
            (code[:-1], code[:6] + "A" + code[7:], code + "0")
        row[FI["item_code"]] = forms[drng.randrange(len(forms))]
        return "item_code", row[FI["item_code"]]
    if cls == "bad_item_type":  # not one of 11 12 13 21 31
        row[FI["item_type"]] = ("99", "41", "1", "药品")[drng.randrange(4)]
        return "item_type", row[FI["item_type"]]
    if cls == "amount_mismatch":  # ≠ quantity × unit price by 1.00 or more
        cents = int(row[FI["amount"]].replace(".", "")) + (100 + drng.randrange(9900)) * (1 if drng.random() < 0.5 else -1)
        row[FI["amount"]] = _cents(cents)
        return "amount", row[FI["amount"]]
    row[FI["exam_result"]] = ("X", "Q", "PN", "+")[drng.randrange(4)]  # bad_exam_result: not P / N
    return "exam_result", row[FI["exam_result"]]


def _item_type(code: str) -> str:
    """11 西药 (X…), 12 中成药 (Z…), 21 医疗服务项目 (digits)."""
    return "11" if code[0] == "X" else ("12" if code[0] == "Z" else "21")


def _span_price(code: str, lo: float, hi: float) -> int:
    """A fixed unit price (1/10000 yuan, whole fen) in [lo, hi] yuan for a code."""
    h = zlib.crc32(code.encode())
    return int((lo + (hi - lo) * (h % 1000) / 1000) * 100) * 100


def injection_rules(national: list[dict[str, str]], base: Library, pick: random.Random) -> dict[str, dict]:
    """One national rule per injected kind, drawn by the seed, on a code that no other rule matches."""

    def single(row) -> bool:  # its findings are of one type only
        code = row["item_prefix"]
        return len(base.matching(code)) == 1 and not base.as_main(code)

    def drug(row) -> bool:
        return row["item_prefix"][:1] in "XZ" and len(row["item_prefix"]) in (20, 23)

    def main_free(row) -> bool:  # the main item A of an included_in rule has no rule of its own
        return len(base.matching(row["main_item_prefix"])) == 0

    wanted = {
        "sex_M": lambda r: r["rule_type"] == "sex" and r["allowed_sex"] == "M" and drug(r),
        "sex_F": lambda r: r["rule_type"] == "sex" and r["allowed_sex"] == "F" and drug(r),
        "age": lambda r: r["rule_type"] == "age" and r["max_age_days"] == "6574" and not r["min_age_days"] and drug(r),
        "level_3": lambda r: r["rule_type"] == "hospital_level" and r["min_hospital_level"] == "二级",
        "level_4": lambda r: r["rule_type"] == "hospital_level" and r["min_hospital_level"] == "三级",
        "inpatient_only": lambda r: r["rule_type"] == "inpatient_only",
        "daily_quantity": lambda r: r["rule_type"] == "daily_quantity" and r["max_quantity"] == "1",
        "min_interval_days": lambda r: r["rule_type"] == "min_interval_days",
        "course_days": lambda r: r["rule_type"] == "course_days" and r["days"] == "10",
        "included_in": lambda r: r["rule_type"] == "included_in" and r["days"] == "0" and main_free(r),
        "included_in_visit": lambda r: r["rule_type"] == "included_in" and r["days"] == "" and main_free(r),
    }
    out = {}
    for kind, pred in wanted.items():
        rows = [r for r in national if pred(r) and r["severity"] == "violation" and single(r)]
        if rows:
            out[kind] = rows[pick.randrange(len(rows))]
    return out


def clean_pools(base: Library, excluded: set[str]) -> tuple[list[tuple], list[tuple]]:
    """Codes clean lines may use, with what their rules ask. Drugs: (code, allowed sex, min age, max age,
    min level rank, inpatient only) under sex/age/level/inpatient rules only. Services: (code, allowed
    sex) under sex rules, or as the included item B of included_in rules (their main items never appear
    on clean lines); no exam codes."""
    simple = {"sex", "age", "hospital_level", "inpatient_only"}
    exam_prefixes = tuple(p for p, _ in EXAM_CLASSES)
    drugs, services = [], []
    for code in sorted(base.by_prefix):
        if code in excluded:
            continue
        rules = base.matching(code)
        kinds = {r.rule_type for r in rules}
        sexes = {r.allowed_sex for r in rules if r.rule_type == "sex"}
        if len(sexes) > 1:
            continue
        sex = sexes.pop() if sexes else ""
        if code[:1] in "XZ" and len(code) in (20, 23) and kinds <= simple:
            mins = [r.min_age for r in rules if r.min_age is not None]
            maxs = [r.max_age for r in rules if r.max_age is not None]
            ranks = [r.min_rank for r in rules if r.min_rank is not None]
            drugs.append((code, sex, max(mins) if mins else None, min(maxs) if maxs else None,
                          max(ranks) if ranks else 0, "inpatient_only" in kinds))
        elif code.isdigit() and len(code) == 15 and kinds <= {"sex", "included_in"} and not base.as_main(code) \
                and not code.startswith(exam_prefixes):
            services.append((code, sex))
    return drugs, services


def item_names(national: list[dict[str, str]]) -> dict[str, str]:
    """Code → name: the library's items, the main items of included_in rules (named in the source,
    "…主项:急诊监护费)"), the exams."""
    names = {r["item_prefix"]: r["item_name"] for r in national}
    for r in national:
        main = re.search(r"主项:([^)）]+)", r["source"])
        if r["main_item_prefix"] and main:
            names.setdefault(r["main_item_prefix"], main.group(1))
    names.update({e[0]: e[1] for e in EXAMS})
    return names


def local_rules(since: str, indication_code: str, names: dict[str, str]) -> list[dict[str, str]]:
    """The bureau's own rules: indication (first), repeat exam, positive rates, readmission."""
    rules = [
        bureau_row(rule_id="LOC-IND-0001", rule_type="indication", item_prefix=indication_code,
                   item_name=names[indication_code], severity="suspicious", diagnosis_prefixes=INDICATION_DIAGNOSES,
                   effective_from=since, source="本市限适应症（限诊断 E11/E14）"),
        bureau_row(rule_id="LOC-REP-0001", rule_type="repeat_exam", item_prefix=REPEAT_EXAM,
                   item_name=names[REPEAT_EXAM], severity="suspicious", days="7", exam_class="CT",
                   effective_from=since, source="本市重复检查（7日内互认）"),
    ]
    for i, (prefix, cls) in enumerate(EXAM_CLASSES, 1):
        rules.append(bureau_row(rule_id=f"LOC-PR-{i:04d}", rule_type="positive_rate", item_prefix=prefix,
                                item_name=cls, severity="suspicious", exam_class=cls, threshold="0.70",
                                effective_from=since, source="004 §6 检查阳性率应高于70%"))
    rules.append(bureau_row(rule_id="LOC-RDM-0001", rule_type="readmission", severity="suspicious", days="15",
                            effective_from=since, source="本市分解住院（出院15日内同病种再入院）"))
    return rules


class _FeeDetail:
    """The fee_detail extract and the smart-audit ground truth (mixed into the city)."""

    # -- setup ------------------------------------------------------------------------------------

    def _fee_setup(self, share: float, lines_per_visit: float, audit_rate: float) -> None:
        self.fee_on = share > 0
        self.fee_index = set(fee_hospitals(len(self.hospitals), share))
        self.fee_lines = lines_per_visit
        self.audit_rate = audit_rate
        if not self.fee_on:
            return
        national = national_rows()
        base = Library(national, [])
        pick = random.Random(f"yibao-audit-rules|{self.seed}")
        self.inject_rules = injection_rules(national, base, pick)
        since = (self.start - dt.timedelta(30)).isoformat()  # an inpatient stay settled on day 1 began before it
        bureau = [  # national rules the city applies before the nation does (where the city starts earlier)
            {**r, "effective_from": since, "source": f"本市提前执行（{since}起）; {r['source']}"}
            for r in self.inject_rules.values() if since < r["effective_from"]
        ]
        drugs, services = clean_pools(base, {r["item_prefix"] for r in self.inject_rules.values()})
        self.item_names = item_names(national)
        self.clean_drugs = [(*d, _item_type(d[0]), _span_price(d[0], 1.5, 60)) for d in drugs]
        self.clean_services = [(c, s, _span_price(c, 5, 30)) for c, s in services]
        # the local indication rule's drug: one with at most a level limit (checked when injected)
        plain = [d for d in self.clean_drugs if not d[1] and d[2] is None and d[3] is None and not d[5]]
        self.indication_drug = plain[pick.randrange(len(plain))]
        self.clean_drugs = [d for d in self.clean_drugs if d[0] != self.indication_drug[0]]
        local = local_rules(since, self.indication_drug[0], self.item_names)
        self.inject_rules["indication"] = local[0]
        self.bureau_rules = bureau + local
        self.library = Library(national, self.bureau_rules)
        for code, *_ in EXAMS:
            assert all(r.rule_type in ("repeat_exam", "positive_rate") for r in self.library.matching(code)), code
        self.exam_rules = [r for r in self.library.rules if r.rule_type == "positive_rate"]
        self._code_meta: dict[str, tuple] = {}
        assert [c.name for c in FEE_DETAIL.columns] == list(FI), "fee rows are built in the contract's order"
        self.fee_findings: list[dict] = []
        self.window_lines: list[Line] = []
        self.exam_counts: dict[tuple[str, dt.date, str], list[int]] = {}
        self.settlements: list[dict] = []
        self.repeat_first: dict[str, tuple[dt.date, str]] = {}
        self.injected = {t: 0 for t in (*INJECTED_TYPES, "repeat_exam_cross", "readmission")}
        self.readmit_rng = random.Random(f"yibao-readmissions|{self.seed}")

    def write_audit_rules(self) -> None:
        path = self.landing / "reference" / "audit_rules.csv"
        with open(path, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow([c.name for c in AUDIT_RULES_COLUMNS])
            for r in self.bureau_rules:
                w.writerow([r[c.name] for c in AUDIT_RULES_COLUMNS])
        self.reference_rows["audit_rules"] = len(self.bureau_rules)
        self.files["reference"] += 1
        self.bytes += path.stat().st_size

    # -- claims seen (R22 and whether a visit's settlement is certain) ----------------------------

    def _observe_claim(self, row: list[str], lost: bool, relpath: str) -> None:
        h = self._fee_h
        adm = row[CI["admission_date"]]
        self.settlements.append({
            "hospital": row[CI["hospital_code"]], "settlement_id": row[CI["settlement_id"]],
            "visit_id": row[CI["visit_id"]], "patient": row[CI["patient_id_no"]],
            "category": row[CI["medical_category"]], "diagnosis": row[CI["principal_diagnosis"]],
            "admission": h.dates.parse(adm) if adm else None,
            "discharge": h.dates.parse(row[CI["discharge_date"]]) if adm else None,
            "settled_at": row[CI["settled_at"]], "fund": int(row[CI["fund_paid"]].replace(".", "")),
            "reversal_of": row[CI["reversal_of"]], "lost": lost, "file": relpath,
        })

    def _plan_readmission(self, h, day: dt.date, patient: tuple, diagnosis: str, drg: str) -> None:
        """After an inpatient (21) discharge, now and then the same patient comes back within the local
        readmission rule's 15 days with the same condition (R22; settled by _claims like any stay)."""
        rng = self.readmit_rng
        if rng.random() >= self.audit_rate / 2:
            return
        admission = day + dt.timedelta(1 + rng.randrange(14))
        discharge = admission + dt.timedelta(2 + rng.randrange(5))
        if discharge <= self.end:
            self.pending_claims.setdefault((h.index, discharge), []).append(
                ("planned", patient, "21", admission, diagnosis, drg))
            self.injected["readmission"] += 1

    def _plan_referral(self, h, day: dt.date, patient: tuple, diagnosis: str) -> bool:
        """The patient of a CT at h goes to another hospital that sends fee_detail within the repeat rule's
        7 days (an outpatient visit, settled there by _claims), where the CT is done again (R20, cross-hospital)."""
        rng = self.readmit_rng
        others = sorted(i for i in self.fee_index if i != h.index)
        later = day + dt.timedelta(1 + rng.randrange(6))
        if not others or later > self.end:
            return False
        other = others[rng.randrange(len(others))]
        self.pending_claims.setdefault((other, later), []).append(("planned", patient, "11", None, diagnosis, ""))
        return True

    # -- one visit ----------------------------------------------------------------------------------

    def _fee_visit(self, h, day: dt.date, visit: str, patient: tuple, cat: str, admission: dt.date | None,
                   total_cents: int, diagnosis: str, safe: bool) -> None:
        sink = self._fee_sink
        if sink is None or total_cents <= 0:
            return
        rng = self._fee_rng
        rnd = rng.random
        pid, _, sex, _ = patient
        birth = dt.date(int(pid[6:10]), int(pid[10:12]), int(pid[12:14]))
        inpatient = cat not in OUTPATIENT_CATEGORIES
        dates = [day] if not inpatient or admission is None else \
            [admission + dt.timedelta(i) for i in range((day - admission).days + 1)]
        rank = LEVEL_RANK[h.level]
        pool, services = self.clean_drugs, self.clean_services
        n_pool, n_services = len(pool), len(services)
        budget = [total_cents]
        lines: list[tuple[Line, str, str]] = []  # (line, item_type, exam_result)
        clock = {d: dt.datetime.combine(d, dt.time(8 + int(rnd() * 3), int(rnd() * 60), int(rnd() * 60)))
                 for d in dates}

        def add(code: str, item_type: str, qty: int, price4: int, d: dt.date, result: str = "",
                force: bool = False) -> Line | None:
            cents = _line_cents(qty, price4)
            if cents > budget[0] and not force:
                return None
            budget[0] -= cents
            clock[d] += dt.timedelta(minutes=3 + int(rnd() * 40))
            ln = Line("", h.code, visit, pid, code, clock[d], qty, price4, cents)
            lines.append((ln, item_type, result))
            return ln

        def clean_drug(d: dt.date) -> None:
            age = (d - birth).days
            for _ in range(8):
                code, s, lo, hi, need_rank, inp, item_type, price4 = pool[int(rnd() * n_pool)]
                if (s and s != sex) or (lo is not None and age < lo) or (hi is not None and age > hi) \
                        or rank < need_rank or (inp and not inpatient):
                    continue
                ln = add(code, item_type, 1 + int(rnd() * 3), price4, d)
                if ln is not None and rnd() < 0.03:  # refunded later that day (退费)
                    add(code, item_type, -ln.qty, ln.price4, d, force=True)
                return

        def clean_service(d: dt.date) -> None:
            for _ in range(8):
                code, s, price4 = services[int(rnd() * n_services)]
                if s and s != sex:
                    continue
                add(code, "21", 1, price4, d)
                return

        def exam(d: dt.date, code: str | None = None, force: bool = False) -> bool:
            if code is None:
                code = EXAMS[int(rnd() * len(EXAMS))][0]
            spec = next(e for e in EXAMS if e[0] == code)
            p_pos = (0.55, 0.8, 0.72, 0.9)[h.index % 4]
            ln = add(code, "21", 1, _span_price(code, spec[3], spec[4]), d, "P" if rnd() < p_pos else "N", force)
            if ln is not None and code == REPEAT_EXAM and pid not in self.repeat_first:
                self.repeat_first[pid] = (d, h.code)
            return ln is not None

        # clean lines
        clean_service(dates[0])
        if rnd() < (0.5 if inpatient else 0.25):
            exam(dates[0])
        if inpatient:
            per_day = max(1.0, self.fee_lines / 2)
            for d in dates:
                clean_service(d)
                for _ in range(_count(rng, per_day)):
                    clean_drug(d)
        else:
            for _ in range(_count(rng, max(0.0, self.fee_lines - 1))):
                clean_drug(day)
        # a CT at another hospital within the repeat rule's 7 days of an earlier one (R20, cross-hospital)
        first = self.repeat_first.get(pid)
        if first is not None and (day - first[0]).days > 7:
            del self.repeat_first[pid]
        elif first is not None and first[0] < dates[0] and first[1] != h.code:
            exam(dates[0], REPEAT_EXAM, force=True)
            self.injected["repeat_exam_cross"] += 1
            del self.repeat_first[pid]
        injected = None
        if safe and rnd() < self.audit_rate:
            injected = self._inject(h, rnd, inpatient, dates, sex, birth, rank, diagnosis, add, exam, patient, day)
        # fee_line_ids in charge order; the file lists them in that order
        lines.sort(key=lambda x: (x[0].at, x[0].code))
        ymd = f"FY{day:%Y%m%d}"
        for ln, _, _ in lines:
            h.n_fee += 1
            ln.fee_line_id = f"{ymd}{h.n_fee:08d}"
        # row defects, which the loader quarantines: drawn first, the audit sees only the lines that load
        drng = self._fee_drng
        bad = {i: self._fee_defect_class(drng, result) for i, (_, _, result) in enumerate(lines)
               if drng is not None and drng.random() < self.defect_rate}
        ctx = VisitContext(rank, sex, birth, cat if safe else None, diagnosis if safe else None)
        found = evaluate_visit(self.library, ctx, [ln for i, (ln, _, _) in enumerate(lines) if i not in bad])
        if found and injected is None:
            raise RuntimeError(f"generator bug: clean visit {visit} at {h.code} is flagged: {found}")
        self.fee_findings += found
        fmt = h.dates
        dept = ("0301", "0201", "0401", "0501")[h.n_visit % 4] if inpatient else "0101"
        doctor = f"D{h.county}{h.index:03d}{900 + h.n_visit % 17:03d}"
        meta = self._code_meta
        for i, (ln, item_type, result) in enumerate(lines):
            code = ln.code
            m = meta.get(code)
            if m is None:
                m = meta[code] = self._meta(code)
            name, window, exam_rules = m
            at = ln.at
            row = [
                ln.fee_line_id, h.code, visit, pid, item_type, code, name, dept, doctor,
                f"{fmt(at.date())} {at.hour:02d}:{at.minute:02d}:{at.second:02d}", str(ln.qty), _price(ln.price4),
                _cents(ln.cents), result,
            ]
            if i in bad:
                column, value = _corrupt_fee_row(drng, bad[i], row)
                sink.emit(row)
                self._record(sink.relpath, sink.rows, bad[i], column, value)
                continue
            if window:
                self.window_lines.append(ln)
            if result and exam_rules and ln.qty > 0 and rank >= 3:
                for r in exam_rules:
                    if r.effective(at.date()):
                        c = self.exam_counts.setdefault((h.code, at.date().replace(day=1), r.exam_class), [0, 0])
                        c[0] += 1
                        c[1] += result == "P"
            sink.emit(row)

    @staticmethod
    def _fee_defect_class(drng: random.Random, result: str) -> str:
        """A row defect class for a fee line (bad_exam_result only where there is an exam result)."""
        classes = FEE_DEFECT_CLASSES if result else FEE_DEFECT_CLASSES[:-1]
        return classes[drng.randrange(len(classes))]

    def _meta(self, code: str) -> tuple[str, bool, tuple]:
        """(item name, under a window rule (R15/R16/R20), positive-rate rules) of a code."""
        rules = self.library.matching(code)
        return (self.item_names.get(code, "医疗服务项目"), any(r.rule_type in WINDOW_TYPES for r in rules),
                tuple(r for r in self.exam_rules if code.startswith(r.item_prefix)))

    def _inject(self, h, rnd, inpatient, dates, sex, birth, rank, diagnosis, add, exam, patient, day) -> str | None:
        """Add one violation's lines to the visit (the least injected rule type that fits it); its type or None."""
        for kind in sorted(INJECTED_TYPES, key=lambda k: self.injected[k]):
            if kind == "repeat_exam":  # the same CT twice in one stay, or again at another hospital days later
                if len(dates) >= 2:
                    exam(dates[0], REPEAT_EXAM, force=True)
                    exam(dates[min(len(dates) - 1, 3)], REPEAT_EXAM, force=True)
                elif patient[0] in self.repeat_first or not exam(dates[0], REPEAT_EXAM) \
                        or not self._plan_referral(h, day, patient, diagnosis):
                    continue  # (a CT that fitted the claim stays: a first CT, payable)
                # else: this first CT is payable; the referral's CT is the repeat
            else:
                plan = self._violation_lines(kind, inpatient, dates, sex, birth, rank, diagnosis)
                if plan is None:
                    continue
                for code, qty, d, lo, hi in plan:
                    add(code, _item_type(code), qty, _span_price(code, lo, hi), d, force=True)
            self.injected[kind] += 1
            return kind
        return None

    def _violation_lines(self, kind, inpatient, dates, sex, birth, rank, diagnosis) -> list[tuple] | None:
        """(code, quantity, charge date, price range in yuan) of the lines that break a rule of kind, or None
        when the visit cannot break it (e.g. inpatient-only on an inpatient stay)."""
        rules = self.inject_rules
        d0 = dates[0]
        if kind == "sex":
            r = rules.get("sex_F" if sex == "M" else "sex_M")
            return r and [(r["item_prefix"], 1, d0, 5, 80)]
        if kind == "age":
            r = rules.get("age")  # a child-only drug for an adult
            return r and (d0 - birth).days > 6574 and [(r["item_prefix"], 2, d0, 5, 40)] or None
        if kind == "hospital_level":
            r = rules.get("level_3") if rank < 3 else (rules.get("level_4") if rank < 4 else None)
            return r and [(r["item_prefix"], 1, d0, 20, 200)]
        if kind == "inpatient_only":
            r = rules.get(kind)
            return r and not inpatient and [(r["item_prefix"], 1, d0, 20, 150)] or None
        if kind == "daily_quantity":
            r = rules.get(kind)  # max 1 a day, charged twice
            return r and [(r["item_prefix"], 2, d0, 5, 40)]
        if kind == "min_interval_days":
            r = rules.get(kind)  # two days in a row
            return r and len(dates) >= 2 and [(r["item_prefix"], 1, d, 10, 60) for d in dates[:2]] or None
        if kind == "course_days":
            r = rules.get(kind)  # day 1 and day days + 1 of the course
            return r and len(dates) > int(r["days"]) and [
                (r["item_prefix"], 1, d, 5, 80) for d in (d0, dates[int(r["days"])])] or None
        if kind in ("included_in", "included_in_visit"):
            r = rules.get(kind)  # the main item A, and the item B it includes (same day / later in the visit)
            return r and [(r["main_item_prefix"], 1, d0, 20, 120),
                          (r["item_prefix"], 1, d0 if kind == "included_in" else dates[-1], 5, 40)]
        # indication: a diagnosis outside the rule's (the drug's own level limit respected)
        r = rules["indication"]
        if diagnosis.startswith(tuple(INDICATION_DIAGNOSES.split("|"))) or rank < self.indication_drug[4]:
            return None
        return [(r["item_prefix"], 1, d0, 1.5, 60)]

    # -- ground truth --------------------------------------------------------------------------------

    def write_audit_truth(self, dropped: set[str]) -> dict:
        for s in self.settlements:
            if s["file"] in dropped:
                s["lost"] = True
        findings = list(self.fee_findings)
        findings += evaluate_windows(self.library, self.window_lines)
        findings += evaluate_readmissions(self.library, (self.start, self.end), self.settlements)
        findings.sort(key=lambda f: (f["rule_id"], f["hospital_code"], f["subject_id"]))
        gen = self.landing / "_generator"
        gen.mkdir(exist_ok=True)
        lines = [json.dumps(f, ensure_ascii=False) for f in findings]
        (gen / "audit_findings.json").write_text("[\n" + ",\n".join(lines) + ("\n]\n" if lines else "]\n"),
                                                 encoding="utf-8")
        thresholds = {r.exam_class: r.threshold for r in self.exam_rules}
        rates = []
        for (hosp, month, cls), (examined, positive) in sorted(self.exam_counts.items()):
            rate = (Decimal(positive) / Decimal(examined)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
            rates.append({"hospital_code": hosp, "month_start": month.isoformat(), "exam_class": cls,
                          "examined_count": examined, "positive_count": positive, "positive_rate": str(rate),
                          "threshold_rate": thresholds[cls], "is_alert": rate <= Decimal(thresholds[cls])})
        (gen / "exam_positive_rate.json").write_text(json.dumps(rates, ensure_ascii=False, indent=1) + "\n",
                                                     encoding="utf-8")
        by_type: dict[str, int] = {}
        for f in findings:
            by_type[f["rule_type"]] = by_type.get(f["rule_type"], 0) + 1
        return {"fee_hospitals": sorted(self.hospitals[i].code for i in self.fee_index),
                "injected_visits": dict(self.injected), "findings_by_rule_type": dict(sorted(by_type.items())),
                "findings": len(findings), "positive_rate_rows": len(rates)}
