"""An independent recomputation of the settlement marts (docs/rules.md R1, R3, R6, R7, R8) from the
landing files, in plain Python with ``decimal`` (half-up), for tests/test_recompute.py.

Nothing here reads a dbt model or a warehouse table with figures: the extracts and reference files
are read from the landing zone. The loader's row verdicts are honoured so that quarantined rows and
rejected files are excluded exactly as the warehouse excludes them: :func:`read_landing` takes the
set of rejected files (from ``raw.load_ledger``) and of quarantined (file, row) pairs (from
``raw.quarantine``), and reports per file how many rows it kept, which the caller compares with the
ledger's ``rows_loaded``. Decoding reuses :func:`yibao.landing.fingerprint` / :func:`read_rows`, date
parsing :func:`yibao.rowcheck.parse_date` / :func:`parse_datetime`; every rule is computed here.

    data = read_landing(landing, through, rejected_files, quarantined_rows)  # or *generator_verdicts(landing)
    marts = recompute(data, as_of=through)
    marts.usage_pricing[(hospital_code, usage_id)]                   -> UsagePricing
    marts.monthly[(hospital_code, insurance_type, first_of_month)]   -> Monthly
    marts.annual[(hospital_code, insurance_type, year)]              -> Annual
    budget_consumption(data, hospital_code, insurance_type, day)      -> Consumption | None
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

from yibao.contract import EXTRACTS, REFERENCE
from yibao.landing import fingerprint, read_rows
from yibao.rowcheck import parse_date, parse_datetime

CENT = Decimal("0.01")
RATE = Decimal("0.0001")
ZERO = Decimal(0)
ONE = Decimal(1)
DATE_DIR = re.compile(r"^\d{8}$")
SUFFIXES = (".csv", ".csv.gz", ".xlsx")


def money(x: Decimal) -> Decimal:
    return x.quantize(CENT, ROUND_HALF_UP)


def rate(x: Decimal) -> Decimal:
    return x.quantize(RATE, ROUND_HALF_UP)


def div(a: Decimal, b: Decimal) -> Decimal:
    """a / b with far more digits than any rounding here needs."""
    with localcontext() as ctx:
        ctx.prec = 60
        return a / b


def month_start(d: dt.date) -> dt.date:
    return d.replace(day=1)


# --- reading the landing zone ----------------------------------------------------------------------


@dataclass
class Purchase:
    hospital_code: str
    purchase_line_id: str
    consumable_code: str
    delivery_date: dt.date
    quantity: Decimal
    unit_price: Decimal


@dataclass
class Usage:
    hospital_code: str
    usage_id: str
    visit_id: str
    consumable_code: str
    quantity: Decimal
    charge_unit_price: Decimal
    used_at: dt.datetime


@dataclass
class Claim:
    hospital_code: str
    settlement_id: str
    visit_id: str
    insurance_type: str
    settled_at: dt.datetime
    total_amount: Decimal
    fund_paid: Decimal
    negotiated_drug_amount: Decimal
    reversal_of: str | None


@dataclass
class Batch:
    batch_id: str
    category_prefix: str
    cycle_start: dt.date
    cycle_end: dt.date
    selected: dict[str, Decimal] = field(default_factory=dict)  # consumable_code -> selected_price


@dataclass
class LandingData:
    purchases: dict[tuple[str, str], Purchase]  # latest version per natural key
    usages: dict[tuple[str, str], Usage]
    claims: dict[tuple[str, str], Claim]
    budgets: dict[tuple[int, str, str], tuple[Decimal, list[Decimal] | None]]  # (year, h, ins) -> (B, weights)
    params: dict[int, tuple[Decimal, Decimal]]  # year -> (surplus_retention_rate, overspend_share_rate)
    batches: list[Batch]
    kept_rows: dict[str, int]  # source_file (relative path) -> rows kept (compare with ledger rows_loaded)
    versions: dict[str, int]  # extract -> natural keys delivered more than once (valid versions)


def _stem(name: str) -> str | None:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _rows(path: Path, columns) -> list[tuple[int, dict[str, str] | None]]:
    """(source_row, {column: stripped text}) for each data row; None for a row of blank fields of the
    wrong width (the loader skips those without counting them)."""
    _, encoding = fingerprint(path)
    it = read_rows(path, encoding)
    header = [h.strip().lstrip("\ufeff").strip() for h in next(it)]
    pos = {}
    for col in columns:
        for i, h in enumerate(header):
            if h in (col.name, col.zh) or h.lower() == col.name:
                pos[col.name] = i
                break
    out = []
    for n, fields in enumerate(it, start=1):
        if len(fields) != len(header) and not any(f.strip() for f in fields):
            out.append((n, None))
            continue
        out.append((n, {c: (fields[i].strip() if i < len(fields) else "") for c, i in pos.items()}))
    return out


def _num(text: str) -> Decimal:
    return Decimal(text.replace(",", "")) if text else ZERO


def _date(text: str) -> dt.date:
    iso = parse_date(text)
    assert iso is not None, text
    return dt.date.fromisoformat(iso)


def _datetime(text: str) -> dt.datetime:
    iso = parse_datetime(text)
    assert iso is not None, text
    return dt.datetime.fromisoformat(iso)


def _purchase(v: dict) -> Purchase:
    return Purchase(v["hospital_code"], v["purchase_line_id"], v["consumable_code"], _date(v["delivery_date"]),
                    _num(v["quantity"]), _num(v["unit_price"]))


def _usage(v: dict) -> Usage:
    return Usage(v["hospital_code"], v["usage_id"], v["visit_id"], v["consumable_code"], _num(v["quantity"]),
                 _num(v["charge_unit_price"]), _datetime(v["used_at"]))


def _claim(v: dict) -> Claim:
    return Claim(v["hospital_code"], v["settlement_id"], v["visit_id"], v["insurance_type"],
                 _datetime(v["settled_at"]), _num(v["total_amount"]), _num(v["fund_paid"]),
                 _num(v.get("negotiated_drug_amount", "")), v.get("reversal_of") or None)


PARSERS = {"purchase": _purchase, "usage": _usage, "claim": _claim}


def generator_verdicts(landing: Path) -> tuple[set[str], set[tuple[str, int]]]:
    """(rejected files, quarantined rows) as the generator's ground truth (_generator/defects.json) says."""
    defects = json.loads((Path(landing) / "_generator" / "defects.json").read_text(encoding="utf-8"))
    return ({d["file"] for d in defects if d["row"] is None},
            {(d["file"], d["row"]) for d in defects if d["row"] is not None})


