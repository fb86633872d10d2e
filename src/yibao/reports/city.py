"""Citywide views for the bureau: totals and hospital rankings, all from mart rows.

Every ranking lists every hospital of the month, worst first; ties break on hospital code, and the
rank is the position in that order (so re-rendering gives the same table).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal

from .data import Hospital, MonthData
from .labels import AUDIT_RULE_TYPE, MONTHLY_COLUMNS, q2, ratio

AMOUNTS = [key for _, key in MONTHLY_COLUMNS]
ZERO = Decimal("0.00")


def _base(h: Hospital) -> dict:
    return {"hospital_code": h.code, "hospital_name": h.name, "level": h.level, "county_code": h.county_code}


def _ranked(rows: list[dict], key) -> list[dict]:
    rows = sorted(rows, key=key)
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def settlement_totals(data: MonthData) -> tuple[list[dict], list[dict]]:
    """(this month, year to date): one row per insurance type plus a '合计' row (insurance_type None)."""
    month: dict[str | None, dict] = {}
    ytd: dict[str | None, dict] = {}
    hospitals: dict[str | None, set] = defaultdict(set)
    for r in data.settlement:
        for group in (r["insurance_type"], None):
            target_sets = [ytd] + ([month] if r["settlement_month"] == data.month else [])
            for target in target_sets:
                acc = target.setdefault(group, {k: ZERO for k in AMOUNTS})
                for k in AMOUNTS:
                    acc[k] += r[k] or ZERO
            if r["settlement_month"] == data.month:
                hospitals[group].add(r["hospital_code"])
    order = sorted(k for k in month if k is not None) + [None]
    out_m = [{"insurance_type": k, "hospitals": len(hospitals[k]), **month[k]} for k in order if k in month]
    out_y = [{"insurance_type": k, "hospitals": len(hospitals[k]), **ytd[k]} for k in order if k in ytd]
    return out_m, out_y


def consumption_totals(data: MonthData) -> list[dict]:
    """Per insurance type (plus 合计): Σ budget, Σ consumed, their ratio, alert counts at the cutoff."""
    groups: dict[str | None, dict] = {}
    for (_, t), r in sorted(data.month_end_consumption().items()):
        for g in (t, None):
            acc = groups.setdefault(
                g, {"annual_budget_amount": ZERO, "consumed_amount": ZERO, "time_elapsed": r["time_elapsed"],
                    "red": 0, "amber": 0, "green": 0}
            )
            acc["annual_budget_amount"] += r["annual_budget_amount"]
            acc["consumed_amount"] += r["consumed_amount"]
            acc[r["alert_level"]] = acc.get(r["alert_level"], 0) + 1
    out = []
    for g in sorted(k for k in groups if k is not None) + [None]:
        if g in groups:
            acc = groups[g]
            acc["consumption_rate"] = ratio(acc["consumed_amount"], acc["annual_budget_amount"])
            out.append({"insurance_type": g, **acc})
    return out


def pace_ranking(data: MonthData) -> list[dict]:
    hospitals = {h.code: h for h in data.hospitals}
    this_month = {(r["hospital_code"], r["insurance_type"]): r for r in data.settlement if r["settlement_month"] == data.month}
    rows = []
    for (code, t), c in data.month_end_consumption().items():
        if code not in hospitals:
            continue
        m = this_month.get((code, t), {})
        rows.append(
            {
                **_base(hospitals[code]),
                "insurance_type": t,
                **{k: c[k] for k in ("annual_budget_amount", "consumed_amount", "consumption_rate", "time_elapsed",
                                     "pace", "projected_year_end_amount", "alert_level")},
                "declared_amount": m.get("declared_amount"),
                "paid_amount": m.get("paid_amount"),
                "deferred_amount": m.get("deferred_amount"),
            }
        )
    return _ranked(rows, lambda r: (r["pace"] is None, -(r["pace"] or 0), r["hospital_code"], r["insurance_type"]))


def deduction_ranking(data: MonthData) -> list[dict]:
    rows = []
    for h in data.hospitals:
        month_rows = [r for r in data.settlement if r["hospital_code"] == h.code and r["settlement_month"] == data.month]
        declared = sum((r["declared_amount"] for r in month_rows), ZERO)
        deduction = sum((r["deduction_amount"] for r in month_rows), ZERO)
        claims = None
        if data.deduction_claims is not None:
            claims = sum(1 for c in data.deduction_claims if c["hospital_code"] == h.code and c["deduction_amount"] != 0)
        rows.append(
            {**_base(h), "declared_amount": declared, "deduction_amount": deduction,
             "deduction_rate": ratio(deduction, declared), "deducted_claims": claims}
        )
    return _ranked(rows, lambda r: (-r["deduction_amount"], r["hospital_code"]))


def vbp_ranking(data: MonthData) -> list[dict]:
    rows = []
    for h in data.hospitals:
        groups = [r for r in data.compliance if r["hospital_code"] == h.code]
        status = Counter(r["compliance_status"] for r in groups)
        rates = [r["completion_rate"] for r in groups if r["completion_rate"] is not None]
        rows.append(
            {
                **_base(h),
                "groups": len(groups),
                "completed": status["completed"],
                "on_track": status["on_track"],
                "behind": status["behind"],
                "avg_completion_rate": ratio(sum(rates, Decimal(0)), Decimal(len(rates))) if rates else None,
                "min_completion_rate": min(rates) if rates else None,
                "price_violation_count": sum(int(r["price_violation_count"] or 0) for r in groups),
            }
        )
    return _ranked(
        rows,
        lambda r: (r["groups"] == 0, -r["behind"], r["avg_completion_rate"] if r["avg_completion_rate"] is not None else 0,
                   r["hospital_code"]),
    )


def supplier_ranking(data: MonthData) -> list[dict]:
    rows = []
    for h in data.hospitals:
        lines = [r for r in data.supplier_overdue if r["hospital_code"] == h.code]
        days = [int(r["overdue_workdays"] or 0) for r in lines]
        rows.append(
            {**_base(h), "overdue_lines": len(lines), "suppliers": len({r["supplier_uscc"] for r in lines}),
             "overdue_amount": sum((r["amount"] for r in lines if r.get("amount") is not None), Decimal("0.00"))
             if any(r.get("amount") is not None for r in lines) else None,
             "max_overdue_workdays": max(days, default=0), "sum_overdue_workdays": sum(days)}
        )
    return _ranked(rows, lambda r: (-r["overdue_lines"], -r["max_overdue_workdays"], r["hospital_code"]))


def alert_ranking(data: MonthData) -> list[dict]:
    rows = []
    for h in data.hospitals:
        kinds = Counter(r["alert_type"] for r in data.alerts if r["hospital_code"] == h.code)
        rows.append(
            {**_base(h), "single_brand": kinds["single_brand"], "surgery_cost": kinds["surgery_cost"],
             "alerts": sum(kinds.values())}
        )
    return _ranked(rows, lambda r: (-r["alerts"], r["hospital_code"]))


def audit_ranking(data: MonthData) -> list[dict] | None:
    """Smart-audit findings of the month (by charge date) per hospital, from fct_audit_summary_monthly:
    largest violation amount first, then most findings. None when the mart is absent."""
    if data.audit_summary is None:
        return None
    rows = []
    for h in data.hospitals:
        acc = {"violation_count": 0, "violation_amount": ZERO, "suspicious_count": 0, "suspicious_amount": ZERO}
        for r in data.audit_summary:
            if r["hospital_code"] == h.code and r["severity"] in ("violation", "suspicious"):
                acc[f"{r['severity']}_count"] += int(r["finding_count"] or 0)
                acc[f"{r['severity']}_amount"] += r["flagged_amount"] or ZERO
        rule_types = sorted({r["rule_type"] for r in data.audit_summary if r["hospital_code"] == h.code
                             and int(r["finding_count"] or 0)},
                            key=lambda t: (list(AUDIT_RULE_TYPE).index(t) if t in AUDIT_RULE_TYPE else 99, t))
        rows.append({**_base(h), **acc, "finding_count": acc["violation_count"] + acc["suspicious_count"],
                     "rule_types": rule_types})
    return _ranked(rows, lambda r: (-r["violation_amount"], -r["finding_count"], r["hospital_code"]))


def audit_by_rule_type(data: MonthData) -> list[dict] | None:
    """Citywide findings of the month per rule type × severity (rule order R11 … R22)."""
    if data.audit_summary is None:
        return None
    groups: dict[tuple[str, str], dict] = {}
    for r in data.audit_summary:
        acc = groups.setdefault((r["rule_type"], r["severity"]),
                                {"rule_type": r["rule_type"], "severity": r["severity"], "hospitals": set(),
                                 "finding_count": 0, "flagged_amount": ZERO})
        if int(r["finding_count"] or 0):
            acc["hospitals"].add(r["hospital_code"])
        acc["finding_count"] += int(r["finding_count"] or 0)
        acc["flagged_amount"] += r["flagged_amount"] or ZERO
    order = list(AUDIT_RULE_TYPE)
    out = sorted(groups.values(), key=lambda g: (order.index(g["rule_type"]) if g["rule_type"] in order else 99,
                                                 g["rule_type"], g["severity"] != "violation"))
    return [{**g, "hospitals": len(g["hospitals"])} for g in out if g["finding_count"]]


def exam_rate_ranking(data: MonthData) -> list[dict] | None:
    """R21 rows of the month: alerts first (positive rate ≤ threshold), then lowest positive rate."""
    if data.exam_rates is None:
        return None
    hospitals = {h.code: h for h in data.hospitals}
    rows = []
    for r in data.exam_rates:
        h = hospitals.get(r["hospital_code"])
        base = _base(h) if h else {"hospital_code": r["hospital_code"], "hospital_name": r["hospital_code"],
                                   "level": None, "county_code": None}
        rows.append({**base, **{k: r[k] for k in ("exam_class", "examined_count", "positive_count", "positive_rate",
                                                  "threshold_rate", "is_alert")}})
    return _ranked(rows, lambda r: (not r["is_alert"], r["positive_rate"] is None,
                                    r["positive_rate"] if r["positive_rate"] is not None else 0,
                                    r["hospital_code"], r["exam_class"]))


def year_end_balance(row: dict) -> Decimal:
    """Budget minus reasonable: positive = 结余, negative = 超支."""
    return q2(row["annual_budget_amount"] - row["reasonable_amount"])
