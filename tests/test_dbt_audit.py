"""Smart audit (R11-R22) through dbt on raw rows: the worked example of docs/worked-example.md
(smart audit) inserted into raw.fee_detail, raw.claim and raw.ref_audit_rules with SQL, then
three nightly builds and a full rebuild:

  night A  through 2025-03-31 into marts_build  (V9's first lines and S9; V10's line, no claim yet)
  night B  through 2025-06-30 into marts_build  (V9's F5/F6 arrive late, S10 arrives late,
                                                 the INT-1 days, the CT exams, the readmission)
  night C  through 2025-06-30 into marts_build  (F1 refunded; F6 corrected to an item no rule
                                                 matches; I01 corrected to another patient, so the
                                                 man's INT-1 days are re-walked without it; built
                                                 up to the findings mart only, then a late file
                                                 re-sends F1R and the night is built)
  night D  through 2025-06-30 into marts_build  (the bureau re-delivers its rules without RDM-1:
                                                 R22's finding disappears; everything re-matched)
  check    through 2025-06-30 into marts_check with --full-refresh, after night C and after night D

The marts are checked to the cent after nights B and C, and the incrementally built marts and
audit models must equal a full rebuild row for row, after night C (each model followed the nights
by the keys they touched) and after night D (a new rule library: everything re-derived). Every
audit model is incremental (int_claims_with_deductions too: a visit whose fee-line findings
change must be re-derived although its claim did not change).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal as D
from pathlib import Path

import pytest
from conftest import dbt_log_of, render_sql, reset_warehouse

from yibao import transform

H1 = "H41070200001"  # 三级
H17 = "H41070200017"  # 二级
H3 = "H41070300003"  # 三级
MAN, GIRL, WOMAN, LATE, LATE2 = "PK_MAN", "PK_GIRL", "PK_WOMAN", "PK_LATE", "PK_LATE2"
A, B = dt.date(2025, 3, 31), dt.date(2025, 6, 30)

SEX_ITEM = "002202010060000"
INP_DRUG = "XB05BAF160B0"
FRQ_ITEM = "001102000010000"
INC_A, INC_B = "001103000010000", "001101000010000"
INC_A2, INC_B2 = "001106000010000", "001107000010000"
INT_ITEM = "250301015000000"
CT_ITEM = "002103000010000"
DR_ITEM = "002102000010000"

RULE_COLS = [
    "rule_id",
    "rule_type",
    "item_prefix",
    "severity",
    "allowed_sex",
    "max_quantity",
    "days",
    "main_item_prefix",
    "exam_class",
    "threshold",
    "effective_from",
]


def rule(rule_id, rule_type, prefix, severity="violation", **kw):
    values = {"rule_id": rule_id, "rule_type": rule_type, "item_prefix": prefix, "severity": severity}
    values.update(kw)
    return tuple(values.get(c) for c in RULE_COLS)


NATIONAL = [
    rule("SEX-1", "sex", SEX_ITEM, allowed_sex="F"),
    rule("INP-1", "inpatient_only", INP_DRUG),
    rule("FRQ-1", "daily_quantity", FRQ_ITEM, max_quantity=D(1)),
    rule("INC-1", "included_in", INC_B, main_item_prefix=INC_A, days=0),
    # a second R18 rule (per visit) on the extra visit VR (EXTRA below)
    rule("INC-2", "included_in", INC_B2, main_item_prefix=INC_A2),
    rule("INT-1", "min_interval_days", INT_ITEM, days=15),
    # replaced by the bureau's row of the same rule_id (which only applies from 2026)
    rule("SEX-9", "sex", CT_ITEM, allowed_sex="M"),
]
BUREAU = [
    rule("REP-1", "repeat_exam", CT_ITEM, severity="suspicious", days=7),
    # EXTRA: a DR rule (no positive-rate rule reads DR) for the late patient's window groups
    rule("REP-2", "repeat_exam", DR_ITEM, severity="suspicious", days=7),
    rule("PR-1", "positive_rate", "002103", severity="suspicious", exam_class="CT", threshold=D("0.70")),
    rule("RDM-1", "readmission", None, severity="suspicious", days=15),
    rule("SEX-9", "sex", CT_ITEM, allowed_sex="M", effective_from=dt.date(2026, 1, 1)),
]

FEE_COLS = [
    "fee_line_id",
    "visit_id",
    "patient_key",
    "patient_sex",
    "patient_age_days",
    "item_type",
    "item_code",
    "item_name",
    "dept_code",
    "doctor_code",
    "charged_at",
    "quantity",
    "unit_price",
    "amount",
    "exam_result",
]
CLAIM_COLS = [
    "settlement_id",
    "visit_id",
    "patient_key",
    "insurance_type",
    "medical_category",
    "admission_date",
    "discharge_date",
    "settled_at",
    "principal_diagnosis",
    "total_amount",
    "fund_paid",
    "other_fund_paid",
    "account_paid",
    "cash_paid",
    "negotiated_drug_amount",
    "reversal_of",
]


def fee(line_id, visit, at, item, qty, price, patient=MAN, sex="M", item_type="21", result=None):
    qty, price = D(qty), D(price)
    return (
        line_id,
        visit,
        patient,
        sex,
        12000 if patient == MAN else 3000,
        item_type,
        item,
        "示例项目",
        "0301",
        "D410702000001",
        at,
        qty,
        price,
        (qty * price).quantize(D("0.01")),
        result,
    )


def claim(sid, visit, settled_at, total, fund, category="11", patient=MAN, diagnosis="J06.900",
          admission=None, discharge=None):
    total, fund = D(total), D(fund)
    return (sid, visit, patient, "310", category, admission, discharge, settled_at, diagnosis,
            total, fund, D(0), D(0), total - fund, D(0), None)


def ts(m, d, hh=10, mm=0):
    return dt.datetime(2025, m, d, hh, mm, 0)


def _ledger(cur, kind, hospital, business_date, source_file, n) -> int:
    cur.execute(
        "insert into raw.load_ledger (file_kind, hospital_code, business_date, source_file, sha256,"
        " status, rows_read, rows_loaded) values (%s, %s, %s, %s, md5(random()::text), 'loaded', %s, %s)"
        " returning load_id",
        (kind, hospital, business_date, source_file, n, n),
    )
    return cur.fetchone()[0]


def _insert(cur, table, columns, rows, lineage):
    cols = [*lineage, "source_row", *columns]
    sql = f"insert into {table} ({', '.join(cols)}) values ({', '.join(['%s'] * len(cols))})"
    for i, row in enumerate(rows, start=1):
        cur.execute(sql, [*lineage.values(), i, *row])


def load_reference(cur, name, columns, rows, kind=None):
    lid = _ledger(cur, kind or f"reference:{name}", None, None, f"reference/{name}.csv", len(rows))
    _insert(cur, f"raw.ref_{name}", columns, rows, {"load_id": lid})


def load_extract(cur, kind, hospital, day, rows):
    table, columns = ("fee_detail", FEE_COLS) if kind == "fee_detail" else ("claim", CLAIM_COLS)
    path = f"{day:%Y%m%d}/{hospital}/{kind}.csv"
    lid = _ledger(cur, kind, hospital, day, path, len(rows))
    _insert(
        cur,
        f"raw.{table}",
        ["hospital_code", *columns],
        [(hospital, *r) for r in rows],
        {"load_id": lid, "business_date": day, "source_file": path},
    )


def night_a(cur):
    hospitals = [(H1, "示例市第一人民医院", "三级"), (H17, "示例市第十七医院", "二级"),
                 (H3, "示例市第三医院", "三级")]
    load_reference(cur, "hospitals", ["hospital_code", "hospital_name", "level", "county_code", "ownership"],
                   [(h, n, lvl, "410702", "public") for h, n, lvl in hospitals])
    load_reference(cur, "fund_budgets", ["year", "hospital_code", "insurance_type", "annual_budget"],
                   [(2025, h, "310", D("1200000.00")) for h, _, _ in hospitals])
    load_reference(cur, "settlement_params", ["year", "surplus_retention_rate", "overspend_share_rate"],
                   [(2025, D("0.6"), D("0.3"))])
    load_reference(cur, "audit_rules", RULE_COLS, NATIONAL, kind="reference:audit_rules_national")
    load_reference(cur, "audit_rules", RULE_COLS, BUREAU)
    day = dt.date(2025, 3, 3)
    load_extract(cur, "fee_detail", H1, day, [
        fee("F1", "V9", ts(3, 3, 8), SEX_ITEM, "1", "300.00"),
        fee("F2", "V9", ts(3, 3, 8), INP_DRUG, "2", "45.50", item_type="11"),
        fee("F3", "V9", ts(3, 3, 9), FRQ_ITEM, "1", "20.00"),
        fee("F4", "V9", ts(3, 3, 15), FRQ_ITEM, "2", "20.00"),
        # V10: an inpatient-only drug on a visit whose claim has not arrived: no R14 yet
        fee("F10", "V10", ts(3, 3, 9), INP_DRUG, "1", "45.50", item_type="11"),
        # a consumable (item_type 31) is audited from usage.csv, never here
        fee("F11", "V9", ts(3, 3, 9), SEX_ITEM, "1", "300.00", item_type="31"),
    ])
    load_extract(cur, "claim", H1, day, [claim("S9", "V9", ts(3, 3, 17), "2000.00", "1200.00")])
    # EXTRA (not in the worked example; visits without a claim, so nothing is deducted): two R11
    # lines (F12, F13) and a visit VR with two R18 groups (INC-1 per day, INC-2 per visit), so that
    # night C's corrections touch one group of a visit and leave the other alone
    load_extract(cur, "fee_detail", H3, day, [
        fee("F12", "VS", ts(3, 3, 8), SEX_ITEM, "1", "10.00"),
        fee("F13", "VU", ts(3, 3, 9), SEX_ITEM, "1", "10.00"),
        fee("RA1", "VR", ts(3, 3, 10), INC_A, "1", "100.00"),
        fee("RB1", "VR", ts(3, 3, 11), INC_B, "1", "10.00"),
        fee("RA2", "VR", ts(3, 3, 12), INC_A2, "1", "80.00"),
        fee("RB2", "VR", ts(3, 3, 13), INC_B2, "1", "8.00"),
    ])


# the subjects of the extra lines, left out of the worked example's figures
EXTRA = {"F12", "F13", "RA1", "RB1", "RA2", "RB2", "RA1R"}
# the woman's INT-1 days at H3 (a window group touched at two dates in one night, night C), and the
# late patient's INT-1 days and DR exams (window groups touched after findings, night C)
WINDOW_EXTRA = {"W1", "W2", "W3", "L1", "L2", "L3", "L4", "D1", "D2", "D3", "E1", "E2", "E3"}
# another patient's two inpatient stays at H3 (R22), the first corrected to another patient in night C
STAY_EXTRA = {"X1", "X2"}
# EXTRA: a visit whose claim is corrected after its findings were written, and nothing else of it
CLAIM_EXTRA = {"Y1"}


def night_b(cur):
    # V9's F5 (A) and F6 (B) arrive late, after S9: S9's deduction must follow
    load_extract(cur, "fee_detail", H1, dt.date(2025, 3, 4), [
        fee("F5", "V9", ts(3, 3, 10), INC_A, "1", "150.00"),
        fee("F6", "V9", ts(3, 3, 11), INC_B, "1", "12.00"),
    ])
    # V10's claim arrives late, outpatient: R14 on F10
    load_extract(cur, "claim", H1, dt.date(2025, 3, 5),
                 [claim("S10", "V10", ts(3, 3, 18), "100.00", "50.00")])
    # INT-1 days 15, at two hospitals
    for hospital, day in [(H1, 1), (H17, 10), (H1, 16), (H17, 20)]:
        load_extract(cur, "fee_detail", hospital, dt.date(2025, 3, day), [
            fee(f"I{day:02d}", f"VI{day:02d}", ts(3, day), INT_ITEM, "1", "50.00")])
    # I10's visit is settled: its R16 finding is deducted until night C makes I10 payable (the
    # visit then loses its only deductible row, and nothing of it is written again)
    load_extract(cur, "claim", H17, dt.date(2025, 3, 11),
                 [claim("SI10", "VI10", ts(3, 10, 18), "100.00", "60.00")])
    # EXTRA: the woman's INT-1 days at H3: 03-01, 03-05 (4 days on: not payable), 03-25
    load_extract(cur, "fee_detail", H3, dt.date(2025, 3, 25), [
        fee(f"W{i}", f"VW{i}", ts(3, day), INT_ITEM, "1", "50.00", patient=WOMAN, sex="F")
        for i, day in [(1, 1), (2, 5), (3, 25)]])
    # EXTRA: the late patient at H3: INT-1 on 03-01 (payable) and 03-05 (not: a finding); DR
    # (REP-2, 7 days) on 04-01 and 04-03 (a repeat at the same hospital: a finding)
    load_extract(cur, "fee_detail", H3, dt.date(2025, 4, 3), [
        fee("L1", "VL1", ts(3, 1), INT_ITEM, "1", "50.00", patient=LATE),
        fee("L2", "VL2", ts(3, 5), INT_ITEM, "1", "50.00", patient=LATE),
        fee("D1", "VD1", ts(4, 1), DR_ITEM, "1", "80.00", patient=LATE),
        fee("D2", "VD2", ts(4, 3), DR_ITEM, "1", "80.00", patient=LATE),
        # a second patient's DR on 04-03 and 04-05 (a repeat)
        fee("E1", "VE1", ts(4, 3), DR_ITEM, "1", "70.00", patient=LATE2),
        fee("E2", "VE2", ts(4, 5), DR_ITEM, "1", "70.00", patient=LATE2),
    ])
    # CT: the girl at H1 on 04-01 and at H17 on 04-05 and 04-20 (all N); 9 other patients at H1
    load_extract(cur, "fee_detail", H1, dt.date(2025, 4, 1), [
        fee("CT01", "VG1", ts(4, 1), CT_ITEM, "1", "200.00", patient=GIRL, sex="F", result="N")])
    load_extract(cur, "fee_detail", H17, dt.date(2025, 4, 5), [
        fee("CT05", "VG5", ts(4, 5), CT_ITEM, "1", "180.00", patient=GIRL, sex="F", result="N")])
    load_extract(cur, "fee_detail", H17, dt.date(2025, 4, 20), [
        fee("CT20", "VG20", ts(4, 20), CT_ITEM, "1", "180.00", patient=GIRL, sex="F", result="N")])
    others = [fee(f"CTX{i}", f"VX{i}", ts(4, 10 + i), CT_ITEM, "1", "200.00", patient=f"PK_X{i}",
                  result="P" if i < 7 else "N") for i in range(9)]
    load_extract(cur, "fee_detail", H1, dt.date(2025, 4, 30), others)
    # EXTRA: another patient's stays at H3: X2 admitted 7 days after X1's discharge, same K35
    load_extract(cur, "claim", H3, dt.date(2025, 5, 30), [
        claim("X1", "VX1", ts(5, 5), "5000.00", "3500.00", category="21", patient="PK_STAY",
              diagnosis="K35.800", admission=dt.date(2025, 5, 1), discharge=dt.date(2025, 5, 5)),
        claim("X2", "VX2", ts(5, 15), "4000.00", "2800.00", category="21", patient="PK_STAY",
              diagnosis="K35.100", admission=dt.date(2025, 5, 12), discharge=dt.date(2025, 5, 15)),
    ])
    # the man's inpatient settlements at H3: S21 readmitted 10 days after S20's discharge
    load_extract(cur, "claim", H3, dt.date(2025, 5, 31), [
        claim("S20", "V20", ts(5, 10), "10000.00", "7000.00", category="21", diagnosis="K35.800",
              admission=dt.date(2025, 5, 1), discharge=dt.date(2025, 5, 10)),
        claim("S21", "V21", ts(5, 28), "9000.00", "6300.00", category="21", diagnosis="K35.900",
              admission=dt.date(2025, 5, 20), discharge=dt.date(2025, 5, 28)),
    ])


def night_c(cur):
    # F1 refunded (a new line, -1): its R11 finding nets out. F6 re-sent with another item code:
    # it matches no rule any more. I01 re-sent for another patient: the man's first INT-1 day is
    # gone, so 03-10 becomes payable and 03-16 (6 days on) and 03-20 (10 days on) are not.
    load_extract(cur, "fee_detail", H1, dt.date(2025, 6, 1), [
        fee("F1R", "V9", ts(3, 4, 9), SEX_ITEM, "-1", "300.00"),
        fee("F6", "V9", ts(3, 3, 11), "001199000010000", "1", "12.00"),
        fee("I01", "VI01", ts(3, 1), INT_ITEM, "1", "50.00", patient="PK_OTHER"),
    ])
    # CT20 re-sent charged on 04-02 (was 04-20): the girl's REP-1 group is touched on 04-02 and
    # 04-20; CT05 (04-05), between the two, now repeats CT20 at the same hospital, no longer CT01
    # at another: its finding changes although its visit is not touched
    load_extract(cur, "fee_detail", H17, dt.date(2025, 6, 1), [
        fee("CT20", "VG20", ts(4, 2), CT_ITEM, "1", "180.00", patient=GIRL, sex="F", result="N")])
    # EXTRA: W1 re-sent charged on 03-28 (was 03-01): the woman's INT-1 group is touched on 03-01
    # and 03-28; W2 (03-05), between the two, becomes her first day, payable: its finding goes
    # although its visit is not touched (W3 20 days on: payable; W1 3 days after W3: not)
    load_extract(cur, "fee_detail", H3, dt.date(2025, 6, 1), [
        fee("W1", "VW1", ts(3, 28), INT_ITEM, "1", "50.00", patient=WOMAN, sex="F")])
    # EXTRA: late lines of the late patient's groups, each with a finding before the night's first
    # date, which stays, and a day that decides from a day before it (R16/R20 re-derive a group
    # from that date, docs/rules.md). INT-1 from 03-10: the last payable day before it is 03-01
    # (03-05 has its finding), so 03-10 is not payable (9 days on) and 03-18 is (17 days on; 13
    # days after 03-05). DR at H17 on 04-10: 7 days after 04-03 (read from 04-03 exactly), a
    # cross-hospital repeat
    load_extract(cur, "fee_detail", H3, dt.date(2025, 6, 3), [
        fee("L3", "VL3", ts(3, 10), INT_ITEM, "1", "50.00", patient=LATE),
        fee("L4", "VL4", ts(3, 18), INT_ITEM, "1", "50.00", patient=LATE),
        # the second patient's DR on 04-08: read from 04-01, so E2's repeat of E1 (before 04-08)
        # is walked again but kept as stored, not written twice; E3 repeats E2
        fee("E3", "VE3", ts(4, 8), DR_ITEM, "1", "70.00", patient=LATE2),
    ])
    load_extract(cur, "fee_detail", H17, dt.date(2025, 6, 3), [
        fee("D3", "VD3", ts(4, 10), DR_ITEM, "1", "90.00", patient=LATE)])
    # EXTRA: X1 re-sent for another patient: X2 is no longer a readmission, although X2 and its
    # patient's claims did not change (R22 re-walks the stays of X1's former patient)
    load_extract(cur, "claim", H3, dt.date(2025, 6, 1), [
        claim("X1", "VX1", ts(5, 5), "5000.00", "3500.00", category="21", patient="PK_OTHER",
              diagnosis="K35.800", admission=dt.date(2025, 5, 1), discharge=dt.date(2025, 5, 5))])
    # EXTRA: an inpatient-only drug on an outpatient visit, settled: R14 on Y1, deducted on SY
    # (until night_c_late corrects SY)
    load_extract(cur, "fee_detail", H3, dt.date(2025, 6, 1), [
        fee("Y1", "VY", ts(5, 2, 9), INP_DRUG, "1", "45.50", patient="PK_Y", item_type="11")])
    load_extract(cur, "claim", H3, dt.date(2025, 6, 1), [
        claim("SY", "VY", ts(5, 2, 18), "300.00", "150.00", patient="PK_Y")])


def night_c_late(cur):
    # a late file of the same night, loaded after a build that stopped before the summary mart
    # (the fixture below): F1R re-sent unchanged, so V9's findings, written by that build, are
    # deleted and copied again by the next; the summary had not counted them
    load_extract(cur, "fee_detail", H1, dt.date(2025, 6, 2), [
        fee("F1R", "V9", ts(3, 4, 9), SEX_ITEM, "-1", "300.00"),
    ])
    # EXTRA: F12 re-sent with an item no rule matches (its R11 finding goes); RA1 refunded the
    # same day (INC-1's main item nets 0 on VR: RB1's finding goes, INC-2's on RB2 stays, once)
    # F13 re-sent on another visit (VU -> VT): its R11 finding moves there, none stays on VU
    load_extract(cur, "fee_detail", H3, dt.date(2025, 6, 1), [
        fee("F12", "VS", ts(3, 3, 8), "001199000010000", "1", "10.00"),
        fee("F13", "VT", ts(3, 3, 9), SEX_ITEM, "1", "10.00"),
        fee("RA1R", "VR", ts(3, 3, 14), INC_A, "-1", "100.00"),
    ])
    # EXTRA: SY corrected to an inpatient stay, nothing of its visit's lines re-sent: Y1's R14
    # finding goes (the findings mart re-copies the R14/R19 findings of a re-settled visit)
    load_extract(cur, "claim", H3, dt.date(2025, 6, 2), [
        claim("SY", "VY", ts(5, 2, 18), "300.00", "150.00", category="21", patient="PK_Y",
              diagnosis="K35.800", admission=dt.date(2025, 5, 1), discharge=dt.date(2025, 5, 2))])


def night_d(cur):
    # the bureau drops RDM-1
    load_reference(cur, "audit_rules", RULE_COLS, [r for r in BUREAU if r[0] != "RDM-1"])


# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(warehouse, tmp_path_factory):
    import os

    import psycopg2


    url = warehouse
    saved_target = os.environ.get("DBT_TARGET_PATH")
    os.environ["DBT_TARGET_PATH"] = str(tmp_path_factory.mktemp("dbt_target"))
    conn = psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    reset_warehouse()
    snapshots = {}
    night_a(cur)
    transform.build(A, marts_schema="marts_build", url=url)
    snapshots["A"] = _findings(conn), _deductions(conn)
    night_b(cur)
    transform.build(B, marts_schema="marts_build", url=url)
    snapshots["B"] = _findings(conn), _deductions(conn)
    night_c(cur)
    # a build stopped after the findings mart, before fct_audit_summary_monthly (which follows the
    # findings mart by difference): the next build must not subtract the findings written by this
    # one and deleted by the next, which the summary never counted
    transform.run_dbt(["run", "--select", "+fct_audit_findings"], as_of=B, marts_schema="marts_build", url=url)
    snapshots["C_stopped"] = _findings(conn), None
    night_c_late(cur)
    transform.build(B, marts_schema="marts_build", url=url)
    snapshots["C"] = _findings(conn), _deductions(conn)
    # after night C: the incrementally built tables against a full rebuild
    _snapshot(cur, "audit_incremental_c")
    transform.build(B, marts_schema="marts_check", url=url, full_refresh=True)
    _snapshot(cur, "audit_full_c", marts="marts_check")
    night_d(cur)
    transform.build(B, marts_schema="marts_build", url=url)
    _snapshot(cur, "audit_incremental_d")
    transform.build(B, marts_schema="marts_check", url=url, full_refresh=True)
    _snapshot(cur, "audit_full_d", marts="marts_check")
    # night E: nothing new; the library, without a readmission rule since D, unchanged since the
    # last build: R22 has nothing to find and nothing stored
    transform.build(B, marts_schema="marts_build", url=url)
    compiled = Path(os.environ["DBT_TARGET_PATH"]) / "compiled" / "yibao" / "models" / "intermediate"
    snapshots["E_r22"] = (compiled / "int_audit_readmission.sql").read_text(encoding="utf-8")
    # night F: nothing new again; the findings mart, which re-copied everything in night E (the
    # finding models were rebuilt by the full refresh after D), follows them incrementally again
    snapshots["F_log"], _ = dbt_log_of(lambda: transform.build(B, marts_schema="marts_build", url=url))
    yield conn, snapshots
    for schema in ("audit_incremental_c", "audit_full_c", "audit_incremental_d", "audit_full_d"):
        cur.execute(f"drop schema if exists {schema} cascade")
    conn.close()
    if saved_target is None:
        os.environ.pop("DBT_TARGET_PATH", None)
    else:
        os.environ["DBT_TARGET_PATH"] = saved_target


INTERMEDIATE = [
    "int_audit_line_rules",
    "int_audit_claim_rules",
    "int_audit_daily_quantity",
    "int_audit_min_interval",
    "int_audit_course_days",
    "int_audit_included_in",
    "int_audit_repeat_exam",
    "int_audit_readmission",
    "int_exam_results",
    "int_audit_deductible_lines",
    "int_claims_with_deductions",
]
MARTS = [
    "fct_audit_findings",
    "fct_exam_positive_rate_monthly",
    "fct_audit_summary_monthly",
    "fct_settlement_deduction",
    "fct_settlement_monthly",
    "fct_budget_consumption",
]


def _snapshot(cur, schema, marts="marts_build"):
    """Copies of the audit models and marts as built now (the intermediate schema is shared by
    the incremental and the full builds, so it is copied before the next build)."""
    cur.execute(f"drop schema if exists {schema} cascade; create schema {schema}")
    for table in INTERMEDIATE:
        cur.execute(f"create table {schema}.{table} as select * from intermediate.{table}")
    for table in MARTS:
        cur.execute(f"create table {schema}.{table} as select * from {marts}.{table}")


def _rows(conn, sql, *params):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _findings(conn, schema="marts_build"):
    return {
        (r[0], r[1]): r[2:]
        for r in _rows(
            conn,
            f"""select rule_id, subject_id, rule_type, severity, hospital_code, subject_type,
                       charge_date, flagged_quantity, flagged_amount, is_cross_hospital
                from {schema}.fct_audit_findings""",
        )
    }


def _deductions(conn, schema="marts_build"):
    return {
        r[0]: r[1:]
        for r in _rows(
            conn,
            f"""select settlement_id, unreasonable_excess_amount, audit_violation_amount,
                       deductible_base_amount, deduction_amount
                from {schema}.fct_settlement_deduction""",
        )
    }


def _worked(findings):
    return {k: v for k, v in findings.items() if k[1] not in EXTRA | WINDOW_EXTRA | STAY_EXTRA | CLAIM_EXTRA}


def test_night_a_no_claim_yet_no_r14(built):
    findings, deductions = built[1]["A"]
    findings = _worked(findings)
    assert set(findings) == {("SEX-1", "F1"), ("INP-1", "F2"), ("FRQ-1", "F4")}
    # F1 300.00 + F2 91.00 + F4 40.00 = 431.00 → round(431.00 x 1,200 / 2,000, 2)
    assert deductions == {"S9": (D("0.00"), D("431.00"), D("431.00"), D("258.60"))}


def test_night_b_worked_example_to_the_cent(built):
    findings, deductions = built[1]["B"]
    findings = _worked(findings)
    Dt = dt.date
    assert findings == {
        ("SEX-1", "F1"): ("sex", "violation", H1, "fee_line", Dt(2025, 3, 3), D("1.0000"), D("300.00"), False),
        ("INP-1", "F2"): ("inpatient_only", "violation", H1, "fee_line", Dt(2025, 3, 3), D("2.0000"), D("91.00"), False),
        ("FRQ-1", "F4"): ("daily_quantity", "violation", H1, "fee_line", Dt(2025, 3, 3), D("2.0000"), D("40.00"), False),
        ("INC-1", "F6"): ("included_in", "violation", H1, "fee_line", Dt(2025, 3, 3), D("1.0000"), D("12.00"), False),
        ("INP-1", "F10"): ("inpatient_only", "violation", H1, "fee_line", Dt(2025, 3, 3), D("1.0000"), D("45.50"), False),
        ("INT-1", "I10"): ("min_interval_days", "violation", H17, "fee_line", Dt(2025, 3, 10), D("1.0000"), D("50.00"), False),
        ("INT-1", "I20"): ("min_interval_days", "violation", H17, "fee_line", Dt(2025, 3, 20), D("1.0000"), D("50.00"), False),
        ("REP-1", "CT05"): ("repeat_exam", "suspicious", H17, "fee_line", Dt(2025, 4, 5), D("1.0000"), D("180.00"), True),
        ("RDM-1", "S21"): ("readmission", "suspicious", H3, "settlement", Dt(2025, 5, 20), D("1.0000"), D("6300.00"), False),
    }
    # base 443.00 → deduction on S9 = round(443.00 x 1,200 / 2,000, 2) = 265.80; S10: 45.50 x 0.5;
    # SI10: I10's 50.00 x 60 / 100; the other INT-1 lines' visits have no settlement; R20 and R22
    # are suspicious: nothing deducted
    assert deductions == {
        "S9": (D("0.00"), D("443.00"), D("443.00"), D("265.80")),
        "S10": (D("0.00"), D("45.50"), D("45.50"), D("22.75")),
        "SI10": (D("0.00"), D("50.00"), D("50.00"), D("30.00")),
    }


def test_positive_rate_worked_example(built):
    conn = built[0]
    got = _rows(
        conn,
        """select hospital_code, month_start, exam_class, examined_count, positive_count,
                  positive_rate, threshold_rate, is_alert
           from marts_build.fct_exam_positive_rate_monthly order by hospital_code""",
    )
    assert got == [
        (H1, dt.date(2025, 4, 1), "CT", 10, 7, D("0.7000"), D("0.7000"), True),
        (H17, dt.date(2025, 4, 1), "CT", 2, 0, D("0.0000"), D("0.7000"), True),
    ]


def test_night_c_corrections_rederive_their_groups(built):
    findings, deductions = built[1]["C"]
    before = built[1]["B"][0]
    Dt = dt.date
    assert findings[("SEX-1", "F1R")][5:7] == (D("-1.0000"), D("-300.00"))
    assert ("INC-1", "F6") not in findings  # F6 matches no rule any more
    # the man's INT-1 days without I01: 03-10 payable, 03-16 and 03-20 not
    int1 = {k[1]: v[2:5] for k, v in findings.items() if k[0] == "INT-1" and k[1].startswith("I")}
    assert int1 == {
        "I16": (H1, "fee_line", Dt(2025, 3, 16)),
        "I20": (H17, "fee_line", Dt(2025, 3, 20)),
    }
    assert ("RDM-1", "S21") in findings
    # the stay corrected to another patient takes its former patient's readmission with it
    assert before[("RDM-1", "X2")][:7] == (
        "readmission", "suspicious", H3, "settlement", Dt(2025, 5, 12), D("1.0000"), D("2800.00"))
    assert not {k for k in findings if k[1] in STAY_EXTRA}
    # a window group touched at two dates is re-walked from the earlier one: the findings dated
    # between them change although their visits are not touched (CT05 at the same hospital as the
    # moved CT20 now; W2 payable)
    assert before[("REP-1", "CT05")][-1] is True
    rep1 = {k[1]: (v[4], v[6], v[7]) for k, v in findings.items() if k[0] == "REP-1"}
    assert rep1 == {"CT20": (Dt(2025, 4, 2), D("180.00"), True), "CT05": (Dt(2025, 4, 5), D("180.00"), False)}
    assert {k[1] for k in before if k[0] == "INT-1" and k[1] in WINDOW_EXTRA} == {"W2", "L2"}
    assert {k[1] for k in findings if k[0] == "INT-1" and k[1] in WINDOW_EXTRA} == {"W1", "L2", "L3"}
    # the late patient's groups: the findings before the night's first date stay as they were
    assert {k[1] for k in before if k[1] in WINDOW_EXTRA - {"W1", "W2", "W3"}} == {"L2", "D2", "E2"}
    assert {k[1] for k in findings if k[0] == "REP-2"} == {"D2", "D3", "E2", "E3"}
    for kept in [("INT-1", "L2"), ("REP-2", "D2"), ("REP-2", "E2")]:
        assert findings[kept] == before[kept]
    assert findings[("REP-2", "D3")] == (
        "repeat_exam", "suspicious", H17, "fee_line", Dt(2025, 4, 10), D("1.0000"), D("90.00"), True)
    assert _rows(
        built[0],
        """select visit_id from audit_incremental_c.int_audit_deductible_lines
           where fee_line_id in ('W1', 'W2', 'W3')""",
    ) == [("VW1",)]
    # EXTRA: the corrected R11 line and the netted R18 group lose their findings; the visit's
    # other R18 group keeps its one finding
    assert {k for k in before if k[1] in EXTRA} == {
        ("SEX-1", "F12"), ("SEX-1", "F13"), ("INC-1", "RB1"), ("INC-2", "RB2")}
    assert {k for k in findings if k[1] in EXTRA} == {("SEX-1", "F13"), ("INC-2", "RB2")}
    assert findings[("INC-2", "RB2")] == before[("INC-2", "RB2")]
    # the line moved to VT: its finding was re-copied with the new visit and left none on VU
    # (the mart re-copies R11-R13 findings by visit, the old visit from the line's prior keys)
    assert _rows(
        built[0], "select visit_id from audit_incremental_c.fct_audit_findings where subject_id = 'F13'"
    ) == [("VT",)]
    # S9's base: 300.00 - 300.00 + 91.00 + 40.00 = 131.00 → round(131.00 x 0.6, 2) = 78.60
    assert deductions["S9"] == (D("0.00"), D("131.00"), D("131.00"), D("78.60"))
    assert deductions["S10"] == (D("0.00"), D("45.50"), D("45.50"), D("22.75"))
    # I10 payable now: its visit's only deductible row is gone, and the deduction with it (the
    # deduction list holds deducted settlements only; int_audit_deductible_lines logs the visits
    # of the rows it deletes for int_claims_with_deductions)
    assert "SI10" not in deductions
    # EXTRA: the claim corrected to an inpatient stay takes Y1's R14 finding and SY's deduction
    # with it, although no line of its visit changed
    stopped = built[1]["C_stopped"][0]
    assert stopped[("INP-1", "Y1")][:2] == ("inpatient_only", "violation")
    assert not {k for k in findings if k[1] in CLAIM_EXTRA}
    assert "SY" not in deductions


def test_night_d_rule_removed(built):
    conn = built[0]
    findings = _findings(conn)
    assert ("RDM-1", "S21") not in findings  # the bureau's new library has no RDM-1
    assert set(findings) == set(built[1]["C"][0]) - {("RDM-1", "S21")}
    (march,) = _rows(
        conn,
        """select deduction_amount from marts_build.fct_settlement_monthly
           where hospital_code = %s and insurance_type = '310' and settlement_month = '2025-03-01'""",
        H1,
    )
    assert march == (D("101.35"),)  # S9 78.60 + S10 22.75


def test_r22_idle_without_readmission_rules(built):
    """A library without a readmission rule (the national one; here the bureau's after night D),
    unchanged since R22's last build: R22 reads no stay (on the 30 M-claim year it read its touched
    patients' stays every night, 53k pages, for nothing: docs/scale-out.md §6) and holds nothing.
    Night D itself, the library changed, re-derived everything (test_night_d_rule_removed)."""
    conn, snapshots = built
    sql = snapshots["E_r22"]
    assert "touched_patients" not in sql and "and false" in sql, sql
    assert _rows(conn, "select count(*) from intermediate.int_audit_readmission") == [(0,)]


def test_claims_key_sets_idle_without_their_findings(built):
    """Night F: no readmission rule and no readmission finding left, so the findings mart does not
    gather the hospital x patient and settlement key sets from the night's settlements (~0.5 s of
    every claims night on the 30 M-claim year, docs/scale-out.md §6); the R14 findings it holds
    keep the re-settled visits' set, and R14's matches keep int_audit_claim_rules' own. Exactness
    where the sets are gathered: the night C and D comparisons with a full rebuild (SY re-settled,
    X1 re-sent for another patient)."""
    conn, snapshots = built
    log = snapshots["F_log"]
    for name in ("touched_stays", "touched_settlements"):
        assert f"fct_audit_findings: key set {name} not gathered" in log, log[-3000:]
    assert "key set touched_claim_visits not gathered" not in log
    assert "int_audit_claim_rules: the re-settled visits not gathered" not in log
    assert _rows(
        conn, "select count(*) from marts_build.fct_audit_findings where rule_type = 'inpatient_only'"
    )[0][0] > 0


def test_audit_summary_monthly(built):
    conn = built[0]
    got = _rows(
        conn,
        """select hospital_code, month_start, rule_type, severity, finding_count, flagged_amount
           from marts_build.fct_audit_summary_monthly order by 1, 2, 3""",
    )
    assert got == [
        (H1, dt.date(2025, 3, 1), "daily_quantity", "violation", 1, D("40.00")),
        (H1, dt.date(2025, 3, 1), "inpatient_only", "violation", 2, D("136.50")),
        (H1, dt.date(2025, 3, 1), "min_interval_days", "violation", 1, D("50.00")),
        (H1, dt.date(2025, 3, 1), "sex", "violation", 2, D("0.00")),
        (H17, dt.date(2025, 3, 1), "min_interval_days", "violation", 1, D("50.00")),
        (H17, dt.date(2025, 4, 1), "repeat_exam", "suspicious", 3, D("450.00")),  # CT20, CT05; EXTRA: D3
        (H3, dt.date(2025, 3, 1), "included_in", "violation", 1, D("8.00")),  # EXTRA: INC-2 on RB2
        (H3, dt.date(2025, 3, 1), "min_interval_days", "violation", 3, D("150.00")),  # EXTRA: W1, L2, L3
        (H3, dt.date(2025, 3, 1), "sex", "violation", 1, D("10.00")),  # EXTRA: F13 (on VT)
        (H3, dt.date(2025, 4, 1), "repeat_exam", "suspicious", 3, D("220.00")),  # EXTRA: D2, E2, E3
    ]


@pytest.mark.parametrize("night", ["c", "d"])
@pytest.mark.parametrize("table", INTERMEDIATE + MARTS)
def test_incremental_nights_equal_full_rebuild(built, night, table):
    conn = built[0]
    incremental, full = f"audit_incremental_{night}", f"audit_full_{night}"
    columns = [
        c
        for (c,) in _rows(
            conn,
            """select column_name from information_schema.columns
               where table_schema = %s and table_name = %s and column_name not like '\\_%%'
               order by ordinal_position""",
            full,
            table,
        )
    ]
    assert columns, table
    cols = ", ".join(columns)
    diff = _rows(
        conn,
        f"""(select {cols} from {incremental}.{table} except all select {cols} from {full}.{table})
            union all
            (select {cols} from {full}.{table} except all select {cols} from {incremental}.{table})""",
    )
    assert diff == [], f"{table}: incremental nights differ from a full rebuild after night {night}: {diff[:5]}"
    if table not in ("int_audit_course_days", "int_audit_included_in", "int_audit_readmission"):
        (n,) = _rows(conn, f"select count(*) from {full}.{table}")[0]
        assert n > 0, table


def test_window_rule_indexes_are_partial(built):
    """The patient x rule indexes that only the window rules (R15, R16, R20) read are partial to
    their rule types (macros/indexes.sql), which the index's comment records: in marts_build
    after incremental nights, in marts_check and intermediate after the full refresh that ended
    the fixture. The matches' index is keyed by charge date too, which bounds each probe to the
    group's days from its date on, and includes what R16 and R20 read of a group's matches."""
    conn = built[0]
    window_types = "WHERE (rule_type = ANY (ARRAY['daily_quantity'::text, 'min_interval_days'::text, 'repeat_exam'::text]))"
    recorded = "yibao partial_index: rule_type in ('daily_quantity', 'min_interval_days', 'repeat_exam')"
    for table, columns, included in (
        ("intermediate.int_audit_rule_matches", "(patient_key, rule_id, charge_date)", WINDOW_INCLUDED),
        ("marts_build.fct_audit_findings", "(patient_key, rule_id)", ""),
        ("marts_check.fct_audit_findings", "(patient_key, rule_id)", ""),
    ):
        defs = _rows(
            conn,
            "select pg_get_indexdef(indexrelid), obj_description(indexrelid, 'pg_class') from pg_index"
            " where indrelid = %s::regclass and pg_get_indexdef(indexrelid) like %s",
            table, "%(patient_key, rule_id%",
        )
        index_include = f" INCLUDE {included}" if included else ""
        comment_include = f" include {included}" if included else ""
        assert len(defs) == 1 and f"USING btree {columns}{index_include} WHERE" in defs[0][0], (table, defs)
        assert defs[0][0].endswith(window_types) and defs[0][1] == recorded + comment_include, (table, defs)


def _plan_nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def test_window_visits_read_the_deducting_window_rules_only(built, warehouse):
    """The deductible base's window visits (macro audit_touched_visits: the visits with a violation
    match in the window groups the night touches) check each group's rule against the rules that
    deduct, restricted to the window rule types: the groups are window rules' by construction, so
    that changes no row, but the rule library's view is estimated at one row, and a plan that
    probes the matches once per rule then probes once per deducting rule of the whole library
    (14,881 national ones: 8.0-8.4 s on a first night after an empty build, docs/scale-out.md
    §7.19) instead of once per deducting window rule (81). Whatever the plan, the rule side
    hands on only those."""
    conn = built[0]
    sql = render_sql(warehouse, "{{ audit_touched_visits(none, window_groups='pg_temp.window_groups_check', direct=false) }}", B)
    window_types = "('daily_quantity', 'min_interval_days', 'repeat_exam')"
    (deducting, deducting_window), = _rows(
        conn,
        "select count(*), count(*) filter (where rule_type in " + window_types + ")"
        " from staging.stg_audit_rules where severity = 'violation'",
    )
    assert 0 < deducting_window < deducting, (deducting, deducting_window)
    with conn.cursor() as cur:
        cur.execute("begin")
        try:
            cur.execute("create temporary table window_groups_check as"
                        " select patient_key, rule_id, '-infinity'::date as from_date"
                        " from intermediate.int_audit_rule_matches"
                        " where rule_type in " + window_types + " group by 1, 2")
            cur.execute("analyze pg_temp.window_groups_check")
            cur.execute("explain (analyze, format json) " + sql)
            plan = cur.fetchone()[0][0]["Plan"]
        finally:
            cur.execute("rollback")
    rule_side = [n for n in _plan_nodes(plan)
                 if "severity = 'violation'" in n.get("Filter", "") and n.get("Relation Name") != "int_audit_rule_matches"]
    assert rule_side, plan
    assert all(n["Actual Rows"] <= deducting_window for n in rule_side), [(n["Node Type"], n["Actual Rows"]) for n in rule_side]


R21_INCLUDED = "(exam_class, fee_line_id, quantity, exam_result, threshold)"
WINDOW_PREDICATE = "(rule_type = ANY (ARRAY['daily_quantity'::text, 'min_interval_days'::text, 'repeat_exam'::text]))"


@pytest.mark.parametrize(("table", "columns", "stored", "recorded"), [
    # R21 (int_exam_results) reads the positive_rate matches by hospital x month: ~3 % of the matches,
    # with the columns it reads included (an index-only scan)
    ("intermediate.int_audit_rule_matches", "hospital_code, charge_date",
     "(rule_type = 'positive_rate'::text)", "rule_type = 'positive_rate' include " + R21_INCLUDED),
    # R17 (int_audit_course_days) reads each touched visit's course_days matches: ~7 % of the matches,
    # with what it numbers a course with included (an index-only scan of a history visit)
    ("intermediate.int_audit_rule_matches", "hospital_code, visit_id, rule_id, charge_date",
     "(rule_type = 'course_days'::text)", "rule_type in ('course_days') include (quantity, days)"),
    # the findings mart's R22 deletes (by hospital x patient, by settlement), in every marts schema
    ("marts_build.fct_audit_findings", "hospital_code, patient_key",
     "(rule_type = 'readmission'::text)", "rule_type = 'readmission'"),
    ("marts_check.fct_audit_findings", "hospital_code, patient_key",
     "(rule_type = 'readmission'::text)", "rule_type = 'readmission'"),
    # the findings mart's R14/R19 reads of the visits re-settled without a touched line
    ("marts_build.fct_audit_findings", "hospital_code, visit_id, subject_id",
     "(rule_type = ANY (ARRAY['inpatient_only'::text, 'indication'::text]))",
     "rule_type in ('inpatient_only', 'indication')"),
    # the findings mart's stored read of the touched visits (every fee-line finding but R11-R13,
    # which it reads by line): R11-R13 are ~75 % of the findings
    ("marts_build.fct_audit_findings", "hospital_code, visit_id",
     "((subject_type = 'fee_line'::text) AND (rule_type <> ALL (ARRAY['sex'::text, 'age'::text, 'hospital_level'::text])))",
     "subject_type = 'fee_line' and rule_type not in ('sex', 'age', 'hospital_level')"),
    # the deductible base's delete of the window rules' rows of the window groups' visits
    ("intermediate.int_audit_deductible_lines", "hospital_code, visit_id, rule_type",
     WINDOW_PREDICATE, "rule_type in ('daily_quantity', 'min_interval_days', 'repeat_exam')"),
])
def test_partial_indexes(built, table, columns, stored, recorded):
    """Indexes read for a few rule types only are partial to them (macros/indexes.sql): the
    table's one index on those columns, its predicate recorded in its comment."""
    conn = built[0]
    found = _rows(
        conn,
        "select pg_get_expr(indpred, indrelid), obj_description(indexrelid, 'pg_class') from pg_index"
        " where indrelid = %s::regclass and pg_get_indexdef(indexrelid) like %s",
        table, f"%USING btree ({columns})%",
    )
    assert found == [(stored, f"yibao partial_index: {recorded}")], (table, found)