def read_landing(landing: Path, through: dt.date, rejected_files: set[str],
                 quarantined_rows: set[tuple[str, int]], extracts: tuple[str, ...] = tuple(EXTRACTS),
                 hospitals: set[str] | None = None) -> LandingData:
    """Every extract row with business date ≤ through that the loader kept; latest version per key.

    ``rejected_files``: source_file paths (relative to ``landing``) of files the loader rejected;
    ``quarantined_rows``: (source_file, source_row) of rows it quarantined (source_row 1 = first data row).
    ``extracts`` / ``hospitals``: read only these (for a quick look; the others come back empty).
    """
    landing = Path(landing)
    latest: dict[str, dict[tuple[str, str], tuple[tuple, object]]] = {k: {} for k in EXTRACTS}
    seen: dict[str, dict[tuple[str, str], int]] = {k: defaultdict(int) for k in EXTRACTS}
    kept: dict[str, int] = {}
    for day_dir in sorted(p for p in landing.iterdir() if p.is_dir() and DATE_DIR.match(p.name)):
        day = dt.datetime.strptime(day_dir.name, "%Y%m%d").date()
        if day > through:
            continue
        for hosp_dir in sorted(p for p in day_dir.iterdir() if p.is_dir() and (not hospitals or p.name in hospitals)):
            for path in sorted(hosp_dir.iterdir()):
                kind = _stem(path.name)
                if kind not in PARSERS or kind not in extracts:
                    continue
                rel = str(path.relative_to(landing))
                if rel in rejected_files:
                    continue
                n_kept = 0
                for n, values in _rows(path, EXTRACTS[kind].columns):
                    if values is None or (rel, n) in quarantined_rows:
                        continue
                    n_kept += 1
                    rec = PARSERS[kind](values)
                    assert rec.hospital_code == hosp_dir.name, (rel, n)
                    key = (rec.hospital_code, getattr(rec, EXTRACTS[kind].key))
                    order = (day, rel, n)  # later business date wins (one file per extract and folder)
                    seen[kind][key] += 1
                    old = latest[kind].get(key)
                    if old is None or order > old[0]:
                        latest[kind][key] = (order, rec)
                kept[rel] = n_kept

    ref = landing / "reference"

    def reference(name: str) -> list[dict[str, str]]:
        for suffix in SUFFIXES:
            path = ref / f"{name}{suffix}"
            if path.exists():
                return [v for _, v in _rows(path, REFERENCE[name]) if v is not None]
        return []

    budgets = {}
    for v in reference("fund_budgets"):
        weights = [v.get(f"m{m:02d}_weight", "") for m in range(1, 13)]
        w = [Decimal(x) for x in weights] if all(weights) else None
        budgets[(int(v["year"]), v["hospital_code"], v["insurance_type"])] = (_num(v["annual_budget"]), w)
    params = {}
    for v in reference("settlement_params"):
        params[int(v["year"])] = (
            Decimal(v["surplus_retention_rate"]) if v.get("surplus_retention_rate") else ONE,
            Decimal(v["overspend_share_rate"]) if v.get("overspend_share_rate") else ZERO,
        )
    batches = {
        v["batch_id"]: Batch(v["batch_id"], v["category_prefix"], _date(v["cycle_start"]), _date(v["cycle_end"]))
        for v in reference("vbp_batches")
    }
    for v in reference("vbp_products"):
        batches[v["batch_id"]].selected[v["consumable_code"]] = _num(v["selected_price"])
    return LandingData(
        purchases={k: r for k, (_, r) in latest["purchase"].items()},
        usages={k: r for k, (_, r) in latest["usage"].items()},
        claims={k: r for k, (_, r) in latest["claim"].items()},
        budgets=budgets,
        params=params,
        batches=list(batches.values()),
        kept_rows=kept,
        versions={k: sum(1 for n in s.values() if n > 1) for k, s in seen.items()},
    )


