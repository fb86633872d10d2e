"""The smart-audit rule library as the generator sees it, and an exact evaluator of DOMAIN §4b.

The generator reads the packaged national library (``yibao/data/audit_rules_national.csv``) at
generation time, adds the bureau's local rules (``reference/audit_rules.csv``: a few national rules
restated with an earlier ``effective_from`` so that the city's whole date range is audited, plus the
local exam, indication and readmission rules), and evaluates the effective library on the fee lines
it writes. The evaluation is the ground truth (``_generator/audit_findings.json``); it is also a guard:
a clean line that the evaluator flags is a generator bug, and the generator raises.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from importlib import resources

from ..contract import AUDIT_RULES_COLUMNS

LEVEL_RANK = {"基层": 1, "一级": 2, "二级": 3, "三级": 4}
OUTPATIENT_CATEGORIES = frozenset({"11", "12", "13", "14", "16", "41", "51"})
LINE_TYPES = ("sex", "age", "hospital_level", "inpatient_only", "indication")  # decided per line
VISIT_TYPES = ("course_days", "included_in")  # decided per visit
WINDOW_TYPES = ("daily_quantity", "min_interval_days", "repeat_exam")  # across visits: evaluated at the end


def national_rows() -> list[dict[str, str]]:
    """The packaged national library, as rows of strings (AUDIT_RULES_COLUMNS)."""
    text = resources.files("yibao").joinpath("data/audit_rules_national.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _date(text: str) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def _int(text: str) -> int | None:
    return int(text) if text else None


@dataclass(frozen=True)
class Rule:
    rule_id: str
    rule_type: str
    item_prefix: str
    severity: str
    allowed_sex: str
    min_age: int | None
    max_age: int | None
    min_rank: int | None
    max_quantity: int | None
    days: int | None
    main_prefix: str
    diagnoses: tuple[str, ...]
    exam_class: str
    threshold: str
    effective_from: dt.date
    effective_to: dt.date | None

    @classmethod
    def of(cls, row: dict[str, str]) -> Rule:
        return cls(
            row["rule_id"], row["rule_type"], row["item_prefix"], row["severity"], row["allowed_sex"],
            _int(row["min_age_days"]), _int(row["max_age_days"]),
            LEVEL_RANK[row["min_hospital_level"]] if row["min_hospital_level"] else None,
            _int(row["max_quantity"]), _int(row["days"]), row["main_item_prefix"],
            tuple(p for p in row["diagnosis_prefixes"].split("|") if p), row["exam_class"], row["threshold"],
            _date(row["effective_from"]), _date(row["effective_to"]),
        )

    def effective(self, day: dt.date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)


class Library:
    """The effective library: national rows, a bureau row replacing a national one with the same rule_id."""

    def __init__(self, national: list[dict[str, str]], bureau: list[dict[str, str]]) -> None:
        rows = {r["rule_id"]: r for r in national}
        rows.update({r["rule_id"]: r for r in bureau})
        self.rules = [Rule.of(r) for r in rows.values()]
        self.by_prefix: dict[str, list[Rule]] = {}
        self.by_main: dict[str, list[Rule]] = {}
        for r in self.rules:
            if r.item_prefix:
                self.by_prefix.setdefault(r.item_prefix, []).append(r)
            if r.rule_type == "included_in":
                self.by_main.setdefault(r.main_prefix, []).append(r)
        self.lengths = sorted({len(p) for p in self.by_prefix})
        self.main_lengths = sorted({len(p) for p in self.by_main})
        self._cache: dict[str, tuple[Rule, ...]] = {}
        self._split: dict[str, tuple[tuple[Rule, ...], ...]] = {}

    def matching(self, code: str) -> tuple[Rule, ...]:
        """Every rule whose item_prefix starts code (any date)."""
        hit = self._cache.get(code)
        if hit is None:
            found: list[Rule] = []
            for n in self.lengths:
                if n <= len(code):
                    found += self.by_prefix.get(code[:n], ())
            hit = self._cache[code] = tuple(found)
        return hit

    def split(self, code: str) -> tuple[tuple[Rule, ...], ...]:
        """(line rules, course_days rules, included_in rules as item B, included_in rules as main A) of a code."""
        hit = self._split.get(code)
        if hit is None:
            m = self.matching(code)
            hit = self._split[code] = (
                tuple(r for r in m if r.rule_type in LINE_TYPES),
                tuple(r for r in m if r.rule_type == "course_days"),
                tuple(r for r in m if r.rule_type == "included_in"),
                self.as_main(code),
            )
        return hit

    def as_main(self, code: str) -> tuple[Rule, ...]:
        """included_in rules whose main item prefix starts code."""
        found: list[Rule] = []
        for n in self.main_lengths:
            found += self.by_main.get(code[:n], ())
        return tuple(found)


def bureau_row(**values: str) -> dict[str, str]:
    row = {c.name: "" for c in AUDIT_RULES_COLUMNS}
    row.update(values)
    return row


# --- one fee line, and the findings -----------------------------------------------------------


@dataclass(slots=True)
class Line:
    fee_line_id: str
    hospital: str
    visit_id: str
    patient: str  # ID number (pseudonymised by the loader)
    code: str
    at: dt.datetime
    qty: int
    price4: int  # unit price, 1/10000 yuan
    cents: int  # amount

    @property
    def day(self) -> dt.date:
        return self.at.date()


def _round_cents(qty: int, price4: int) -> int:
    v = qty * price4
    return (v + 50) // 100 if v >= 0 else -((-v + 50) // 100)


def finding(rule: Rule, line: Line | None = None, *, qty: int | None = None, cents: int | None = None,
            cross: bool = False, settlement: dict | None = None) -> dict:
    """One expected row of marts.fct_audit_findings (patient as the ID number, before pseudonymisation)."""
    if settlement is not None:
        return {
            "rule_id": rule.rule_id, "rule_type": rule.rule_type, "severity": rule.severity,
            "hospital_code": settlement["hospital"], "subject_type": "settlement",
            "subject_id": settlement["settlement_id"], "visit_id": settlement["visit_id"],
            "patient_id_no": settlement["patient"], "charge_date": settlement["admission"].isoformat(),
            "item_code": None, "flagged_quantity": "1", "flagged_amount": _money(settlement["fund"]),
            "is_cross_hospital": False,
        }
    assert line is not None
    return {
        "rule_id": rule.rule_id, "rule_type": rule.rule_type, "severity": rule.severity,
        "hospital_code": line.hospital, "subject_type": "fee_line", "subject_id": line.fee_line_id,
        "visit_id": line.visit_id, "patient_id_no": line.patient, "charge_date": line.day.isoformat(),
        "item_code": line.code, "flagged_quantity": str(line.qty if qty is None else qty),
        "flagged_amount": _money(line.cents if cents is None else cents), "is_cross_hospital": cross,
    }


def _money(c: int) -> str:
    sign = "-" if c < 0 else ""
    q, r = divmod(abs(c), 100)
    return f"{sign}{q}.{r:02d}"


@dataclass(frozen=True)
class VisitContext:
    level_rank: int
    sex: str
    birth: dt.date
    category: str | None  # the visit's effective settlement (None: none, or not certain)
    diagnosis: str | None


def evaluate_visit(lib: Library, ctx: VisitContext, lines: list[Line]) -> list[dict]:
    """Findings of the per-line and per-visit rules (R11-R14, R17-R19) on one visit's lines."""
    out: list[dict] = []
    split = [(ln, lib.split(ln.code)) for ln in lines]
    first: dict[str, dt.date] = {}  # R17: first charge date of a matching line with quantity > 0
    main_net: dict[tuple[str, dt.date | None], int] = {}  # R18: main item A's net quantity
    for ln, (line_rules, course, _, mains) in split:
        day = ln.day
        for r in line_rules:
            if not r.effective(day):
                continue
            t = r.rule_type
            if t == "sex":
                hit = ctx.sex != r.allowed_sex
            elif t == "age":
                age = (day - ctx.birth).days
                hit = (r.min_age is not None and age < r.min_age) or (r.max_age is not None and age > r.max_age)
            elif t == "hospital_level":
                hit = ctx.level_rank < r.min_rank
            elif t == "inpatient_only":
                hit = ctx.category is not None and ctx.category in OUTPATIENT_CATEGORIES
            else:  # indication
                hit = ctx.diagnosis is not None and not ctx.diagnosis.startswith(r.diagnoses)
            if hit:
                out.append(finding(r, ln))
        for r in course:
            if r.effective(day) and ln.qty > 0 and (r.rule_id not in first or day < first[r.rule_id]):
                first[r.rule_id] = day
        for r in mains:
            if r.effective(day):
                key = (r.rule_id, day if r.days == 0 else None)
                main_net[key] = main_net.get(key, 0) + ln.qty
    for ln, (_, course, included, _) in split:
        day = ln.day
        for r in course:  # day k of the course > days
            if r.effective(day) and r.rule_id in first and (day - first[r.rule_id]).days + 1 > r.days:
                out.append(finding(r, ln))
        for r in included:  # B where A nets > 0 that date (days 0) or over the visit (days empty)
            if r.effective(day) and main_net.get((r.rule_id, day if r.days == 0 else None), 0) > 0:
                out.append(finding(r, ln))
    return out