R21_MONTH = """
    select hospital_code, charge_date, exam_class, fee_line_id, quantity, exam_result, threshold
    from intermediate.int_audit_rule_matches
    where rule_type = 'positive_rate' and hospital_code = %s
      and charge_date >= date '2025-03-01' and charge_date < date '2025-04-01'
"""


def _index_plan(conn, sql, params):
    """The top plan node of `sql` with sequential and bitmap scans off: the test city is small
    enough for a sequential scan, and what the callers assert is the shape of an index."""
    with conn.cursor() as cur:
        cur.execute("begin")
        try:
            cur.execute("set local enable_seqscan = off")
            cur.execute("set local enable_bitmapscan = off")
            cur.execute("explain (format json) " + sql, params)
            return cur.fetchone()[0][0]["Plan"]
        finally:
            cur.execute("rollback")


def test_r21_reads_a_hospital_month_from_the_index_alone(built):
    """R21 re-counts each (hospital, month) the night touches from its positive_rate matches. Their
    index is keyed (hospital_code, charge_date), so the read is bounded by the hospital and the
    month, and includes every other column R21 reads, so it never visits the matches' heap pages
    (one page a row, read cold on a 30 M-line history: docs/scale-out.md §7.15). Keyed (rule_type,
    hospital_code, charge_date) as before, the planner dropped rule_type (implied by the partial
    predicate) and read the whole index once per hospital-month."""
    plan = _index_plan(built[0], R21_MONTH, (H1,))
    assert plan["Node Type"] == "Index Only Scan", plan
    assert plan["Index Cond"].startswith("((hospital_code = "), plan["Index Cond"]
    assert "charge_date >= " in plan["Index Cond"], plan["Index Cond"]