# --- the rules -------------------------------------------------------------------------------------


@dataclass
class UsagePricing:
    visit_id: str
    quantity: Decimal
    charge_unit_price: Decimal
    reference_price: Decimal | None
    payment_standard_price: Decimal | None
    markup_excess_amount: Decimal
    standard_excess_amount: Decimal
    unreasonable_excess_amount: Decimal
    is_untraceable: bool


@dataclass
class Monthly:
    monthly_quota_amount: Decimal
    declared_amount: Decimal
    deduction_amount: Decimal
    reasonable_amount: Decimal
    paid_amount: Decimal
    deferred_amount: Decimal
    negotiated_drug_amount: Decimal


@dataclass
class Annual:
    annual_budget_amount: Decimal
    reasonable_amount: Decimal
    monthly_paid_amount: Decimal
    entitlement_amount: Decimal
    year_end_payment_amount: Decimal
    branch: str  # 'surplus' (R_y ≤ B) or 'overspend'


@dataclass
class Consumption:
    annual_budget_amount: Decimal
    consumed_amount: Decimal
    consumption_rate: Decimal
    time_elapsed: Decimal
    pace: Decimal
    projected_year_end_amount: Decimal
    alert_level: str


@dataclass
class Marts:
    usage_pricing: dict[tuple[str, str], UsagePricing]
    deductions: dict[tuple[str, str], Decimal]  # (hospital, effective settlement_id) -> deduction
    monthly: dict[tuple[str, str, dt.date], Monthly]
    annual: dict[tuple[str, str, int], Annual]
    stats: dict[str, int]


