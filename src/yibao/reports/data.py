"""Read one month of the ``marts`` schema (docs/marts.md) in a single consistent snapshot.

The reports never recompute a settlement rule: every money figure comes from a mart row. The only
arithmetic here is presentation (sums over rows the marts already hold, ratios of those sums).

Optional table ``fct_settlement_deduction`` (not yet fixed by §7; asked of the dbt side): one row
per effective settlement whose visit carries unreasonable excess, with columns hospital_code,
settlement_id, visit_id, insurance_type, settled_at, settlement_month, total_amount,
fund_paid_amount, unreasonable_excess_amount, deduction_amount. When it exists the deductions
sheet lists each claim with its usage lines; without it the sheet falls back to the month's usage
lines with excess (by use date), without claim attribution.

Smart audit (R11–R22, docs/rules.md): ``fct_audit_findings`` (the month's findings by charge date),
``fct_audit_summary_monthly`` and ``fct_exam_positive_rate_monthly``. They are read when they exist;
a warehouse built before smart audit has none of them (the statements then say so instead of
listing findings), and a hospital that sends no fee lines simply has no rows in them.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

DEDUCTION_TABLE = "fct_settlement_deduction"
AUDIT_FINDINGS = "fct_audit_findings"
AUDIT_SUMMARY = "fct_audit_summary_monthly"
EXAM_RATES = "fct_exam_positive_rate_monthly"


class MartsError(RuntimeError):
    pass


@dataclass(frozen=True)
class Hospital:
    code: str
    name: str
    level: str | None
    county_code: str | None


@dataclass
class MonthData:
    schema: str
    month: date  # first day
    month_end: date
    marts_as_of: date  # latest as-of date the marts cover
    cutoff: date  # min(month_end, marts_as_of): the date the month's figures stand at
    hospitals: list[Hospital]
    settlement: list[dict]  # fct_settlement_monthly, January .. month of the year
    consumption: list[dict]  # fct_budget_consumption, 1 January .. cutoff
    annual: list[dict]  # fct_settlement_annual of the year (only read in December)
    compliance: list[dict]
    compliance_as_of: date | None
    supplier_overdue: list[dict]  # overdue at the cutoff
    deduction_claims: list[dict] | None  # None: the deduction mart is absent (fallback mode)
    deduction_lines: list[dict]
    alerts: list[dict]
    consumable_names: dict[str, str] = field(default_factory=dict)
    # smart audit; None: the mart table is absent (a warehouse built before smart audit)
    audit_findings: list[dict] | None = None  # fct_audit_findings with charge_date in the month
    audit_summary: list[dict] | None = None  # fct_audit_summary_monthly of the month
    exam_rates: list[dict] | None = None  # fct_exam_positive_rate_monthly of the month

    @property
    def year_start(self) -> date:
        return date(self.month.year, 1, 1)

    @property
    def is_complete(self) -> bool:
        return self.cutoff == self.month_end

    @property
    def is_year_end(self) -> bool:
        return self.month.month == 12 and bool(self.annual)

    def for_hospital(self, code: str) -> HospitalMonth:
        hospital = next(h for h in self.hospitals if h.code == code)
        pick = lambda rows: [r for r in rows if r["hospital_code"] == code]  # noqa: E731
        claims = None if self.deduction_claims is None else pick(self.deduction_claims)
        return HospitalMonth(
            data=self,
            hospital=hospital,
            settlement=pick(self.settlement),
            consumption=pick(self.consumption),
            annual=pick(self.annual),
            compliance=pick(self.compliance),
            supplier_overdue=pick(self.supplier_overdue),
            deduction_claims=claims,
            deduction_lines=pick(self.deduction_lines),
            alerts=pick(self.alerts),
            audit_findings=None if self.audit_findings is None else pick(self.audit_findings),
            exam_rates=None if self.exam_rates is None else pick(self.exam_rates),
        )

    # -- city-level views ---------------------------------------------------------------------
    def insurance_types(self) -> list[str]:
        return sorted({r["insurance_type"] for r in self.settlement if r["settlement_month"] == self.month})

    def month_end_consumption(self) -> dict[tuple[str, str], dict]:
        """(hospital, insurance type) -> the consumption row at the cutoff (latest ≤ cutoff)."""
        out: dict[tuple[str, str], dict] = {}
        for r in self.consumption:  # ordered by as_of_date
            out[(r["hospital_code"], r["insurance_type"])] = r
        return out


@dataclass
class HospitalMonth:
    data: MonthData
    hospital: Hospital
    settlement: list[dict]
    consumption: list[dict]
    annual: list[dict]
    compliance: list[dict]
    supplier_overdue: list[dict]
    deduction_claims: list[dict] | None
    deduction_lines: list[dict]
    alerts: list[dict]
    audit_findings: list[dict] | None = None
    exam_rates: list[dict] | None = None

    def insurance_types(self) -> list[str]:
        return sorted({r["insurance_type"] for r in self.settlement if r["settlement_month"] == self.data.month})

    def findings(self, severity: str) -> list[dict]:
        return [f for f in self.audit_findings or [] if f["severity"] == severity]

    def months(self, insurance_type: str) -> list[dict]:
        return [r for r in self.settlement if r["insurance_type"] == insurance_type]

    def this_month(self, insurance_type: str) -> dict:
        return next(r for r in self.months(insurance_type) if r["settlement_month"] == self.data.month)

    def year_to_date(self, insurance_type: str) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
        for r in self.months(insurance_type):
            for key, value in r.items():
                if key.endswith("_amount") and value is not None:
                    totals[key] += value
        return dict(totals)

    def consumption_series(self, insurance_type: str) -> list[dict]:
        return [r for r in self.consumption if r["insurance_type"] == insurance_type]

    def consumption_at_cutoff(self, insurance_type: str) -> dict | None:
        series = self.consumption_series(insurance_type)
        return series[-1] if series else None

    def lines_of(self, claim: dict) -> list[dict]:
        return [r for r in self.deduction_lines if r["visit_id"] == claim["visit_id"]]


# ------------------------------------------------------------------------------------------------
def month_bounds(month: date) -> tuple[date, date]:
    first = month.replace(day=1)
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def _next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def _naive(value):
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    return value


class _Reader:
    def __init__(self, cur, schema: str):
        self.cur = cur
        self.schema = schema

    def table(self, name: str):
        from psycopg2 import sql

        return sql.Identifier(self.schema, name)

    def exists(self, name: str) -> bool:
        self.cur.execute(
            "select 1 from information_schema.tables where table_schema = %s and table_name = %s",
            (self.schema, name),
        )
        return self.cur.fetchone() is not None

    def columns(self, name: str) -> set[str]:
        self.cur.execute(
            "select column_name from information_schema.columns where table_schema = %s and table_name = %s",
            (self.schema, name),
        )
        return {row[0] for row in self.cur.fetchall()}

    def rows(self, query: str, params: dict | None = None, **tables: str) -> list[dict]:
        from psycopg2 import sql

        stmt = sql.SQL(query).format(**{k: self.table(v) for k, v in tables.items()})
        self.cur.execute(stmt, params or {})
        cols = [c.name for c in self.cur.description]
        return [{c: _naive(v) for c, v in zip(cols, row)} for row in self.cur.fetchall()]

    def scalar(self, query: str, params: dict | None = None, **tables: str):
        rows = self.rows(query, params, **tables)
        return next(iter(rows[0].values())) if rows else None


REQUIRED = [
    "fct_settlement_monthly",
    "fct_settlement_annual",
    "fct_budget_consumption",
    "fct_procurement_compliance",
    "fct_supplier_payment",
    "fct_usage_pricing",
    "fct_abnormal_use_alerts",
    "dim_hospital",
]


def load_month(url: str, month: date, schema: str = "marts") -> MonthData:
    import psycopg2

    first, last = month_bounds(month)
    conn = psycopg2.connect(url)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        for _attempt in range(3):
            with conn.cursor() as cur:
                cur.execute("set time zone 'Asia/Shanghai'")
                reader = _Reader(cur, schema)
                missing = [t for t in REQUIRED if not reader.exists(t)]
                if missing:
                    raise MartsError(f"schema {schema!r} lacks mart table(s) {', '.join(missing)} (docs/marts.md)")
                data = _load(reader, schema, first, last)
                # Publishing swaps schemas by renaming them; table names resolve afresh per query,
                # so a swap during the reads could mix two nights: check and read again if so.
                if _marts_as_of(reader) == data.marts_as_of:
                    conn.rollback()
                    return data
            conn.rollback()
        raise MartsError(f"schema {schema!r} kept changing while being read (publishing in progress?)")
    finally:
        conn.close()


def _marts_as_of(r: _Reader) -> date | None:
    return r.scalar("select max(as_of_date)::date from {t}", t="fct_budget_consumption") or r.scalar(
        "select max(as_of_date)::date from {t}", t="fct_procurement_compliance"
    )


def _load(r: _Reader, schema: str, first: date, last: date) -> MonthData:
    year_start = date(first.year, 1, 1)
    marts_as_of = _marts_as_of(r)
    if marts_as_of is None:
        raise MartsError(f"{schema}.fct_budget_consumption is empty: the marts have no as-of date")
    if marts_as_of < first:
        raise MartsError(f"month {first:%Y-%m} is after the marts' as-of date {marts_as_of}")
    cutoff = min(last, marts_as_of)
    p = {"first": first, "last": last, "year_start": year_start, "cutoff": cutoff, "next": _next_month(first)}

    # dim_hospital's level column: `level` per the brief, `hospital_level` in the dbt model
    dim_columns = r.columns("dim_hospital")
    level = next((f"h.{c}::text" for c in ("level", "hospital_level") if c in dim_columns), "null::text")
    hospitals = [
        Hospital(h["hospital_code"], h["hospital_name"], h["level"], h["county_code"])
        for h in r.rows(
            """
            select s.hospital_code::text as hospital_code,
                   coalesce(h.hospital_name, s.hospital_code::text) as hospital_name,
                   """ + level + """ as level, h.county_code::text as county_code
            from (select distinct hospital_code from {s} where settlement_month = %(first)s) as s
            left join {h} as h on h.hospital_code = s.hospital_code
            order by 1
            """,
            p,
            s="fct_settlement_monthly",
            h="dim_hospital",
        )
    ]
    if not hospitals:
        raise MartsError(f"{schema}.fct_settlement_monthly has no rows for {first:%Y-%m}")

    settlement = r.rows(
        """
        select hospital_code::text as hospital_code, insurance_type::text as insurance_type,
               settlement_month::date as settlement_month, monthly_quota_amount, declared_amount, deduction_amount,
               reasonable_amount, paid_amount, deferred_amount, negotiated_drug_amount
        from {t}
        where settlement_month between %(year_start)s and %(first)s
        order by hospital_code, insurance_type, settlement_month
        """,
        p,
        t="fct_settlement_monthly",
    )
    consumption = r.rows(
        """
        select hospital_code::text as hospital_code, insurance_type::text as insurance_type,
               as_of_date::date as as_of_date, annual_budget_amount, consumed_amount, consumption_rate, time_elapsed, pace,
               projected_year_end_amount, alert_level::text as alert_level
        from {t}
        where as_of_date between %(year_start)s and %(cutoff)s
        order by hospital_code, insurance_type, as_of_date
        """,
        p,
        t="fct_budget_consumption",
    )
    annual = []
    if first.month == 12:
        annual = r.rows(
            """
            select hospital_code::text as hospital_code, insurance_type::text as insurance_type,
                   settlement_year, annual_budget_amount, reasonable_amount, monthly_paid_amount,
                   entitlement_amount, year_end_payment_amount
            from {t}
            where settlement_year = %(year)s
            order by hospital_code, insurance_type
            """,
            {"year": first.year},
            t="fct_settlement_annual",
        )

    # Compliance: the snapshot at the cutoff when the mart keeps snapshots, else the one it has.
    snap = r.scalar(
        "select max(as_of_date)::date from {t} where as_of_date <= %(cutoff)s", p, t="fct_procurement_compliance"
    ) or r.scalar("select min(as_of_date)::date from {t}", t="fct_procurement_compliance")
    compliance = []
    if snap is not None:
        compliance = r.rows(
            """
            select batch_id::text as batch_id, hospital_code::text as hospital_code,
                   product_group::text as product_group, as_of_date::date as as_of_date, agreed_qty, purchased_selected_qty,
                   completion_rate, expected_progress, compliance_status::text as compliance_status,
                   selected_share, price_violation_count
            from {t}
            where as_of_date = %(snap)s
            order by hospital_code, batch_id, product_group
            """,
            {"snap": snap},
            t="fct_procurement_compliance",
        )

    # optional (beyond §7): the line's amount, when the mart carries it
    amount = "amount" if "amount" in r.columns("fct_supplier_payment") else "null::numeric"
    supplier_overdue = r.rows(
        """
        select hospital_code::text as hospital_code, purchase_line_id::text as purchase_line_id,
               """ + amount + """ as amount,
               supplier_uscc::text as supplier_uscc, delivery_date::date as delivery_date,
               due_date::date as due_date, paid_date::date as paid_date,
               payment_status::text as payment_status, overdue_workdays
        from {t}
        where due_date < %(cutoff)s and (paid_date is null or paid_date > %(cutoff)s)
        order by hospital_code, due_date, purchase_line_id
        """,
        p,
        t="fct_supplier_payment",
    )

    line_columns = """
        u.hospital_code::text as hospital_code, u.usage_id::text as usage_id, u.visit_id::text as visit_id,
        u.consumable_code::text as consumable_code, u.used_at, u.quantity, u.charge_unit_price,
        u.reference_price, u.payment_standard_price, u.markup_excess_amount, u.standard_excess_amount,
        u.unreasonable_excess_amount, u.is_untraceable
    """
    if r.exists(DEDUCTION_TABLE):
        # beyond the first version of the table: the visit's smart-audit violation amount (R6 extended)
        audit_amount = ("audit_violation_amount" if "audit_violation_amount" in r.columns(DEDUCTION_TABLE)
                        else "null::numeric")
        deduction_claims = r.rows(
            """
            select hospital_code::text as hospital_code, settlement_id::text as settlement_id,
                   visit_id::text as visit_id, insurance_type::text as insurance_type, settled_at,
                   total_amount, fund_paid_amount, unreasonable_excess_amount,
                   """ + audit_amount + """ as audit_violation_amount, deduction_amount
            from {d}
            where settlement_month = %(first)s
              and (deduction_amount <> 0 or unreasonable_excess_amount <> 0)
            order by hospital_code, insurance_type, settled_at, settlement_id
            """,
            p,
            d=DEDUCTION_TABLE,
        )
        deduction_lines = r.rows(
            "select " + line_columns + """
            from {u} as u
            join {d} as d on d.hospital_code = u.hospital_code and d.visit_id = u.visit_id
            where d.settlement_month = %(first)s
              and (d.deduction_amount <> 0 or d.unreasonable_excess_amount <> 0)
              and u.unreasonable_excess_amount <> 0
            order by u.hospital_code, u.visit_id, u.used_at, u.usage_id
            """,
            p,
            u="fct_usage_pricing",
            d=DEDUCTION_TABLE,
        )
    else:
        deduction_claims = None
        deduction_lines = r.rows(
            "select " + line_columns + """
            from {u} as u
            where u.used_at >= %(first)s and u.used_at < %(next)s and u.unreasonable_excess_amount <> 0
            order by u.hospital_code, u.visit_id, u.used_at, u.usage_id
            """,
            p,
            u="fct_usage_pricing",
        )

    alerts = r.rows(
        """
        select alert_type::text as alert_type, hospital_code::text as hospital_code,
               subject_id::text as subject_id, period_month::date as period_month, metric_value, threshold_value
        from {t}
        where period_month = %(first)s
        order by hospital_code, alert_type, subject_id
        """,
        p,
        t="fct_abnormal_use_alerts",
    )

    consumable_names: dict[str, str] = {}
    codes = sorted({line["consumable_code"] for line in deduction_lines})
    if codes and r.exists("dim_consumable"):
        for row in r.rows(
            "select consumable_code::text as code, generic_name::text as name from {t} where consumable_code = any(%(codes)s)",
            {"codes": codes},
            t="dim_consumable",
        ):
            consumable_names[row["code"]] = row["name"]

    audit_findings = audit_summary = exam_rates = None
    if r.exists(AUDIT_FINDINGS):
        # item_name: beyond §7, shown when the mart carries it
        item_name = "item_name::text" if "item_name" in r.columns(AUDIT_FINDINGS) else "null::text"
        audit_findings = r.rows(
            """
            select rule_id::text as rule_id, rule_type::text as rule_type, severity::text as severity,
                   hospital_code::text as hospital_code, subject_type::text as subject_type,
                   subject_id::text as subject_id, visit_id::text as visit_id, charge_date::date as charge_date,
                   item_code::text as item_code, """ + item_name + """ as item_name, flagged_quantity,
                   flagged_amount, is_cross_hospital
            from {t}
            where charge_date between %(first)s and %(last)s
            order by hospital_code, severity desc, charge_date, rule_id, subject_type, subject_id
            """,
            p,
            t=AUDIT_FINDINGS,
        )
    if r.exists(AUDIT_SUMMARY):
        audit_summary = r.rows(
            """
            select hospital_code::text as hospital_code, rule_type::text as rule_type, severity::text as severity,
                   finding_count, flagged_amount
            from {t}
            where month_start = %(first)s
            order by hospital_code, rule_type, severity
            """,
            p,
            t=AUDIT_SUMMARY,
        )
    if r.exists(EXAM_RATES):
        exam_rates = r.rows(
            """
            select hospital_code::text as hospital_code, month_start::date as month_start,
                   exam_class::text as exam_class, examined_count, positive_count, positive_rate,
                   threshold_rate, is_alert
            from {t}
            where month_start = %(first)s
            order by hospital_code, exam_class
            """,
            p,
            t=EXAM_RATES,
        )

    return MonthData(
        schema=schema,
        month=first,
        month_end=last,
        marts_as_of=marts_as_of,
        cutoff=cutoff,
        hospitals=hospitals,
        settlement=settlement,
        consumption=consumption,
        annual=annual,
        compliance=compliance,
        compliance_as_of=snap,
        supplier_overdue=supplier_overdue,
        deduction_claims=deduction_claims,
        deduction_lines=deduction_lines,
        alerts=alerts,
        consumable_names=consumable_names,
        audit_findings=audit_findings,
        audit_summary=audit_summary,
        exam_rates=exam_rates,
    )