R17_VISIT = """
    select hospital_code, visit_id, rule_id, charge_date, quantity, days
    from intermediate.int_audit_rule_matches
    where rule_type in ('course_days') and hospital_code = %s and visit_id = %s
"""


def test_r17_numbers_a_visit_course_from_the_index_alone(built, warehouse):
    """R17 numbers each touched visit's course from its course_days matches: their partial index
    includes every column that takes (docs/scale-out.md §7.23), so a history visit's probe reads no
    heap page. A warehouse built before has the (hospital_code, visit_id, rule_id) index: the
    model's next build drops it (partial_index's `replaces`)."""
    conn = built[0]
    plan = _index_plan(conn, R17_VISIT, (H1, "V1"))
    assert plan["Node Type"] == "Index Only Scan", plan
    _assert_matches_index_replaced(
        conn, warehouse, "(hospital_code, visit_id, rule_id) where rule_type in ('course_days')",
        "%USING btree (hospital_code, visit_id, rule_id) WHERE%",
        "%USING btree (hospital_code, visit_id, rule_id, charge_date) INCLUDE (quantity, days) WHERE%")


# the findings mart's stored read of a touched visit (macro audit_findings_mart_keys, by_visit), as
# the pre-hook writes it
MART_VISIT_READ = """
    select ctid, * from marts_build.fct_audit_findings as finding
    where subject_type = 'fee_line' and rule_type not in ('sex', 'age', 'hospital_level')
      and hospital_code = %s and visit_id = %s
"""