def evaluate_windows(lib: Library, lines: list[Line]) -> list[dict]:
    """Findings of R15 (daily quantity), R16 (interval) and R20 (repeat exam) over all recorded lines."""
    out: list[dict] = []
    by_rule: dict[tuple[str, str], list[tuple[Rule, Line]]] = {}
    for ln in lines:
        for r in lib.matching(ln.code):
            if r.rule_type in WINDOW_TYPES and r.effective(ln.day):
                by_rule.setdefault((r.rule_id, ln.patient), []).append((r, ln))
    for (_, _patient), items in sorted(by_rule.items()):
        rule = items[0][0]
        lns = [ln for _, ln in items]
        if rule.rule_type == "daily_quantity":
            groups: dict[tuple[str, dt.date], list[Line]] = {}
            for ln in lns:
                groups.setdefault((ln.hospital, ln.day), []).append(ln)
            for _, g in sorted(groups.items()):
                net = sum(ln.qty for ln in g)
                if net > rule.max_quantity:
                    last = max((ln for ln in g if ln.qty > 0), key=lambda ln: (ln.at, ln.fee_line_id))
                    q = net - rule.max_quantity
                    out.append(finding(rule, last, qty=q, cents=_round_cents(q, last.price4)))
        elif rule.rule_type == "min_interval_days":
            net: dict[dt.date, int] = {}
            for ln in lns:
                net[ln.day] = net.get(ln.day, 0) + ln.qty
            payable: dt.date | None = None
            denied: set[dt.date] = set()
            for day in sorted(d for d, q in net.items() if q > 0):
                if payable is None or (day - payable).days >= rule.days:
                    payable = day
                else:
                    denied.add(day)
            out += [finding(rule, ln) for ln in lns if ln.day in denied]
        else:  # repeat_exam
            net2: dict[tuple[dt.date, str], int] = {}
            for ln in lns:
                net2[(ln.day, ln.hospital)] = net2.get((ln.day, ln.hospital), 0) + ln.qty
            pairs = sorted(p for p, q in net2.items() if q > 0)
            for prev, cur in zip(pairs, pairs[1:]):
                if (cur[0] - prev[0]).days <= rule.days:
                    cross = cur[1] != prev[1]
                    out += [finding(rule, ln, cross=cross) for ln in lns if (ln.day, ln.hospital) == cur]
    return out