def reference_prices(data: LandingData):
    """(hospital, code) -> (sorted delivery dates, highest unit_price of each date), purchases qty > 0."""
    by_day: dict[tuple[str, str], dict[dt.date, Decimal]] = defaultdict(dict)
    for p in data.purchases.values():
        if p.quantity > 0:
            days = by_day[(p.hospital_code, p.consumable_code)]
            if p.delivery_date not in days or p.unit_price > days[p.delivery_date]:
                days[p.delivery_date] = p.unit_price
    out = {}
    for key, days in by_day.items():
        ordered = sorted(days)
        out[key] = (ordered, [days[d] for d in ordered])
    return out


def payment_standard(batches: list[Batch], code: str, day: dt.date) -> Decimal | None:
    prices = set()
    for b in batches:
        if code.startswith(b.category_prefix) and b.cycle_start <= day <= b.cycle_end and b.selected:
            prices.add(b.selected[code] if code in b.selected else max(b.selected.values()))
    assert len(prices) <= 1, f"{code} on {day}: overlapping batches give {prices}"
    return prices.pop() if prices else None


def price_usage(data: LandingData) -> dict[tuple[str, str], UsagePricing]:
    refs = reference_prices(data)
    out = {}
    for key, u in data.usages.items():
        day = u.used_at.date()
        ref = None
        hit = refs.get((u.hospital_code, u.consumable_code))
        if hit:
            i = bisect.bisect_right(hit[0], day)
            if i:
                ref = hit[1][i - 1]
        markup = ZERO if ref is None else money(max(ZERO, u.charge_unit_price - ref) * u.quantity)
        std = payment_standard(data.batches, u.consumable_code, day)
        std_excess = ZERO if std is None else money(max(ZERO, u.charge_unit_price - std) * u.quantity)
        unreasonable = max(markup, std_excess) if u.quantity > 0 else min(markup, std_excess)
        out[key] = UsagePricing(u.visit_id, u.quantity, u.charge_unit_price, ref, std, markup, std_excess,
                                unreasonable, ref is None)
    return out


def settlement_candidates(data: LandingData) -> dict[tuple[str, str], list[Claim]]:
    """(hospital, visit_id) -> its settlements that are neither a reversal nor reversed, latest first."""
    reversed_ids = {(c.hospital_code, c.reversal_of) for c in data.claims.values() if c.reversal_of}
    out: dict[tuple[str, str], list[Claim]] = defaultdict(list)
    for c in data.claims.values():
        if not c.reversal_of and (c.hospital_code, c.settlement_id) not in reversed_ids:
            out[(c.hospital_code, c.visit_id)].append(c)
    for claims in out.values():
        claims.sort(key=lambda c: c.settled_at, reverse=True)
    return out


def effective_settlements(data: LandingData) -> dict[tuple[str, str], Claim]:
    """(hospital, visit_id) -> the latest settlement that is neither a reversal nor reversed."""
    candidates = settlement_candidates(data)
    ties = [k for k, cs in candidates.items() if len(cs) > 1 and cs[0].settled_at == cs[1].settled_at]
    assert not ties, f"visits with two effective settlements at the same settled_at: {ties[:5]}"
    return {k: cs[0] for k, cs in candidates.items()}


def quotas(budget: Decimal, weights: list[Decimal] | None) -> list[Decimal]:
    q = [money(budget * w) if weights else money(div(budget, Decimal(12))) for w in (weights or [None] * 12)][:11]
    return q + [budget - sum(q)]