def test_mart_reads_a_touched_visit_without_its_line_rules(built):
    """The findings mart reads a touched visit's stored findings but R11-R13 (those by line)
    through its (hospital_code, visit_id) index partial to them: with a full index the probe
    fetched every R11-R13 finding of the visit (~75 % of the findings) to filter it out
    (docs/scale-out.md §7.27)."""
    conn = built[0]
    [(partial,)] = _rows(
        conn,
        "select indexrelid::regclass::text from pg_index where indrelid = 'marts_build.fct_audit_findings'::regclass"
        " and pg_get_indexdef(indexrelid) like '%%USING btree (hospital_code, visit_id)%%'",
    )
    plan = _index_plan(conn, MART_VISIT_READ, (H1, "V1"))
    assert plan["Node Type"] == "Index Scan", plan
    assert plan["Index Name"] == partial.split(".")[-1].strip('"'), (plan, partial)
    assert "Filter" not in plan, plan  # the rule types are the index's predicate: no row read to be dropped


# the bound of that read (macro stored_key_bounds, with the predicate of the partial index the
# read goes through): the mart's greatest stored visit of a hospital among that index's findings
MART_VISIT_BOUNDS = {
    "by visit": ("select max(bound.visit_id) from marts_build.fct_audit_findings as bound where true"
                 " and bound.hospital_code = %s and subject_type = 'fee_line' and rule_type not in ('sex', 'age', 'hospital_level')",
                 "%USING btree (hospital_code, visit_id) WHERE%"),
    "re-settled visits": ("select max(bound.visit_id) from marts_build.fct_audit_findings as bound where true"
                          " and bound.hospital_code = %s and rule_type in ('inpatient_only', 'indication')",
                          "%USING btree (hospital_code, visit_id, subject_id) WHERE%"),
}