def evaluate_readmissions(lib: Library, day_range: tuple[dt.date, dt.date], settlements: list[dict]) -> list[dict]:
    """R22 over the effective inpatient settlements (category 21) of each patient at each hospital: a stay
    admitted ≤ days after the discharge of the previous stay with the same first 3 characters of
    principal_diagnosis (a stay of another diagnosis in between does not hide it; docs/rules.md R22)."""
    rules = [r for r in lib.rules if r.rule_type == "readmission"]
    by_visit: dict[tuple[str, str], list[dict]] = {}
    reversed_ids = {(s["hospital"], s["reversal_of"]) for s in settlements if s["reversal_of"] and not s["lost"]}
    for s in settlements:
        if s["lost"] or s["reversal_of"] or (s["hospital"], s["settlement_id"]) in reversed_ids:
            continue
        by_visit.setdefault((s["hospital"], s["visit_id"]), []).append(s)
    effective = [max(v, key=lambda s: (s["settled_at"], s["settlement_id"])) for v in by_visit.values()]
    stays: dict[tuple[str, str], list[dict]] = {}
    for s in effective:
        if s["category"] == "21" and s["admission"] is not None:
            stays.setdefault((s["hospital"], s["patient"], s["diagnosis"][:3]), []).append(s)
    out = []
    for rule in rules:
        for _, group in sorted(stays.items()):
            group.sort(key=lambda s: (s["admission"], s["settlement_id"]))
            for prev, cur in zip(group, group[1:]):
                if rule.effective(cur["admission"]) and (cur["admission"] - prev["discharge"]).days <= rule.days:
                    out.append(finding(rule, settlement=cur))
    return out