def audit_violation_amounts(findings: list[dict]) -> dict[tuple[str, str], Decimal]:
    """R6 extended (DOMAIN §4b): Σ per visit of each fee line's violation amount, the flagged_amount of
    its violation finding of largest magnitude (a line is denied once; suspicious findings never count).

    ``findings``: the generator's ground truth (``_generator/audit_findings.json``), which evaluates the
    rules on the lines it wrote, independently of dbt.
    """
    per_line: dict[tuple[str, str], tuple[str, Decimal]] = {}
    for f in findings:
        if f["severity"] != "violation" or f["subject_type"] != "fee_line":
            continue
        key, amount = (f["hospital_code"], f["subject_id"]), Decimal(str(f["flagged_amount"]))
        old = per_line.get(key)
        if old is None or abs(amount) > abs(old[1]):
            per_line[key] = (f["visit_id"], amount)
    out: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for (h, _), (visit, amount) in per_line.items():
        out[(h, visit)] += amount
    return out


def recompute(data: LandingData, as_of: dt.date, audit_violations: dict[tuple[str, str], Decimal] | None = None) -> Marts:
    """``audit_violations``: Σ violation amount per (hospital, visit) (:func:`audit_violation_amounts`),
    added to the visit's deductible base next to its usage lines' unreasonable excess."""
    pricing = price_usage(data)
    effective = effective_settlements(data)
    candidates = settlement_candidates(data)

    excess_by_visit: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for (h, _), p in pricing.items():
        excess_by_visit[(h, p.visit_id)] += p.unreasonable_excess_amount
    for visit, amount in (audit_violations or {}).items():
        excess_by_visit[visit] += amount

    deductions: dict[tuple[str, str], Decimal] = {}
    deduction_month: dict[tuple[str, str, dt.date], Decimal] = defaultdict(Decimal)
    visits_without_effective = clamped = 0
    for visit, excess in excess_by_visit.items():
        c = effective.get(visit)
        if c is None:
            visits_without_effective += 1
            continue
        d = ZERO if c.total_amount == 0 else money(div(excess * c.fund_paid, c.total_amount))
        if not ZERO <= d <= c.fund_paid:
            clamped += 1
            d = min(max(d, ZERO), max(c.fund_paid, ZERO))
        deductions[(c.hospital_code, c.settlement_id)] = d
        deduction_month[(c.hospital_code, c.insurance_type, month_start(c.settled_at.date()))] += d

    declared: dict[tuple[str, str, dt.date], Decimal] = defaultdict(Decimal)
    negotiated: dict[tuple[str, str, dt.date], Decimal] = defaultdict(Decimal)
    for c in data.claims.values():
        key = (c.hospital_code, c.insurance_type, month_start(c.settled_at.date()))
        declared[key] += c.fund_paid - c.negotiated_drug_amount
        negotiated[key] += c.negotiated_drug_amount

    monthly: dict[tuple[str, str, dt.date], Monthly] = {}
    annual: dict[tuple[str, str, int], Annual] = {}
    for (year, h, ins), (budget, weights) in data.budgets.items():
        if dt.date(year, 1, 1) > as_of:
            continue
        q = quotas(budget, weights)
        last = 12 if year < as_of.year else as_of.month
        for m in range(1, last + 1):
            key = (h, ins, dt.date(year, m, 1))
            d_m = money(declared.get(key, ZERO))
            ded = money(deduction_month.get(key, ZERO))
            r_m = d_m - ded
            monthly[key] = Monthly(q[m - 1], d_m, ded, r_m, min(r_m, q[m - 1]), max(ZERO, r_m - q[m - 1]),
                                   money(negotiated.get(key, ZERO)))
        if dt.date(year, 12, 31) <= as_of:
            r_y = sum(monthly[(h, ins, dt.date(year, m, 1))].reasonable_amount for m in range(1, 13))
            p_y = sum(monthly[(h, ins, dt.date(year, m, 1))].paid_amount for m in range(1, 13))
            retention, share = data.params.get(year, (ONE, ZERO))
            if r_y <= budget:
                entitlement, branch = money(r_y + (budget - r_y) * retention), "surplus"
            else:
                entitlement, branch = money(budget + (r_y - budget) * share), "overspend"
            annual[(h, ins, year)] = Annual(budget, r_y, p_y, entitlement, entitlement - p_y, branch)

    budget_keys = {(h, ins, y) for (y, h, ins) in data.budgets}
    unbudgeted = sorted(k for k, v in declared.items() if (k[0], k[1], k[2].year) not in budget_keys)
    assert not unbudgeted, f"claims in months without a budget row: {unbudgeted[:5]}"
    reversed_visits = {(c.hospital_code, c.visit_id) for c in data.claims.values() if c.reversal_of}
    stats = {
        "usage_lines": len(pricing),
        "refund_lines": sum(1 for p in pricing.values() if p.quantity < 0),
        "untraceable_lines": sum(1 for p in pricing.values() if p.is_untraceable),
        "lines_with_markup": sum(1 for p in pricing.values() if p.markup_excess_amount != 0),
        "lines_with_standard_excess": sum(1 for p in pricing.values() if p.standard_excess_amount != 0),
        "lines_standard_excess_larger": sum(
            1 for p in pricing.values() if abs(p.standard_excess_amount) > abs(p.markup_excess_amount)),
        "nonzero_deductions": sum(1 for d in deductions.values() if d != 0),
        "visits_with_excess_but_no_effective_settlement": visits_without_effective,
        "clamped_deductions": clamped,
        "deductions_on_visits_with_a_reversal": sum(
            1 for (h, sid) in deductions if (h, data.claims[(h, sid)].visit_id) in reversed_visits),
        "visits_with_excess_and_several_candidates": sum(1 for v in excess_by_visit if len(candidates.get(v, ())) > 1),
        "reversals": sum(1 for c in data.claims.values() if c.reversal_of),
        "reversals_crossing_month": _crossing(data, lambda d: (d.year, d.month)),
        "reversals_crossing_year": _crossing(data, lambda d: d.year),
        "annual_overspend": sum(1 for a in annual.values() if a.branch == "overspend"),
        "annual_surplus": sum(1 for a in annual.values() if a.branch == "surplus"),
        "months_with_deferred": sum(1 for m in monthly.values() if m.deferred_amount > 0),
        "claim_versions": data.versions["claim"],
        "usage_versions": data.versions["usage"],
        "purchase_versions": data.versions["purchase"],
    }
    return Marts(pricing, deductions, monthly, annual, stats)