def _plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


@pytest.mark.parametrize("read", sorted(MART_VISIT_BOUNDS))
def test_mart_bounds_its_visit_reads_from_their_partial_index(built, read):
    """Before reading the stored findings of the touched visits, the findings mart drops the visits
    that sort after its greatest stored visit of their hospital (a new visit, most of a night: no
    probe). That greatest visit is read from the read's own partial index for the hospital (on a
    big city its last entry, one backward step): the bound repeats the index's predicate, so that
    the planner can use the index, where without it it would read every finding of the hospital."""
    conn = built[0]
    sql, index_like = MART_VISIT_BOUNDS[read]
    [(index,)] = _rows(
        conn,
        "select indexrelid::regclass::text from pg_index where indrelid = 'marts_build.fct_audit_findings'::regclass"
        " and pg_get_indexdef(indexrelid) like %s",
        index_like,
    )
    scans = [node for node in _plan_nodes(_index_plan(conn, sql, (H1,))) if "Index Name" in node]
    # the scan's direction is the planner's choice by size (backward for the last entry; forward,
    # aggregated, over the few R14/R19 findings of this small city); the index is what is asserted
    assert [n["Index Name"] for n in scans] == [index.split(".")[-1].strip('"')], scans
    assert "(hospital_code = " in scans[0]["Index Cond"], scans


