"""Smart audit end to end through the real Airflow DAG: the smart-audit worked example of docs/worked-example.md.

tests/fixtures/make_audit_example.py writes the example as a landing zone (reference files, the
bureau's audit_rules.csv, claim.csv and fee_detail.csv per business date); `nightly_ingest` runs once
through the last date (load, GX raw gate, dbt, GX marts gate, publish) and once more, which must change
nothing. Every figure asserted here is computed by hand in docs/worked-example.md.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from decimal import Decimal as D
from pathlib import Path

import pytest

from yibao import db

pytestmark = pytest.mark.xdist_group("e2e")

FIXTURES = Path(__file__).parent / "fixtures"
AUDIT_MARTS = ("fct_audit_findings", "fct_exam_positive_rate_monthly", "fct_audit_summary_monthly",
               "fct_settlement_deduction", "fct_settlement_monthly")


def _fixture_module():
    spec = importlib.util.spec_from_file_location("make_audit_example", FIXTURES / "make_audit_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


EX = _fixture_module()
H1, H17, H3 = EX.H1, EX.H17, EX.H3
LAST = dt.date.fromisoformat(EX.LAST_DATE)


def _query(sql: str, params=()) -> list[tuple]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _snapshot() -> dict:
    tables = _query(
        "select table_schema, table_name from information_schema.tables"
        " where table_schema in ('raw', 'marts') and table_type = 'BASE TABLE'"
        " and table_name <> 'landing_walk' order by 1, 2"  # the loader's log: a row per load step
    )
    counts = {f"{s}.{t}": _query(f'select count(*) from {s}."{t}"')[0][0] for s, t in tables}
    contents = {}
    for table in AUDIT_MARTS:
        cols = [c for (c,) in _query(
            "select column_name from information_schema.columns where table_schema = 'marts'"
            " and table_name = %s and column_name not like '\\_%%' order by ordinal_position", (table,))]
        contents[table] = sorted(map(repr, _query(f"select {', '.join(cols)} from marts.{table}")))
    return {"counts": counts, "contents": contents}


def _findings() -> dict:
    return {
        (r[0], r[1]): r[2:]
        for r in _query(
            "select rule_id, subject_id, rule_type, severity, hospital_code, subject_type, charge_date,"
            " flagged_quantity, flagged_amount, is_cross_hospital from marts.fct_audit_findings"
        )
    }


@pytest.fixture(scope="module")
def audit_example(module_warehouse, tmp_path_factory):
    from yibao.orchestrate import run_dag

    landing = tmp_path_factory.mktemp("audit_example") / "landing"
    EX.main(landing)

    def run() -> None:
        run_dag("nightly_ingest", LAST, {"landing": str(landing), "through": LAST.isoformat()}, landing=landing)

    run()
    first = _snapshot()
    findings = _findings()
    run()
    return {"first": first, "second": _snapshot(), "findings": findings}


def test_every_file_and_row_loaded(audit_example):
    assert _query("select reason_code, count(*) from raw.quarantine group by 1") == []
    ledger = dict(_query(
        "select file_kind || ' ' || status, count(*) from raw.load_ledger group by 1"))
    # 17 fee_detail and 3 claim folders; 7 landing reference files + the bureau's rules + the national library
    assert ledger == {"fee_detail loaded": 17, "claim loaded": 3, "reference:audit_rules loaded": 1,
                      "reference:audit_rules_national loaded": 1,
                      **{f"reference:{n} loaded": 1 for n in (
                          "hospitals", "consumable_catalog", "vbp_batches", "vbp_products", "vbp_agreed_volumes",
                          "fund_budgets", "settlement_params")}}
    assert _query("select count(*) from raw.fee_detail") == [(22,)]
    assert _query("select count(*) from raw.ref_audit_rules r join raw.load_ledger l using (load_id)"
                  " where l.file_kind = 'reference:audit_rules'") == [(8,)]


def test_findings_are_the_worked_example_and_nothing_else(audit_example):
    Dt = dt.date
    assert audit_example["findings"] == {
        # V9 at H1 on 2025-03-03: R11, R14, R15 (on F4), R18 (on F6)
        ("SEX-1", "F1"): ("sex", "violation", H1, "fee_line", Dt(2025, 3, 3), D("1.0000"), D("300.00"), False),
        ("INP-1", "F2"): ("inpatient_only", "violation", H1, "fee_line", Dt(2025, 3, 3), D("2.0000"), D("91.00"), False),
        ("FRQ-1", "F4"): ("daily_quantity", "violation", H1, "fee_line", Dt(2025, 3, 3), D("2.0000"), D("40.00"), False),
        ("INC-1", "F6"): ("included_in", "violation", H1, "fee_line", Dt(2025, 3, 3), D("1.0000"), D("12.00"), False),
        # R16: the 03-10 and 03-20 lines only (03-01 and 03-16 payable)
        ("INT-1", "I10"): ("min_interval_days", "violation", H17, "fee_line", Dt(2025, 3, 10), D("1.0000"), D("50.00"), False),
        ("INT-1", "I20"): ("min_interval_days", "violation", H17, "fee_line", Dt(2025, 3, 20), D("1.0000"), D("50.00"), False),
        # R20: the girl's 04-05 CT at H17, 4 days after her 04-01 CT at H1 (04-20 is 15 days on: no repeat)
        ("REP-1", "CT05"): ("repeat_exam", "suspicious", H17, "fee_line", Dt(2025, 4, 5), D("1.0000"),
                            D(EX.CT_PRICE_H17), True),
        # R22: S21 admitted 10 days after S20's discharge, same diagnosis group; amount = S21's fund_paid
        ("RDM-1", "S21"): ("readmission", "suspicious", H3, "settlement", Dt(2025, 5, 20), D("1.0000"),
                           D(EX.S21_FUND_PAID), False),
    }
    # the fund_paid R22 flags is the one loaded for S21
    assert _query("select fund_paid from raw.claim where settlement_id = 'S21'") == [(D(EX.S21_FUND_PAID),)]


def test_deduction_on_s9_to_the_cent(audit_example):
    # base 300.00 + 91.00 + 40.00 + 12.00 = 443.00 → round(443.00 × 1,200 / 2,000, 2) = 265.80; the INT-1
    # and CT visits have no settlement; R20 and R22 are suspicious: nothing deducted for S21
    rows = _query(
        "select hospital_code, settlement_id, unreasonable_excess_amount, audit_violation_amount,"
        " deductible_base_amount, deduction_amount from marts.fct_settlement_deduction"
    )
    assert rows == [(H1, "S9", D("0.00"), D("443.00"), D("443.00"), D("265.80"))]
    monthly = _query(
        "select hospital_code, settlement_month, declared_amount, deduction_amount from marts.fct_settlement_monthly"
        " where insurance_type = '310' and (hospital_code, settlement_month) in"
        " ((%s, '2025-03-01'::date), (%s, '2025-05-01'::date)) order by 1",
        (H1, H3),
    )
    assert monthly == [
        (H1, dt.date(2025, 3, 1), D("1200.00"), D("265.80")),
        (H3, dt.date(2025, 5, 1), D("13300.00"), D("0.00")),
    ]
    (total,) = _query("select sum(deduction_amount) from marts.fct_settlement_monthly")[0]
    assert total == D("265.80")


def test_positive_rate_alerts(audit_example):
    rows = _query(
        "select hospital_code, month_start, exam_class, examined_count, positive_count, positive_rate,"
        " threshold_rate, is_alert from marts.fct_exam_positive_rate_monthly order by hospital_code"
    )
    assert rows == [
        (H1, dt.date(2025, 4, 1), "CT", 10, 7, D("0.7000"), D("0.7000"), True),
        (H17, dt.date(2025, 4, 1), "CT", 2, 0, D("0.0000"), D("0.7000"), True),
    ]


def test_audit_summary_counts_the_findings(audit_example):
    rows = _query(
        "select hospital_code, month_start, rule_type, severity, finding_count, flagged_amount"
        " from marts.fct_audit_summary_monthly order by 1, 2, 3"
    )
    assert rows == [
        (H1, dt.date(2025, 3, 1), "daily_quantity", "violation", 1, D("40.00")),
        (H1, dt.date(2025, 3, 1), "included_in", "violation", 1, D("12.00")),
        (H1, dt.date(2025, 3, 1), "inpatient_only", "violation", 1, D("91.00")),
        (H1, dt.date(2025, 3, 1), "sex", "violation", 1, D("300.00")),
        (H17, dt.date(2025, 3, 1), "min_interval_days", "violation", 2, D("100.00")),
        (H17, dt.date(2025, 4, 1), "repeat_exam", "suspicious", 1, D(EX.CT_PRICE_H17)),
        (H3, dt.date(2025, 5, 1), "readmission", "suspicious", 1, D(EX.S21_FUND_PAID)),
    ]


def test_every_gate_passed_and_published(audit_example):
    steps = _query("select step, count(*) from audit.run_log where status = 'ok' group by 1 order by 1")
    assert dict(steps) == {"load": 2, "validate_raw": 2, "transform": 2, "validate_marts": 2, "publish": 2}
    assert _query("select as_of_date from audit.publish_log order by publish_id") == [(LAST,), (LAST,)]


def test_rerunning_the_night_changes_nothing(audit_example):
    assert audit_example["first"] == audit_example["second"]
    assert audit_example["findings"] == _findings()