def _crossing(data: LandingData, period) -> int:
    n = 0
    for c in data.claims.values():
        if c.reversal_of:
            orig = data.claims.get((c.hospital_code, c.reversal_of))
            if orig and period(orig.settled_at.date()) != period(c.settled_at.date()):
                n += 1
    return n


def budget_consumption(data: LandingData, h: str, ins: str, day: dt.date) -> Consumption | None:
    """R8 for one hospital, insurance type and day (None without a budget for the day's year)."""
    hit = data.budgets.get((day.year, h, ins))
    if hit is None:
        return None
    budget = hit[0]
    start = dt.date(day.year, 1, 1)
    consumed = money(sum(
        (c.fund_paid - c.negotiated_drug_amount for c in data.claims.values()
         if c.hospital_code == h and c.insurance_type == ins and start <= c.settled_at.date() <= day),
        ZERO,
    ))
    days_in_year = 366 if calendar.isleap(day.year) else 365
    elapsed = div(Decimal((day - start).days + 1), Decimal(days_in_year))
    consumption = div(consumed, budget)
    pace = div(consumption, elapsed)
    alert = "red" if pace > Decimal("1.10") else "amber" if pace > ONE else "green"
    return Consumption(budget, consumed, rate(consumption), rate(elapsed), rate(pace),
                       money(div(consumed, elapsed)), alert)