WINDOW_INCLUDED = "(rule_type, severity, hospital_code, visit_id, quantity, days)"
WINDOW_GROUP_READS = {
    # R16 and R20: a touched group's matches from the date the night touches it at, less the days
    "r16": ("select patient_key, rule_id, charge_date, quantity, days from intermediate.int_audit_rule_matches"
            " where patient_key = %s and rule_id = %s and rule_type = 'min_interval_days' and charge_date >= %s"),
    "r20": ("select patient_key, rule_id, charge_date, hospital_code, quantity, days from intermediate.int_audit_rule_matches"
            " where patient_key = %s and rule_id = %s and rule_type = 'repeat_exam' and charge_date >= %s"),
    # the deductible base: the visits of a window group's violation matches (macro audit_touched_visits)
    "window visits": ("select hospital_code, visit_id from intermediate.int_audit_rule_matches"
                      " where patient_key = %s and rule_id = %s"
                      " and rule_type in ('daily_quantity', 'min_interval_days', 'repeat_exam')"
                      " and severity = 'violation' and visit_id is not null and charge_date >= %s"),
}


@pytest.mark.parametrize("read", sorted(WINDOW_GROUP_READS))
def test_window_groups_are_read_from_the_index_alone(built, read):
    """R16's charge days, R20's (date, hospital) pairs and the window groups' visits of the
    deductible base are read from a touched group's window matches: their partial (patient_key,
    rule_id, charge_date) index includes every column these take (docs/scale-out.md §7.24), so a
    history group's probe reads no heap page; R16 and R20 then read whole only the lines of the
    days they flag."""
    plan = _index_plan(built[0], WINDOW_GROUP_READS[read], ("P1", "R1", dt.date(2025, 1, 1)))
    assert plan["Node Type"] == "Index Only Scan", plan
    assert "charge_date >= " in plan["Index Cond"], plan["Index Cond"]


PRIOR_KEYS_READ = """
    select changed.hospital_code, prior.key ->> 'visit_id'
    from intermediate.int_audit_rule_matches as changed
    cross join lateral jsonb_array_elements(changed._prior_keys) as prior (key)
    where changed._batch_at > %s
      and (changed._prior_keys <> '[]'::jsonb or changed.visit_id is null)
"""


def test_the_night_s_prior_keys_are_read_through_their_partial_index(built):
    """The readers of the night's prior keys (every finding model's touched groups or visits)
    read only the rows that name some, through the small (_batch_at, hospital_code, fee_line_id)
    index partial to them (macro audit_prior_keys_present), instead of expanding the empty jsonb
    of every one of the night's matches (docs/scale-out.md §7.25)."""
    conn = built[0]
    [(definition, comment)] = _rows(
        conn,
        "select pg_get_indexdef(indexrelid), obj_description(indexrelid, 'pg_class') from pg_index"
        " where indrelid = 'intermediate.int_audit_rule_matches'::regclass"
        " and pg_get_indexdef(indexrelid) like '%%USING btree (_batch_at, hospital_code, fee_line_id)%%'",
    )
    assert definition.endswith("WHERE ((_prior_keys <> '[]'::jsonb) OR (visit_id IS NULL))"), definition
    assert comment == "yibao partial_index: (_prior_keys <> '[]'::jsonb or visit_id is null)", comment
    index = definition.split("INDEX ")[1].split(" ON ")[0].strip('"')
    plan = json.dumps(_index_plan(conn, PRIOR_KEYS_READ, (dt.datetime(2025, 1, 1, tzinfo=dt.UTC),)))
    assert f'"Index Name": "{index}"' in plan, plan


def _assert_matches_index_replaced(conn, warehouse, old_index, old, new):
    """An index of int_audit_rule_matches an earlier version had (created here: `old_index`,
    columns and predicate) is dropped by the model's next build, which keeps only the new one
    (pg_get_indexdef patterns `old`, `new`)."""
    with conn.cursor() as cur:
        cur.execute("create index on intermediate.int_audit_rule_matches " + old_index)
    found = "select count(*) from pg_index where indrelid = 'intermediate.int_audit_rule_matches'::regclass" \
            " and pg_get_indexdef(indexrelid) like %s"
    assert _rows(conn, found, old) == [(1,)]
    transform.run_dbt(["run", "--select", "int_audit_rule_matches"], as_of=B, marts_schema="marts_build", url=warehouse)
    assert _rows(conn, found, old) == [(0,)]
    assert _rows(conn, found, new) == [(1,)]


def test_r21_index_of_an_earlier_version_is_replaced(built, warehouse):
    """A warehouse built before the index changed has the (rule_type, hospital_code, charge_date)
    one: the model's next build drops it (partial_index's `replaces`) and keeps only the new one."""
    _assert_matches_index_replaced(
        built[0], warehouse, "(rule_type, hospital_code, charge_date) where rule_type = 'positive_rate'",
        "%USING btree (rule_type, hospital_code, charge_date)%",
        "%USING btree (hospital_code, charge_date) INCLUDE " + R21_INCLUDED + " WHERE%")


@pytest.mark.parametrize("model", ["int_audit_line_rules", "int_audit_claim_rules"])
def test_followers_after_a_finding_model_alone_was_rebuilt(built, warehouse, model):
    """The findings mart takes R11-R13 and R14/R19 as the rows int_audit_line_rules and
    int_audit_claim_rules wrote since it was written, the deductible base R11-R13. After a
    --full-refresh of one of those models alone every row of it is newer than both: the next
    night, with nothing new, must re-derive everything where that model is followed (macro
    audit_followers_everything) instead of taking the rebuilt rows again beside the stored ones,
    and end as after night D (one row per rule x subject, and line x rule)."""
    conn = built[0]
    transform.run_dbt(["run", "--full-refresh", "--select", model], as_of=B,
                      marts_schema="marts_build", url=warehouse)
    transform.build(B, marts_schema="marts_build", url=warehouse)
    for table, key in (("marts_build.fct_audit_findings", "rule_id, hospital_code, subject_id"),
                       ("intermediate.int_audit_deductible_lines", "hospital_code, fee_line_id, rule_id")):
        duplicated = _rows(conn, f"select {key}, count(*) from {table} group by {key} having count(*) > 1")
        assert duplicated == [], table
    assert _findings(conn) == _findings(conn, schema="audit_incremental_d")
    assert len(_findings(conn)) > 0
    columns = "hospital_code, visit_id, fee_line_id, rule_id, rule_type, diagnosis_prefixes, flagged_amount"
    diff = _rows(
        conn,
        f"""(select {columns} from intermediate.int_audit_deductible_lines
             except all select {columns} from audit_incremental_d.int_audit_deductible_lines)
            union all
            (select {columns} from audit_incremental_d.int_audit_deductible_lines
             except all select {columns} from intermediate.int_audit_deductible_lines)""",
    )
    assert diff == []
