"""Data-quality gates (yibao.quality, expectations/): real PostgreSQL, real GX.

A small city (three hospitals in two counties) is written straight into a private database with
SQL: reference snapshots, a clean history of nights, then one night per test with the defects that
test is about. Each test asserts the exact set of failed checks, per hospital and count, so a check
that misfires is caught as surely as one that misses.

The SQL check-character functions (infra/sql/045_code_functions.sql) are cross-checked against
python-stdnum on thousands of generated valid and corrupted values.
"""

from __future__ import annotations

import collections
import datetime as dt
import random
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest
from psycopg2.extras import execute_values

from yibao.config import PROJECT_ROOT

pytestmark = pytest.mark.xdist_group("quality")  # one worker: the GX project's uncommitted/ is shared

HA, HB, HC = "H52020100001", "H52020100002", "H52020300001"
HOSPITALS = (HA, HB, HC)
STENT = "C0202020010100100001"
SCREW = "C0305010010100200002"
SCREW_LONG = SCREW + "0000301"
RETIRED = "C0202020020100300003"
UNKNOWN = "C0202020030100400004"  # well-formed, not in the catalog
DOCTOR = "D520201000001"
KEY = "k" * 64


def _uscc(body17: str) -> str:
    from stdnum.cn import uscc

    return body17 + uscc.calc_check_digit(body17)


def _gtin(payload13: str) -> str:
    from stdnum import ean

    return payload13 + ean.calc_check_digit(payload13)


SUPPLIER = _uscc("91520201MA6E2X7Q2")
UDI = _gtin("0690123456789")
BAD_SUPPLIER = SUPPLIER[:-1] + ("0" if SUPPLIER[-1] != "0" else "1")
BAD_UDI = UDI[:-1] + str((int(UDI[-1]) + 1) % 10)

HISTORY = [dt.date(2025, 3, 1) + dt.timedelta(days=i) for i in range(9)]  # 03-01 … 03-09
PER_NIGHT = {"purchase": 4, "usage": 6, "claim": 6}


# ------------------------------------------------------------------------------------ rows


def purchase(h: str, d: dt.date, i: int, **kw) -> dict:
    row = dict(
        purchase_line_id=f"P{d:%m%d}{i:03d}", hospital_code=h, order_date=d - dt.timedelta(days=3),
        delivery_date=d, consumable_code=SCREW_LONG if i == 1 else STENT, udi_di=UDI, product_name="支架",
        spec="3.0x18", manufacturer="某医疗器械有限公司", supplier_uscc=SUPPLIER, quantity=Decimal("2"),
        unit_price=Decimal("700.0000"), amount=Decimal("1400.00"), via_platform=True,
    )
    row.update(kw)
    return row


def usage(h: str, d: dt.date, i: int, **kw) -> dict:
    row = dict(
        usage_id=f"U{d:%m%d}{i:03d}", hospital_code=h, visit_id=f"V{d:%m%d}{i:03d}", patient_key=KEY,
        patient_sex="M", patient_birth_year=1960, dept_code="0301", doctor_code=DOCTOR, surgery_id=None,
        consumable_code=STENT, udi_di=UDI, batch_no="B1", quantity=Decimal("1"),
        charge_unit_price=Decimal("700.0000"), charge_amount=Decimal("700.00"),
        used_at=dt.datetime.combine(d, dt.time(10, 0)),
    )
    row.update(kw)
    return row


def claim(h: str, d: dt.date, i: int, **kw) -> dict:
    row = dict(
        settlement_id=f"S{d:%m%d}{i:03d}", hospital_code=h, visit_id=f"V{d:%m%d}{i:03d}", patient_key=KEY,
        patient_sex="M", patient_birth_year=1960, insurance_type="310", medical_category="21",
        admission_date=d - dt.timedelta(days=5), discharge_date=d,
        settled_at=dt.datetime.combine(d, dt.time(16, 0)), principal_diagnosis="I25.102", drg_code=None,
        total_amount=Decimal("1000.00"), fund_paid=Decimal("700.00"), other_fund_paid=Decimal("0.00"),
        account_paid=Decimal("100.00"), cash_paid=Decimal("200.00"), negotiated_drug_amount=Decimal("0.00"),
        reversal_of=None,
    )
    row.update(kw)
    return row


def fee_detail(h: str, d: dt.date, i: int, **kw) -> dict:
    row = dict(
        fee_line_id=f"F{d:%m%d}{i:03d}", hospital_code=h, visit_id=f"V{d:%m%d}{i:03d}", patient_key=KEY,
        patient_sex="M", patient_birth_year=1960, patient_age_days=(d - dt.date(1960, 5, 1)).days,
        item_type="11", item_code="XA01ABD075A002010100483", item_name="阿莫西林胶囊", dept_code="0301",
        doctor_code=DOCTOR, charged_at=dt.datetime.combine(d, dt.time(9, 0)), quantity=Decimal("2"),
        unit_price=Decimal("12.5000"), amount=Decimal("25.00"), exam_result=None,
    )
    row.update(kw)
    return row


FACTORY = {"purchase": purchase, "usage": usage, "claim": claim, "fee_detail": fee_detail}
FEE_PER_NIGHT = 5


def insert_rows(cur, table: str, rows: list[dict], fixed: dict) -> None:
    if not rows:
        return
    cols = list(fixed) + list(rows[0])
    execute_values(
        cur,
        f"insert into {table} ({', '.join(cols)}) values %s",
        [tuple(fixed.values()) + tuple(r[c] for c in rows[0]) for r in rows],
    )


def deliver(cur, kind: str, h: str, d: dt.date, rows: list[dict], quarantined: list[dict] = (), *,
            status: str = "loaded", reject_reason: str | None = None, **ledger) -> int:
    """One landing file: its ledger row, raw rows and quarantine rows. Returns the load id."""
    counts = dict(rows_read=len(rows) + len(quarantined), rows_loaded=len(rows), rows_quarantined=len(quarantined),
                  rows_held=0)
    counts.update(ledger)
    source = f"{d:%Y%m%d}/{h}/{kind}.csv"
    cur.execute(
        "insert into raw.load_ledger (file_kind, hospital_code, business_date, source_file, sha256, status,"
        " reject_reason, rows_read, rows_loaded, rows_quarantined, rows_held)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning load_id",
        (kind, h, d, source, uuid.uuid4().hex, status, reject_reason, counts["rows_read"], counts["rows_loaded"],
         counts["rows_quarantined"], counts["rows_held"]),
    )
    load_id = cur.fetchone()[0]
    for n, r in enumerate(rows, 1):
        insert_rows(cur, f"raw.{kind}", [r], {"load_id": load_id, "business_date": d, "source_file": source,
                                                "source_row": n})
    for n, q in enumerate(quarantined, len(rows) + 1):
        cur.execute(
            "insert into raw.quarantine (load_id, file_kind, hospital_code, business_date, source_file, source_row,"
            " reason_code) values (%s, %s, %s, %s, %s, %s, %s)",
            (load_id, kind, q.get("hospital_code", h), d, source, n, q["reason_code"]),
        )
    return load_id


def deliver_night(cur, d: dt.date, hospitals=HOSPITALS, kinds=("purchase", "usage", "claim"), change=None) -> list[int]:
    """Every hospital's clean files for night d; ``change(kind, hospital, rows)`` may alter the rows."""
    ids = []
    for h in hospitals:
        for kind in kinds:
            rows = [FACTORY[kind](h, d, i) for i in range(PER_NIGHT[kind])]
            if change:
                rows = change(kind, h, rows)
            if rows is not None:
                ids.append(deliver(cur, kind, h, d, rows))
    return ids


def reference(cur, name: str, rows: list[dict]) -> int:
    cur.execute(
        "insert into raw.load_ledger (file_kind, source_file, sha256, status, rows_read, rows_loaded)"
        " values (%s, %s, %s, 'loaded', %s, %s) returning load_id",
        (f"reference/{name}", f"reference/{name}.csv", uuid.uuid4().hex, len(rows), len(rows)),
    )
    load_id = cur.fetchone()[0]
    for n, r in enumerate(rows, 1):
        insert_rows(cur, f"raw.ref_{name}", [r], {"load_id": load_id, "source_row": n})
    return load_id


def budget(h, f, annual, weights=None):
    row = dict(year=2025, hospital_code=h, insurance_type=f, annual_budget=Decimal(annual))
    for m in range(1, 13):
        row[f"m{m:02d}_weight"] = None if weights is None else Decimal(weights[m - 1])
    return row


HB_390_WEIGHTS = ["0.1", "0.1"] + ["0.08"] * 10
REFERENCE = {
    "hospitals": [
        dict(hospital_code=HA, hospital_name="甲医院", level="三级", county_code="520201", ownership="public"),
        dict(hospital_code=HB, hospital_name="乙医院", level="二级", county_code="520201", ownership="public"),
        dict(hospital_code=HC, hospital_name="丙医院", level="一级", county_code="520203", ownership="private"),
    ],
    "consumable_catalog": [
        dict(consumable_code=code, generic_name=name, category_code=code[:7], is_high_value=True, status=status)
        for code, name, status in ((STENT, "冠脉支架", "active"), (SCREW, "骨科螺钉", "active"),
                                   (SCREW_LONG, "骨科螺钉", "active"), (RETIRED, "冠脉支架", "retired"))
    ],
    "vbp_batches": [
        dict(batch_id="VBP-STENT", batch_name="冠脉支架", category_prefix="C020202",
             cycle_start=dt.date(2025, 1, 1), cycle_end=dt.date(2026, 12, 31)),
    ],
    "vbp_agreed_volumes": [
        dict(batch_id="VBP-STENT", hospital_code=h, product_group="A", base_qty=Decimal("100"),
             agreed_ratio=Decimal("0.55")) for h in HOSPITALS
    ],
    "fund_budgets": [
        budget(HA, "310", "1200000.00"), budget(HB, "310", "600000.00"), budget(HC, "310", "300000.00"),
        budget(HB, "390", "250000.00", HB_390_WEIGHTS),
    ],
    "settlement_params": [dict(year=2025, surplus_retention_rate=Decimal("0.6"), overspend_share_rate=Decimal("0.3"))],
}


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def city(warehouse):
    """A private database holding the city: reference data and nine clean nights (one with an old
    defect that later nights must not report)."""
    from yibao import db, pg

    name = "yibao_quality_test"

    def admin(statement: str) -> None:
        conn = psycopg2.connect(pg.url(database="postgres"))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
        conn.close()

    admin(f"drop database if exists {name} with (force)")
    admin(f"create database {name}")
    url = pg.url(database=name)
    conn = psycopg2.connect(url)
    db.bootstrap(conn)
    with conn, conn.cursor() as cur:
        for ref, rows in REFERENCE.items():
            reference(cur, ref, rows)
        for d in HISTORY:
            def old_defect(kind, h, rows, d=d):
                if d == HISTORY[4] and kind == "purchase" and h == HA:
                    rows[0]["supplier_uscc"] = BAD_SUPPLIER
                return rows
            deliver_night(cur, d, change=old_defect)
    conn.close()
    yield url
    admin(f"drop database if exists {name} with (force)")


def _failed(report, severity: str) -> dict:
    return {(r.suite, r.check, r.hospital_code): r.failed for r in report.results
            if r.severity == severity and r.failed}


def _stored(url: str, run_id: str, stage: str) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "select suite, check_name, severity, hospital_code, evaluated, failed from audit.dq_results"
            " where run_id = %s and stage = %s order by 1, 2, 4",
            (run_id, stage),
        )
        return cur.fetchall()


# ------------------------------------------------------------------------------------ raw stage


def test_clean_night_passes_and_results_are_stored_idempotently(city):
    from yibao.quality import DATA_DOCS_INDEX, validate_night

    d = dt.date(2025, 3, 10)
    with psycopg2.connect(city) as conn, conn.cursor() as cur:
        ids = deliver_night(cur, d)
    report = validate_night(city, d, ids, "clean-night")

    assert report.errors == [] and report.warnings == [], report.summary_text()
    report.raise_if_errors()  # does not raise
    names = {(r.suite, r.check) for r in report.results}
    assert len(names) == report.checks > 90
    assert {s for s, _ in names} == {
        "raw_purchase_codes", "raw_usage_codes", "raw_claim_codes", "raw_purchase_quality", "raw_usage_quality",
        "raw_claim_quality", "raw_loads", "raw_quarantine_report", "raw_delivery", "raw_reference",
        "raw_fee_detail_codes", "raw_fee_detail_quality", "raw_audit_rules",
    }
    # a passing check reports what it looked at: all of the night's rows of its extract
    by_name = {(r.suite, r.check): r for r in report.results}
    assert by_name["raw_claim_codes", "principal_diagnosis_format"].evaluated == 3 * PER_NIGHT["claim"]
    assert by_name["raw_purchase_codes", "supplier_uscc_check_char"].evaluated == 3 * PER_NIGHT["purchase"]
    assert by_name["raw_delivery", "extracts_delivered"].evaluated == 9
    assert "clean-night" in report.summary_text() and "0 error" in report.summary_text()

    stored = _stored(city, "clean-night", "raw")
    assert len(stored) == len(report.results) and all(row[5] == 0 for row in stored)
    again = validate_night(city, d, ids, "clean-night")  # re-running replaces, never appends
    assert _stored(city, "clean-night", "raw") == stored and again.errors == []
    assert DATA_DOCS_INDEX.exists() and report.data_docs == DATA_DOCS_INDEX
    assert list((DATA_DOCS_INDEX.parent / "validations" / "raw_claim_codes").glob("raw-clean-night/*/*.html"))


def test_row_checks_that_did_not_run_fail_instead_of_passing(city, monkeypatch):
    """Row checks (meta.row_check) read what one scan per extract found; if that scan did not run
    for the run, every one of them must fail ("not computed"), never pass on an empty findings table."""
    from yibao import quality

    statements = quality.row_check_statements(quality.CHECKPOINTS["raw"])
    assert set(statements) == {"night_purchase", "night_usage", "night_claim", "night_fee_detail", "night_audit_rules"}
    folded = {(s["name"], e["meta"]["check"]) for s in quality._suites(quality.CHECKPOINTS["raw"])
              for e in s["expectations"] if "row_check" in e["meta"]}
    assert len(folded) == sum(n for _, n in statements.values()) > 30

    d = dt.date(2025, 5, 6)
    with psycopg2.connect(city) as conn, conn.cursor() as cur:
        ids = deliver_night(cur, d)
    monkeypatch.setattr(quality, "_row_checks", lambda conn, run_id, checkpoint: None)
    report = quality.validate_night(city, d, ids, "row-checks-skipped")
    not_computed = {(r.suite, r.check) for r in report.results if r.failed and "not computed" in (r.detail or "")}
    assert not_computed == folded, report.summary_text()
    assert ("raw_claim_codes", "hospital_code_format") in {(r.suite, r.check) for r in report.errors}


def test_defects_that_slipped_past_the_loader_fail_the_right_checks(city):
    from yibao.quality import QualityGateFailed, validate_night

    d = dt.date(2025, 3, 11)

    def defects(kind, h, rows):
        if kind == "purchase" and h == HA:
            rows[0]["supplier_uscc"] = BAD_SUPPLIER          # check character
            rows[1]["udi_di"] = BAD_UDI                       # GS1 check digit
            rows[2]["consumable_code"] = UNKNOWN              # not in the catalog
            rows[3]["consumable_code"] = RETIRED              # retired: warning only
            rows.append(purchase(h, d, 10, amount=Decimal("1500.00")))                    # amount identity
            rows.append(purchase(h, d, 11, order_date=d + dt.timedelta(days=1)))         # date order
        if kind == "purchase" and h == HB:
            rows.append(purchase(h, d, 12, quantity=Decimal(0), amount=Decimal("0.00")))  # zero quantity
        if kind == "usage" and h == HB:
            rows[0]["doctor_code"] = "D52020100001"           # 11 digits
            rows[1]["doctor_code"] = "D990000000001"          # region not in the city
            rows[2].update(hospital_code=HC, usage_id="U-OTHER")  # another hospital's row in HB's file
            rows[3]["visit_id"] = "V-NO-CLAIM"                # warning: no settlement yet
            rows[4]["charge_amount"] = Decimal("750.00")      # charge identity
            rows[5]["consumable_code"] = "C02020200101001"    # malformed consumable code
        if kind == "claim" and h == HC:
            rows[0]["principal_diagnosis"] = "I25.10"         # ICD-10 pattern
            rows[1]["insurance_type"] = "320"                 # code set
            rows[2]["admission_date"] = None                  # inpatient without admission date
            rows[3]["cash_paid"] = Decimal("300.00")          # total ≠ parts
            rows[4]["negotiated_drug_amount"] = Decimal("800.00")  # > fund_paid
            rows[5]["discharge_date"] = d - dt.timedelta(days=9)   # before admission
            rows.append(claim(h, d, 0))                       # duplicate key within the file
            rows.append(claim(h, d, 20, patient_key=None))    # no pseudonym
        return rows

    with psycopg2.connect(city) as conn, conn.cursor() as cur:
        ids = deliver_night(cur, d, change=defects)
        # HA re-sends one purchase line in a second file the same night: a warning, not an error
        ids.append(deliver(cur, "purchase", HA, d, [purchase(HA, d, 2, spec="3.0x20")]))
    try:
        report = validate_night(city, d, ids, "defect-night")
    finally:  # the marts tests read every raw claim: a claim of an unknown insurance type has no budget
        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            cur.execute("delete from raw.claim where insurance_type = '320'")

    assert _failed(report, "error") == {
        ("raw_purchase_codes", "supplier_uscc_check_char", HA): 1,
        ("raw_purchase_codes", "udi_di_check_digit", HA): 1,
        ("raw_purchase_codes", "consumable_code_in_catalog", HA): 1,
        ("raw_purchase_quality", "amount_identity", HA): 1,
        ("raw_purchase_quality", "delivery_not_before_order", HA): 1,
        ("raw_usage_codes", "doctor_code_format", HB): 1,
        ("raw_usage_codes", "doctor_code_region", HB): 1,
        ("raw_usage_codes", "hospital_code_matches_folder", HB): 1,
        ("raw_usage_codes", "consumable_code_format", HB): 1,
        ("raw_usage_quality", "charge_amount_identity", HB): 1,
        ("raw_purchase_quality", "quantity_nonzero", HB): 1,
        ("raw_claim_codes", "principal_diagnosis_format", HC): 1,
        ("raw_claim_codes", "insurance_type_code", HC): 1,
        ("raw_claim_codes", "patient_pseudonym_present", HC): 1,
        ("raw_claim_quality", "required_fields_present", HC): 2,  # admission date; patient_key
        ("raw_claim_quality", "claim_parts_identity", HC): 1,
        ("raw_claim_quality", "negotiated_within_fund", HC): 1,
        ("raw_claim_quality", "discharge_not_before_admission", HC): 1,
        ("raw_claim_quality", "settlement_id_unique_in_file", HC): 2,
    }, report.summary_text()
    assert _failed(report, "warning") == {
        ("raw_purchase_codes", "consumable_code_retired", HA): 1,
        ("raw_purchase_quality", "purchase_line_id_repeated_in_night", HA): 1,
        ("raw_usage_quality", "usage_visit_has_claim", HB): 1,
    }, report.summary_text()

    by_key = {(r.check, r.hospital_code): r for r in report.errors}
    assert by_key["required_fields_present", HC].detail.startswith("missing patient_key 1, admission_date 1")
    assert BAD_SUPPLIER in by_key["supplier_uscc_check_char", HA].detail
    assert by_key["supplier_uscc_check_char", HA].evaluated == 7  # HA's purchase rows of the night
    # the old defect of 03-05 is outside the night: not reported
    assert ("raw_purchase_codes", "supplier_uscc_check_char", HA) not in _failed(
        validate_night(city, dt.date(2025, 3, 10), [], "empty-night"), "error")

    with pytest.raises(QualityGateFailed) as exc:
        report.raise_if_errors()
    lines = str(exc.value).splitlines()
    assert lines[0].startswith("19 error-level")
    assert f"raw_purchase_codes.supplier_uscc_check_char [hospital {HA}]: 1 of 7 failed" in str(exc.value)
    assert sum(line.startswith("raw_") for line in lines) == 19
    stored = {(s, c, h): f for s, c, sev, h, e, f in _stored(city, "defect-night", "raw") if f}
    assert stored == {**_failed(report, "error"), **_failed(report, "warning")}


ROW_REASONS = (
    "bad_id_check_char", "bad_id_birth_date", "bad_uscc_check_char", "bad_udi_check_digit", "bad_consumable_format",
    "unknown_consumable_code", "bad_icd10", "unknown_insurance_type", "unknown_medical_category", "amount_mismatch",
    "claim_parts_mismatch", "negotiated_exceeds_fund", "bad_date", "date_order", "missing_required", "zero_quantity",
    "hospital_mismatch", "duplicate_key", "bad_item_type", "bad_item_code", "bad_exam_result", "charge_before_birth",
    "unknown_rule_type", "missing_rule_parameter", "bad_item_prefix", "effective_dates_reversed", "bad_severity",
)


def test_quarantine_report_counts_every_reason_per_hospital(city):
    from yibao.quality import validate_night

    d = dt.date(2025, 3, 25)  # no deliveries in the seven nights before: no volume comparison
    # reason i: HA gets i % 3 + 1 rows, HB i % 2 rows, HC none; spread over the extracts (HB's claim
    # file is rejected below, so HB's quarantined rows go to purchase and usage)
    plan = {(reason, h): n for i, reason in enumerate(ROW_REASONS)
            for h, n in ((HA, i % 3 + 1), (HB, i % 2)) if n}
    plan["a_new_reason", HB] = 2  # a reason no check names yet
    quarantined = {(h, kind): [] for h in HOSPITALS for kind in PER_NIGHT}
    for i, ((reason, h), n) in enumerate(sorted(plan.items())):
        kind = ("purchase", "usage", "claim")[i % 3] if h == HA else ("purchase", "usage")[i % 2]
        quarantined[h, kind] += [{"reason_code": reason}] * n

    with psycopg2.connect(city) as conn, conn.cursor() as cur:
        ids = []
        for h in HOSPITALS:
            for kind in PER_NIGHT:
                rows = [FACTORY[kind](h, d, i) for i in range(PER_NIGHT[kind])]
                if (h, kind) == (HC, "usage"):
                    ids.append(deliver(cur, kind, h, d, [], status="rejected", reject_reason="manifest_mismatch",
                                       rows_read=5, rows_loaded=0, rows_held=5))  # 5 rows held back
                elif (h, kind) == (HB, "claim"):
                    ids.append(deliver(cur, kind, h, d, [], status="rejected", reject_reason="undecodable",
                                       rows_read=0, rows_loaded=0))
                elif (h, kind) == (HA, "claim"):  # the ledger claims one row more than raw holds
                    ids.append(deliver(cur, kind, h, d, rows[:-1], quarantined[h, kind],
                                       rows_read=len(rows) + len(quarantined[h, kind]), rows_loaded=len(rows)))
                else:
                    ids.append(deliver(cur, kind, h, d, rows, quarantined[h, kind]))
        ids.append(deliver(cur, "purchase", HC, d, [], status="rejected", reject_reason="a_new_file_reason",
                           rows_read=0, rows_loaded=0))
    report = validate_night(city, d, ids, "quarantine-night")

    expected = {("raw_quarantine_report", f"quarantined_{r}", h): n for (r, h), n in plan.items() if r in ROW_REASONS}
    expected["raw_quarantine_report", "quarantined_other_reason", HB] = 2
    ids_bad = Counter()
    for (r, h), n in plan.items():
        if r.startswith("bad_id_"):
            ids_bad[h] += n
    expected.update({("raw_quarantine_report", "patient_id_number_invalid", h): n for h, n in ids_bad.items()})
    expected.update({
        ("raw_loads", "file_rejected_manifest_mismatch", HC): 1,
        ("raw_loads", "file_rejected_undecodable", HB): 1,
        ("raw_loads", "file_rejected_other_reason", HC): 1,
        ("raw_delivery", "extracts_delivered", HB): 1,   # its claim file was rejected
        ("raw_delivery", "extracts_delivered", HC): 1,   # its usage file was rejected
        ("raw_usage_quality", "usage_visit_has_claim", HB): PER_NIGHT["usage"],  # HB's claims were rejected
        ("raw_usage_quality", "usage_visit_has_claim", HA): 1,  # the claim row missing from raw
    })
    warnings = _failed(report, "warning")
    assert warnings == expected, report.summary_text()
    assert _failed(report, "error") == {("raw_loads", "ledger_row_accounting", HA): 1}, report.summary_text()

    results = {(r.check, r.hospital_code): r for r in report.results}
    rows_read_ha = sum(PER_NIGHT.values()) + sum(n for (r, h), n in plan.items() if h == HA)
    assert results["quarantined_bad_id_check_char", HA].evaluated == rows_read_ha
    assert results["file_rejected_manifest_mismatch", HC].detail == f"{d:%Y%m%d}/{HC}/usage.csv"
    assert "raw has 5" in results["ledger_row_accounting", HA].detail


def test_deliveries_and_row_volumes_against_the_trailing_median(city):
    from yibao.quality import validate_night

    d = dt.date(2025, 3, 13)

    def volumes(kind, h, rows):
        if (kind, h) == ("claim", HC):
            return None                                        # not delivered
        if (kind, h) == ("usage", HB):
            return rows[:1]                                    # 1 row vs median 6: below 50%
        if (kind, h) == ("purchase", HA):
            return rows + [purchase(h, d, 10 + i) for i in range(6)]  # 10 rows vs median 4: above 200%
        return rows

    with psycopg2.connect(city) as conn, conn.cursor() as cur:
        ids = deliver_night(cur, d, change=volumes)
    report = validate_night(city, d, ids, "volume-night")

    assert report.errors == [], report.summary_text()
    assert _failed(report, "warning") == {
        ("raw_delivery", "extracts_delivered", HC): 1,
        ("raw_delivery", "row_volume_vs_trailing_median", HA): 1,
        ("raw_delivery", "row_volume_vs_trailing_median", HB): 1,
        ("raw_usage_quality", "usage_visit_has_claim", HC): PER_NIGHT["usage"],  # HC's claims are missing
    }, report.summary_text()
    details = {(r.check, r.hospital_code): r.detail for r in report.warnings}
    assert details["extracts_delivered", HC] == f"missing {d} claim"
    assert details["row_volume_vs_trailing_median", HA] == "purchase 10 rows vs median 4"
    assert details["row_volume_vs_trailing_median", HB] == "usage 1 rows vs median 6"


def _rule(rule_id, rule_type, item_prefix="XA01ABD075A", severity="violation", **kw) -> dict:
    row = {c: None for c in ("allowed_sex", "min_age_days", "max_age_days", "min_hospital_level", "max_quantity", "days",
                             "main_item_prefix", "diagnosis_prefixes", "exam_class", "threshold", "effective_to")}
    row.update(rule_id=rule_id, rule_type=rule_type, item_prefix=item_prefix, severity=severity,
               effective_from=dt.date(2025, 1, 1), **kw)
    return row


def test_fee_detail_is_optional_warned_once_delivered_and_its_rows_and_rules_are_checked(city):
    """fee_detail: never asked of a hospital that never sent it; a warning (never an error) for one that
    sent it on an earlier business date and not tonight. Its coding / quality row checks and the rule
    library checks catch rows that slipped past the loader."""
    from yibao.quality import validate_night

    d1, d2 = dt.date(2026, 11, 2), dt.date(2026, 11, 3)  # after every other night of the module
    try:
        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            ids = deliver_night(cur, d1)
            for h in (HA, HB):  # HC never delivers fee_detail
                rows = [fee_detail(h, d1, i) for i in range(FEE_PER_NIGHT)]
                if h == HB:  # defects that slipped past the loader
                    rows[0]["item_code"] = "XA01ABD075A00201010048"             # 22 chars for a 西药
                    rows[1].update(item_type="21", item_code="00120100001000A")  # not 15 digits
                    rows[2]["exam_result"] = "X"
                    rows[3]["amount"] = Decimal("26.00")
                    rows[4]["patient_age_days"] = -1
                ids.append(deliver(cur, "fee_detail", h, d1, rows))
        first = validate_night(city, d1, ids, "fee-night-1")
        assert _failed(first, "error") == {
            ("raw_fee_detail_codes", "item_code_format", HB): 2,
            ("raw_fee_detail_quality", "exam_result_code", HB): 1,
            ("raw_fee_detail_quality", "amount_identity", HB): 1,
            ("raw_fee_detail_codes", "patient_age_days_valid", HB): 1,
        }, first.summary_text()
        assert _failed(first, "warning") == {}, first.summary_text()  # a first delivery: nothing missing yet
        by_name = {(r.suite, r.check): r for r in first.results}
        assert by_name["raw_fee_detail_quality", "quantity_nonzero"].evaluated == 2 * FEE_PER_NIGHT

        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            ids = deliver_night(cur, d2)
            ids.append(deliver(cur, "fee_detail", HB, d2, [fee_detail(HB, d2, i) for i in range(FEE_PER_NIGHT)]))
            rules = [
                _rule("R-OK-1", "sex", allowed_sex="F"), _rule("R-OK-2", "readmission", None, "suspicious", days=15),
                _rule("R-OK-3", "included_in", "001201000010000", main_item_prefix="00120100002", days=0),
                _rule("R-OK-4", "indication", diagnosis_prefixes="I10|E11.9|J18.x00"),
                _rule("R-TYPE", "gender", allowed_sex="F"),
                _rule("R-SEV", "sex", severity="warning", allowed_sex="M"),
                _rule("R-PFX", "sex", item_prefix="xa01", allowed_sex="M"),
                _rule("R-READ", "readmission", days=15),                       # readmission has no item prefix
                _rule("R-PAR", "daily_quantity", max_quantity=Decimal("0")),
                _rule("R-IND", "indication", diagnosis_prefixes="I10|1AB"),
                _rule("R-DATES", "sex", allowed_sex="F", effective_to=dt.date(2024, 12, 31)),
                _rule("R-DUP", "sex", allowed_sex="F"), _rule("R-DUP", "sex", allowed_sex="F"),
            ]
            ids.append(reference(cur, "audit_rules", rules))
        second = validate_night(city, d2, ids, "fee-night-2")
        assert _failed(second, "warning") == {("raw_delivery", "fee_detail_delivered", HA): 1}, second.summary_text()
        details = {(r.check, r.hospital_code): r for r in second.warnings}
        assert details["fee_detail_delivered", HA].detail == f"missing fee_detail {d2}"
        assert details["fee_detail_delivered", HA].evaluated == 1
        assert not [r for r in second.results if r.check == "fee_detail_delivered" and r.hospital_code == HC]
        assert _failed(second, "error") == {
            ("raw_audit_rules", "rule_type_known", None): 1,
            ("raw_audit_rules", "severity_known", None): 1,
            ("raw_audit_rules", "item_prefix_well_formed", None): 2,
            ("raw_audit_rules", "rule_parameters_present", None): 3,  # R-READ, R-PAR, R-IND
            ("raw_audit_rules", "effective_dates_ordered", None): 1,
            ("raw_audit_rules", "rule_id_unique_in_file", None): 2,
        }, second.summary_text()
    finally:  # later nights of other tests must not expect fee_detail from HA
        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            cur.execute("delete from raw.fee_detail")
            cur.execute("delete from raw.ref_audit_rules")
            cur.execute("delete from raw.load_ledger where file_kind in ('fee_detail', 'reference/audit_rules')")


def test_a_catch_up_run_finds_the_claim_file_missing_in_the_middle(clean_warehouse, tmp_path):
    """A run that loads five nights at once (a first load; likewise a backfill or a catch-up after an
    outage) checks deliveries for every business date it loads, not only its as-of date: the generated
    city's one missing claim file, in the middle of the range, is found, and exactly the hospital-nights
    the ground truth says are missing or rejected are reported."""
    import json

    from yibao.generator import generate_city
    from yibao.loader import load_landing
    from yibao.quality import validate_night

    landing = tmp_path / "landing"
    start, end = dt.date(2025, 1, 1), dt.date(2025, 1, 5)
    generate_city(landing, seed=5, hospitals=3, start=start, end=end, volume=0.1, defect_rate=0.02)
    truth = json.loads((landing / "_generator" / "defects.json").read_text(encoding="utf-8"))
    (missing,) = [d["file"] for d in truth if d["class"] == "missing_file"]
    day, hospital, name = missing.split("/")
    assert start < dt.datetime.strptime(day, "%Y%m%d").date() < end and name.startswith("claim")

    night = load_landing(landing, end, show_progress=False)
    report = validate_night(clean_warehouse, end, night.load_ids, "catch-up-night")

    absent = collections.defaultdict(list)  # hospital → 'YYYY-MM-DD kind' never loaded: missing or rejected
    for d in truth:
        if d["row"] is None:
            day, h, name = d["file"].split("/")
            absent[h].append(f"{dt.datetime.strptime(day, '%Y%m%d').date()} {name.split('.')[0]}")
    rejected = {f.file.relpath for f in night.files if f.status == "rejected"}
    assert rejected == {d["file"] for d in truth if d["class"] in ("truncated_file", "bad_manifest")}
    delivered = {r.hospital_code: r for r in report.results if r.check == "extracts_delivered" and r.failed}
    assert {h: (r.failed, r.detail) for h, r in delivered.items()} == {
        h: (len(v), "missing " + ", ".join(sorted(v))) for h, v in absent.items()
    }, report.summary_text()
    assert f"{dt.datetime.strptime(missing.split('/')[0], '%Y%m%d').date()} claim" in delivered[hospital].detail
    # it looked at three extracts of every hospital for each of the five nights
    evaluated = {r.hospital_code: r.evaluated for r in report.results if r.check == "extracts_delivered"}
    assert all(n == 3 * 5 for h, n in evaluated.items() if h in delivered)


def test_reference_data_sanity(city):
    from yibao.quality import validate_night

    d = dt.date(2025, 3, 14)
    bad = {
        "fund_budgets": [
            budget(HA, "310", "1200000.00", ["0.1"] * 10 + ["0.05", "0.049"]),   # sums to 0.999
            {**budget(HB, "310", "600000.00"), "m01_weight": Decimal("1")},    # one weight of twelve
            budget(HC, "310", "300000.00"), budget(HC, "310", "300000.00"),    # twice
            budget(HB, "390", "250000.00", HB_390_WEIGHTS),
        ],
        "vbp_batches": [dict(batch_id="VBP-STENT", batch_name="冠脉支架", category_prefix="C020202",
                             cycle_start=dt.date(2026, 12, 31), cycle_end=dt.date(2025, 1, 1))],
        "vbp_agreed_volumes": [
            dict(batch_id="VBP-STENT", hospital_code=HA, product_group="A", base_qty=Decimal("100"),
                 agreed_ratio=Decimal("1.5")),
            dict(batch_id="VBP-STENT", hospital_code=HB, product_group="A", base_qty=Decimal("100"),
                 agreed_ratio=Decimal("0")),
            dict(batch_id="VBP-STENT", hospital_code=HC, product_group="A", base_qty=Decimal("100"),
                 agreed_ratio=Decimal("1")),
        ],
    }
    with psycopg2.connect(city) as conn, conn.cursor() as cur:
        ids = deliver_night(cur, d)
        for name, rows in bad.items():
            reference(cur, name, rows)
    try:
        report = validate_night(city, d, ids, "reference-night")
    finally:  # later tests need the clean reference data back (a newer snapshot wins)
        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            for name in bad:
                reference(cur, name, REFERENCE[name])

    assert _failed(report, "error") == {
        ("raw_reference", "fund_budget_weights_sum_to_one", HA): 1,
        ("raw_reference", "fund_budget_weights_sum_to_one", HB): 1,
        ("raw_reference", "fund_budget_key_unique", HC): 1,
        ("raw_reference", "vbp_cycle_order", None): 1,
        ("raw_reference", "vbp_agreed_ratio_range", HA): 1,
        ("raw_reference", "vbp_agreed_ratio_range", HB): 1,
    }, report.summary_text()
    assert report.warnings == [], report.summary_text()


# ------------------------------------------------------------------------------------ marts stage

MARTS_DDL = """
create table {s}.fct_usage_pricing (
    hospital_code text, usage_id text, visit_id text, consumable_code text, used_at timestamp,
    quantity numeric(18,4), charge_unit_price numeric(18,4), reference_price numeric(18,4),
    payment_standard_price numeric(18,4), markup_excess_amount numeric(18,2), standard_excess_amount numeric(18,2),
    unreasonable_excess_amount numeric(18,2), is_untraceable boolean, _batch_at timestamptz default now());
create table {s}.fct_procurement_compliance (
    batch_id text, hospital_code text, product_group text, as_of_date date, agreed_qty numeric(18,4),
    purchased_selected_qty numeric(18,4), completion_rate numeric(9,4), expected_progress numeric(9,4),
    compliance_status text, selected_share numeric(9,4), price_violation_count integer);
create table {s}.fct_supplier_payment (
    hospital_code text, purchase_line_id text, supplier_uscc text, delivery_date date, due_date date,
    paid_date date, payment_status text, overdue_workdays integer);
create table {s}.fct_settlement_monthly (
    hospital_code text, insurance_type text, settlement_month date, monthly_quota_amount numeric(18,2),
    declared_amount numeric(18,2), deduction_amount numeric(18,2), reasonable_amount numeric(18,2),
    paid_amount numeric(18,2), deferred_amount numeric(18,2), negotiated_drug_amount numeric(18,2));
create table {s}.fct_settlement_annual (
    hospital_code text, insurance_type text, settlement_year integer, annual_budget_amount numeric(18,2),
    reasonable_amount numeric(18,2), monthly_paid_amount numeric(18,2), entitlement_amount numeric(18,2),
    year_end_payment_amount numeric(18,2));
create table {s}.fct_budget_consumption (
    hospital_code text, insurance_type text, as_of_date date, annual_budget_amount numeric(18,2),
    consumed_amount numeric(18,2), consumption_rate numeric(9,4), time_elapsed numeric(9,4), pace numeric(9,4),
    projected_year_end_amount numeric(18,2), alert_level text);
create table {s}.fct_abnormal_use_alerts (
    alert_type text, hospital_code text, subject_id text, period_month date, metric_value numeric(18,4),
    threshold_value numeric(18,4), category_prefix text);
create table {s}.fct_evaluation_quarterly (
    hospital_code text, quarter_start date, avg_inpatient_cost_amount numeric(18,2),
    avg_inpatient_cost_growth numeric(9,4), visits_per_patient numeric(9,4), personal_burden_ratio numeric(9,4));
create table {s}.fct_settlement_deduction (
    hospital_code text, settlement_id text, visit_id text, insurance_type text, settled_at timestamptz,
    settlement_month date, total_amount numeric(18,2), fund_paid_amount numeric(18,2),
    unreasonable_excess_amount numeric(18,2), deduction_amount numeric(18,2));
create table {s}.fct_audit_findings (
    rule_id text, rule_type text, severity text, hospital_code text, subject_type text, subject_id text,
    visit_id text, patient_key text, charge_date date, item_code text, flagged_quantity numeric(18,4),
    flagged_amount numeric(18,2), is_cross_hospital boolean, _batch_at timestamptz not null default now());
create table {s}.fct_exam_positive_rate_monthly (
    hospital_code text, month_start date, exam_class text, examined_count integer, positive_count integer,
    positive_rate numeric(9,4), threshold_rate numeric(9,4), is_alert boolean);
create table {s}.fct_audit_summary_monthly (
    hospital_code text, month_start date, rule_type text, severity text, finding_count integer,
    flagged_amount numeric(18,2));
"""
AS_OF = dt.date(2025, 3, 31)


def build_marts(cur, schema: str) -> None:
    """A clean mart as of 2025-03-31 for the city's budgets (quotas per R7, figures consistent)."""
    cur.execute(f"drop schema if exists {schema} cascade; create schema {schema}")
    cur.execute(MARTS_DDL.format(s=schema))
    monthly = []
    for b in REFERENCE["fund_budgets"]:
        for m in (1, 2, 3):
            w = b[f"m{m:02d}_weight"]
            quota = (b["annual_budget"] * (w if w is not None else Decimal(1) / 12)).quantize(Decimal("0.01"))
            declared = Decimal("80000.00") if m != 2 else quota + Decimal("1000.00")
            reasonable = declared - Decimal("100.00")
            paid, deferred = min(reasonable, quota), max(Decimal(0), reasonable - quota)
            monthly.append((b["hospital_code"], b["insurance_type"], dt.date(2025, m, 1), quota, declared,
                            Decimal("100.00"), reasonable, paid, deferred, Decimal("0.00")))
    execute_values(cur, f"insert into {schema}.fct_settlement_monthly values %s", monthly)
    # R6: the settlements behind each month's deduction (Σ per month = the monthly deduction)
    execute_values(cur, f"insert into {schema}.fct_settlement_deduction values %s", [
        (h, f"SD-{t}-{m:%m}", f"VD-{t}-{m:%m}", t, dt.datetime.combine(m, dt.time(9)), m, Decimal("1000.00"),
         Decimal("700.00"), Decimal("142.86"), deduction) for h, t, m, _, _, deduction, *_ in monthly
    ])
    execute_values(cur, f"insert into {schema}.fct_budget_consumption values %s", [
        (HA, "310", AS_OF, Decimal("1200000.00"), Decimal("240000.00"), Decimal("0.2000"), Decimal("0.2466"),
         Decimal("0.8110"), Decimal("973170.73"), "green"),
        (HA, "310", dt.date(2025, 1, 1), Decimal("1200000.00"), Decimal("-500.00"), Decimal("0.0000"),
         Decimal("0.0027"), Decimal("0.0000"), Decimal("0.00"), "green"),
    ])
    execute_values(cur, f"insert into {schema}.fct_procurement_compliance values %s", [
        ("VBP-STENT", h, "A", AS_OF, Decimal("55"), Decimal("20"), Decimal("0.3636"), Decimal("0.1233"), "on_track",
         Decimal("0.9000"), 0) for h in HOSPITALS
    ] + [("VBP-STENT", HA, "B", AS_OF, Decimal("10"), Decimal("0"), Decimal("0"), Decimal("0.1233"), "behind",
          None, 0)])
    execute_values(cur, f"insert into {schema}.fct_usage_pricing values %s", [
        (h, f"U{i}", f"V{i}", STENT, dt.datetime(2025, 3, 1, 10), Decimal("1"), Decimal("700"), Decimal("700"),
         Decimal("700"), Decimal("0"), Decimal("0"), Decimal("0"), False) for h in HOSPITALS for i in range(3)
    ])
    execute_values(cur, f"insert into {schema}.fct_supplier_payment values %s", [
        (HA, "P1", SUPPLIER, dt.date(2025, 3, 1), dt.date(2025, 4, 14), None, "open_not_due", 0),
    ])
    execute_values(cur, f"insert into {schema}.fct_abnormal_use_alerts values %s", [
        # one doctor, two categories in a month: two alerts that agree on every §7 column
        ("single_brand", HA, DOCTOR, dt.date(2025, 3, 1), Decimal("1.0"), Decimal("0.8"), "C020202"),
        ("single_brand", HA, DOCTOR, dt.date(2025, 3, 1), Decimal("1.0"), Decimal("0.8"), "C030501"),
        ("surgery_cost", HA, "SS1", dt.date(2025, 3, 1), Decimal("90000"), Decimal("60000"), None),
    ])
    execute_values(cur, f"insert into {schema}.fct_evaluation_quarterly values %s", [
        (h, dt.date(2025, 1, 1), Decimal("1000.00"), None, Decimal("1.2000"), Decimal("0.3000")) for h in HOSPITALS
    ])


# Smart audit (R11–R22): fee lines in raw.fee_detail (a load id of their own, removed after the test)
# and the findings on them, as DOMAIN §4b states them.
FEE_LOAD = 990_001
CT, SEXDRUG, FRQ = "002103000010000", "002202010060000", "001102000010000"
FEE_LINES = [  # hospital, fee_line_id, visit, item_type, item_code, quantity, unit_price, amount
    (HA, "FL1", "VA1", "21", SEXDRUG, Decimal("1"), Decimal("300.0000"), Decimal("300.00")),
    (HA, "FL2", "VA1", "21", SEXDRUG, Decimal("-1"), Decimal("300.0000"), Decimal("-300.00")),  # refund of FL1
    (HA, "FL3", "VA1", "21", FRQ, Decimal("2"), Decimal("20.0000"), Decimal("40.00")),
    (HA, "FL4", "VA2", "21", FRQ, Decimal("1"), Decimal("20.0000"), Decimal("20.00")),
    (HB, "FL5", "VB1", "21", CT, Decimal("1"), Decimal("280.0000"), Decimal("280.00")),
    (HC, "FL6", "VC1", "21", CT, Decimal("1"), Decimal("280.0000"), Decimal("280.00")),
    (HC, "FL7", "VC1", "21", SEXDRUG, Decimal("1"), Decimal("300.0000"), Decimal("300.00")),
]
R22_SETTLEMENT = "S0310001"  # claim(HA, 2025-03-10, 1): fund_paid 700.00
FINDINGS = [  # rule, type, severity, hospital, subject type, subject, visit, patient, date, item, qty, amount, cross
    ("SEX-1", "sex", "violation", HA, "fee_line", "FL1", "VA1", KEY, dt.date(2025, 3, 3), SEXDRUG, 1, "300.00", False),
    ("SEX-1", "sex", "violation", HA, "fee_line", "FL2", "VA1", KEY, dt.date(2025, 3, 4), SEXDRUG, -1, "-300.00", False),
    ("FRQ-1", "daily_quantity", "violation", HA, "fee_line", "FL3", "VA1", KEY, dt.date(2025, 3, 3), FRQ, 2, "40.00", False),
    # R15 flags the day's excess on the day's last line: 3 × 20.00 on a line of 1 × 20.00 is right
    ("FRQ-1", "daily_quantity", "violation", HA, "fee_line", "FL4", "VA2", KEY, dt.date(2025, 3, 5), FRQ, 3, "60.00", False),
    ("REP-1", "repeat_exam", "suspicious", HB, "fee_line", "FL5", "VB1", KEY, dt.date(2025, 3, 6), CT, 1, "280.00", True),
    ("RDM-1", "readmission", "suspicious", HA, "settlement", R22_SETTLEMENT, "V0310001", KEY, dt.date(2025, 3, 5),
     None, None, "700.00", False),
]
EXAMS = [
    (HA, dt.date(2025, 3, 1), "CT", 10, 7, Decimal("0.7000"), Decimal("0.7000"), True),
    (HB, dt.date(2025, 3, 1), "CT", 3, 2, Decimal("0.6667"), Decimal("0.7000"), True),
    (HB, dt.date(2025, 3, 1), "DR", 0, 0, None, Decimal("0.7000"), False),  # nothing examined: no rate, no alert
    (HB, dt.date(2025, 2, 1), "CT", 8, 7, Decimal("0.8750"), Decimal("0.7000"), False),
]


def summarise_findings(cur, schema: str) -> None:
    cur.execute(f"""delete from {schema}.fct_audit_summary_monthly;
        insert into {schema}.fct_audit_summary_monthly
        select hospital_code, date_trunc('month', charge_date)::date, rule_type, severity, count(*), sum(flagged_amount)
        from {schema}.fct_audit_findings group by 1, 2, 3, 4""")


def build_audit(cur, schema: str) -> int:
    """Clean smart-audit marts in ``schema`` and their raw inputs; returns the claim's load id."""
    execute_values(cur, "insert into raw.fee_detail (load_id, business_date, source_file, source_row, hospital_code,"
                        " fee_line_id, visit_id, patient_key, item_type, item_code, quantity, unit_price, amount,"
                        " charged_at) values %s",
                   [(FEE_LOAD, dt.date(2025, 3, 10), f"20250310/{h}/fee_detail.csv", i, h, fl, v, KEY, t, code, q, p,
                     a, dt.datetime(2025, 3, 3, 9)) for i, (h, fl, v, t, code, q, p, a) in enumerate(FEE_LINES, 1)])
    # an earlier version of FL3 at another price (2 × 25.00): only the latest version (2 × 20.00) counts
    cur.execute("insert into raw.fee_detail (load_id, business_date, source_file, source_row, hospital_code,"
                " fee_line_id, visit_id, patient_key, item_type, item_code, quantity, unit_price, amount, charged_at)"
                " select load_id, business_date - 1, source_file, 99, hospital_code, fee_line_id, visit_id, patient_key,"
                " item_type, item_code, quantity, 25, 50.00, charged_at from raw.fee_detail"
                " where load_id = %s and fee_line_id = 'FL3'", (FEE_LOAD,))
    claim_load = deliver(cur, "claim", HA, dt.date(2025, 3, 10), [claim(HA, dt.date(2025, 3, 10), 1)])
    execute_values(cur, f"insert into {schema}.fct_audit_findings values %s", FINDINGS)
    execute_values(cur, f"insert into {schema}.fct_exam_positive_rate_monthly values %s", EXAMS)
    summarise_findings(cur, schema)
    return claim_load


def drop_audit_inputs(url: str, claim_load: int) -> None:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("delete from raw.fee_detail where load_id = %s", (FEE_LOAD,))
        cur.execute("delete from raw.claim where load_id = %s", (claim_load,))
        cur.execute("delete from raw.load_ledger where load_id = %s", (claim_load,))


def test_clean_mart_passes(city):
    from yibao.quality import validate_marts

    with psycopg2.connect(city) as conn, conn.cursor() as cur:
        build_marts(cur, "marts_clean")
        claim_load = build_audit(cur, "marts_clean")
    try:
        report = validate_marts(city, "marts_clean", AS_OF, "marts-clean")
    finally:
        drop_audit_inputs(city, claim_load)
    assert report.errors == [] and report.warnings == [], report.summary_text()
    assert {r.suite for r in report.results} == {"marts_settlement", "marts_rates", "marts_grain", "marts_audit"}
    audit = {r.check: r for r in report.results if r.suite == "marts_audit"}
    assert len(audit) == 10 and audit["fct_audit_findings_grain"].evaluated == len(FINDINGS)
    by_name = {r.check: r for r in report.results}
    assert by_name["monthly_rows_complete"].evaluated == 4 * 3
    assert len(_stored(city, "marts-clean", "marts")) == len(report.results)
    report.raise_if_errors()


def test_mart_errors_fail_the_gate_and_list_each_failure(city):
    from yibao.quality import QualityGateFailed, validate_marts

    s = "marts_bad"
    with psycopg2.connect(city) as conn, conn.cursor() as cur:
        build_marts(cur, s)
        # grain: HA's March row twice
        cur.execute(f"insert into {s}.fct_settlement_monthly select * from {s}.fct_settlement_monthly"
                    f" where hospital_code = '{HA}' and settlement_month = '2025-03-01'")
        # a month with claims but no budget row: HC settles 390 claims (no 390 budget for HC) ...
        claim_load = deliver(cur, "claim", HC, dt.date(2025, 2, 10),
                             [claim(HC, dt.date(2025, 2, 10), 90 + i, insurance_type="390") for i in range(2)])
        # ... and the mart shows a month of declared claims without a quota
        cur.execute(f"insert into {s}.fct_settlement_monthly values"
                    f" ('{HC}', '390', '2025-03-01', null, 500.00, 0, 500.00, 500.00, 0, 0)")
        # a quota off the budget share, a rate out of bounds, and a table the mart lacks
        cur.execute(f"update {s}.fct_settlement_monthly set monthly_quota_amount = monthly_quota_amount + 0.01,"
                    f" paid_amount = paid_amount + 0.01"
                    f" where hospital_code = '{HB}' and insurance_type = '390' and settlement_month = '2025-01-01'")
        cur.execute(f"update {s}.fct_budget_consumption set time_elapsed = 0 where as_of_date = '2025-01-01'")
        cur.execute(f"insert into {s}.fct_abnormal_use_alerts select * from {s}.fct_abnormal_use_alerts"
                    f" where alert_type = 'surgery_cost'")
        cur.execute(f"drop table {s}.fct_supplier_payment")
    try:
        report = validate_marts(city, s, AS_OF, "marts-bad")
    finally:
        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            cur.execute("delete from raw.claim where load_id = %s", (claim_load,))
            cur.execute("delete from raw.load_ledger where load_id = %s", (claim_load,))

    errors = _failed(report, "error")
    assert errors == {
        ("marts_grain", "fct_settlement_monthly_grain", HA): 2,
        ("marts_settlement", "month_with_claims_has_budget", HC): 2,   # 2025-02 (raw claims), 2025-03 (mart)
        ("marts_settlement", "monthly_quota_matches_budget_share", HB): 1,
        ("marts_rates", "time_elapsed_in_range", HA): 1,
        ("marts_grain", "fct_abnormal_use_alerts_grain", HA): 2,       # the same alert twice
        ("marts_grain", "fct_supplier_payment_grain", None): 1,        # could not run: no such table
    }, report.summary_text()
    details = {(r.check, r.hospital_code): r.detail for r in report.errors}
    assert details["month_with_claims_has_budget", HC] == "390 2025-02 (2 claims), 390 2025-03"
    assert "could not run" in details["fct_supplier_payment_grain", None]
    assert "fct_supplier_payment" in details["fct_supplier_payment_grain", None]

    with pytest.raises(QualityGateFailed) as exc:
        report.raise_if_errors()
    message = str(exc.value)
    assert message.splitlines()[0] == (
        "6 error-level data-quality result(s) failed (stage marts, as of 2025-03-31, run marts-bad):")
    assert f"marts_grain.fct_settlement_monthly_grain [hospital {HA}]: 2 of 4 failed" in message
    assert f"marts_settlement.month_with_claims_has_budget [hospital {HC}]: 2 of" in message
    assert "marts_grain.fct_supplier_payment_grain [all hospitals]: 1 of 0 failed — check could not run" in message
    assert len(message.splitlines()) == 1 + 6 + 1  # title, one line per failed result, Data Docs


def test_audit_mart_errors_fail_the_gate(city):
    """Each smart-audit mart check fails for the hospital whose rows break it, and only there."""
    from yibao.quality import validate_marts

    s = "marts_audit_bad"
    with psycopg2.connect(city) as conn, conn.cursor() as cur:
        build_marts(cur, s)
        claim_load = build_audit(cur, s)
        f = f"{s}.fct_audit_findings"
        cur.execute(f"insert into {f} select * from {f} where subject_id = 'FL1'")             # HA: one finding twice
        cur.execute(f"update {f} set flagged_amount = 41.00 where subject_id = 'FL3'")        # HA: R15 ≠ 2 × 20.00
        cur.execute(f"update {f} set flagged_amount = 699.99 where rule_type = 'readmission'")  # HA: R22 ≠ fund_paid
        execute_values(cur, f"insert into {f} values %s", [
            ("SEX-1", "sex", "violation", HB, "fee_line", "FL-NONE", "VB9", KEY, dt.date(2025, 3, 7), SEXDRUG, 1,
             "300.00", False),                                                                  # HB: no such line
            ("PR-1", "positive_rate", "violation", HC, "fee_line", "FL6", "VC1", KEY, dt.date(2025, 3, 3), CT, 1,
             "280.00", False),                                                                  # HC: R21 is no finding
            ("SEX-1", "sex", "violation", HC, "fee_line", "FL7", "VC1", KEY, dt.date(2025, 3, 3), SEXDRUG, 1,
             "350.00", False),                                                                  # HC: more than the line
        ])
        summarise_findings(cur, s)
        cur.execute(f"delete from {s}.fct_audit_summary_monthly where hospital_code = '{HB}'")  # HB: summary short
        e = f"{s}.fct_exam_positive_rate_monthly"
        cur.execute(f"update {e} set positive_rate = 0.7001 where hospital_code = '{HA}'")     # HA: ≠ 7/10, alert wrong
        cur.execute(f"insert into {e} select * from {e} where hospital_code = '{HB}' and exam_class = 'DR'")  # HB ×2
        d = f"{s}.fct_settlement_deduction"
        cur.execute(f"update {d} set deduction_amount = 800.00 where hospital_code = '{HB}' and settlement_id = 'SD-310-03'")
        cur.execute(f"delete from {d} where hospital_code = '{HC}' and settlement_id = 'SD-310-01'")
    try:
        report = validate_marts(city, s, AS_OF, "marts-audit-bad")
    finally:
        drop_audit_inputs(city, claim_load)
    errors = {k: v for k, v in _failed(report, "error").items() if k[0] == "marts_audit"}
    assert errors == {
        ("marts_audit", "fct_audit_findings_grain", HA): 2,
        ("marts_audit", "audit_finding_fields", HC): 1,
        ("marts_audit", "audit_amount_within_fee_line", HA): 1,
        ("marts_audit", "audit_amount_within_fee_line", HB): 1,
        ("marts_audit", "audit_amount_within_fee_line", HC): 1,
        ("marts_audit", "audit_readmission_amount_is_fund_paid", HA): 1,
        ("marts_audit", "audit_summary_matches_findings", HB): 2,   # 2025-03 sex/violation and repeat_exam/suspicious
        ("marts_audit", "exam_positive_rate_consistent", HA): 1,
        ("marts_audit", "fct_exam_positive_rate_monthly_grain", HB): 2,
        ("marts_audit", "deduction_within_fund_paid", HB): 1,
        ("marts_audit", "deductions_listed_per_settlement", HB): 1,
        ("marts_audit", "deductions_listed_per_settlement", HC): 1,
    }, report.summary_text()
    assert set(_failed(report, "error")) == set(errors), report.summary_text()
    details = {(r.check, r.hospital_code): r.detail for r in report.errors}
    assert "FL-NONE: no such fee line" in details["audit_amount_within_fee_line", HB]
    assert "FL3: qty 2.0000 of line qty 2.0000 at 20.0000: 41.00" in details["audit_amount_within_fee_line", HA]
    assert "FL7: 350.00 of line amount 300.00" in details["audit_amount_within_fee_line", HC]
    assert "SD-310-03: 800.00 of fund_paid 700.00" in details["deduction_within_fund_paid", HB]


def test_audit_findings_are_checked_since_the_last_publish(city):
    """The fct_audit_findings checks read the findings written since the last publish (what was
    published passed them): a bad finding older than the publish is not read again, the same
    finding rewritten after it is, and every finding is read again when nothing was published."""
    from yibao.quality import validate_marts

    s = "marts_audit_scope"
    checks = ("audit_amount_within_fee_line", "fct_audit_findings_grain", "audit_finding_fields")
    with psycopg2.connect(city) as conn, conn.cursor() as cur:
        build_marts(cur, s)
        claim_load = build_audit(cur, s)
        f = f"{s}.fct_audit_findings"
        # written before the publish: HA's R15 finding off its line, HC's finding of R21 (no finding type)
        cur.execute(f"update {f} set flagged_amount = 41.00 where subject_id = 'FL3'")
        execute_values(cur, f"insert into {f} values %s", [
            ("PR-1", "positive_rate", "violation", HC, "fee_line", "FL6", "VC1", KEY, dt.date(2025, 3, 3), CT, 1,
             "280.00", False)])
        summarise_findings(cur, s)
    published: list[int] = []

    def failed() -> dict:
        report = validate_marts(city, s, AS_OF, f"audit-scope-{len(published)}")
        return {(c, h): n for (_, c, h), n in _failed(report, "error").items() if c in checks}

    try:
        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            cur.execute("insert into audit.publish_log (as_of_date, run_id) values (%s, 'audit-scope-pub')"
                        " returning publish_id", (AS_OF,))
            published.append(cur.fetchone()[0])
        assert failed() == {}  # both were written before the publish
        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            # a build rewrites HA's finding (still off its line) and writes HB's FL5 finding a second time
            cur.execute(f"update {f} set _batch_at = now() where subject_id = 'FL3'")
            cur.execute(f"insert into {f} select rule_id, rule_type, severity, hospital_code, subject_type, subject_id,"
                        f" visit_id, patient_key, charge_date, item_code, flagged_quantity, flagged_amount,"
                        f" is_cross_hospital from {f} where subject_id = 'FL5'")
            summarise_findings(cur, s)
        report = validate_marts(city, s, AS_OF, "audit-scope-written")
        by_check = {(r.check, r.hospital_code): r for r in report.results if r.check in checks}
        assert {k: r.failed for k, r in by_check.items() if r.failed} == {
            ("audit_amount_within_fee_line", HA): 1, ("fct_audit_findings_grain", HB): 2}, report.summary_text()
        # what was evaluated: the two findings written since the publish
        assert by_check["audit_finding_fields", None].evaluated == 2
        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            cur.execute("delete from audit.publish_log where publish_id = any(%s)", (published,))
        # nothing published: every finding is read, the two written before the publish too
        assert failed() == {("audit_amount_within_fee_line", HA): 1, ("audit_finding_fields", HC): 1,
                            ("fct_audit_findings_grain", HB): 2}
    finally:
        drop_audit_inputs(city, claim_load)
        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            cur.execute("delete from audit.publish_log where publish_id = any(%s)", (published,))


def test_checks_since_the_last_publish_filter_with_the_gate_s_predicate():
    """The marts checks that read fct_audit_findings or fct_usage_pricing since the last publish
    filter with quality.WRITTEN_SINCE_PUBLISH, the predicate the gate counts their evaluated rows
    with (one text: edited in one place and not the other, the counts would describe other rows
    than the checks read), and say that they evaluate those rows; no other marts check filters by
    _batch_at."""
    import json
    import re

    from yibao.quality import MART_TABLES_CHECKED_SINCE_PUBLISH, WRITTEN_SINCE_PUBLISH

    def words(text):
        return re.sub(r"\s+", " ", text).strip()

    since, whole = [], []
    for path in sorted((PROJECT_ROOT / "expectations" / "expectations").glob("marts_*.json")):
        for e in json.loads(path.read_text(encoding="utf-8"))["expectations"]:
            query = words(e["kwargs"]["unexpected_rows_query"])
            entry = (e["meta"]["check"], e["meta"].get("evaluates") or "", e["description"], query)
            (since if entry[1].startswith("mart_written:") else whole).append(entry)
    assert MART_TABLES_CHECKED_SINCE_PUBLISH == ("fct_audit_findings", "fct_usage_pricing")
    assert sorted(c for c, *_ in since) == sorted([
        "fct_audit_findings_grain", "audit_amount_within_fee_line", "audit_finding_fields",
        "audit_readmission_amount_is_fund_paid", "fct_usage_pricing_grain"]), [c for c, *_ in since]
    for check, evaluates, description, query in since:
        table = evaluates.removeprefix("mart_written:")
        assert table in MART_TABLES_CHECKED_SINCE_PUBLISH, check
        assert "written since the last publish" in description, check
        assert query.count(words(WRITTEN_SINCE_PUBLISH)) == 1, check
        assert f"from {table} where" in query, check
    for check, _, _, query in whole:
        assert "_batch_at" not in query, check


def test_usage_pricing_grain_is_checked_since_the_last_publish(city):
    """fct_usage_pricing_grain reads the usage lines written since the last publish, not the whole
    mart every night: a line without a usage_id written before the publish is not read again, the
    same fault written after it is, and every line is read when nothing was published. The gate
    counts as evaluated the lines the check read (0 when the night wrote none)."""
    from yibao.quality import validate_marts

    s = "marts_usage_scope"
    check = ("marts_grain", "fct_usage_pricing_grain", HA)
    published: list[int] = []
    with psycopg2.connect(city) as conn, conn.cursor() as cur:
        build_marts(cur, s)
        # the grain's unique index, as the dbt model declares it: only null keys are searched
        cur.execute(f"create unique index on {s}.fct_usage_pricing (hospital_code, usage_id)")
        cur.execute(f"update {s}.fct_usage_pricing set usage_id = null where hospital_code = %s and usage_id = 'U0'",
                    (HA,))
    try:
        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            cur.execute("insert into audit.publish_log (as_of_date, run_id) values (%s, 'usage-scope-pub')"
                        " returning publish_id", (AS_OF,))
            published.append(cur.fetchone()[0])
        report = validate_marts(city, s, AS_OF, "usage-scope-1")
        assert check not in _failed(report, "error"), report.summary_text()
        (grain,) = [r for r in report.results if r.check == "fct_usage_pricing_grain"]
        assert grain.evaluated == 0  # nothing written since the publish
        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            # a build writes the line again (still without its usage_id) and another line of HB
            cur.execute(f"update {s}.fct_usage_pricing set _batch_at = now()"
                        " where (hospital_code = %s and usage_id is null) or (hospital_code = %s and usage_id = 'U1')",
                        (HA, HB))
        report = validate_marts(city, s, AS_OF, "usage-scope-2")
        assert _failed(report, "error").get(check) == 1, report.summary_text()
        # HA's one line written since the publish (a failing check reports the hospitals that fail)
        assert [(r.hospital_code, r.evaluated) for r in report.results if r.check == "fct_usage_pricing_grain"] == [
            (HA, 1)]
        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            cur.execute("delete from audit.publish_log where publish_id = any(%s)", (published,))
        published.clear()
        # nothing published: every line is read
        report = validate_marts(city, s, AS_OF, "usage-scope-3")
        assert _failed(report, "error").get(check) == 1, report.summary_text()
        assert [(r.hospital_code, r.evaluated) for r in report.results if r.check == "fct_usage_pricing_grain"] == [
            (HA, 3)]
    finally:
        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            cur.execute("delete from audit.publish_log where publish_id = any(%s)", (published,))
            cur.execute(f"drop schema if exists {s} cascade")


def test_claims_without_budget_are_read_since_the_last_publish(city):
    """month_with_claims_has_budget reads the raw claims loaded since the last publish (what was
    published passed it), and every claim again when the budget file arrived after that publish."""
    from yibao.quality import validate_marts

    s = "marts_scope"
    check = ("marts_settlement", "month_with_claims_has_budget", HC)
    with psycopg2.connect(city) as conn, conn.cursor() as cur:
        build_marts(cur, s)
        # HC settles two 390 claims: HC has no 390 budget
        claim_load = deliver(cur, "claim", HC, dt.date(2025, 2, 10),
                             [claim(HC, dt.date(2025, 2, 10), 90 + i, insurance_type="390") for i in range(2)])
    added: dict[str, list] = {"publish": [], "ledger": []}
    try:
        # nothing published yet: every claim is read
        assert _failed(validate_marts(city, s, AS_OF, "scope-1"), "error").get(check) == 1
        # a publish after that load: the claim was part of what passed, it is not read again
        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            cur.execute("insert into audit.publish_log (as_of_date, run_id) values (%s, 'scope-pub')"
                        " returning publish_id", (AS_OF,))
            added["publish"].append(cur.fetchone()[0])
        assert check not in _failed(validate_marts(city, s, AS_OF, "scope-2"), "error")
        # the budget file delivered again after the publish: every claim is read again
        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            cur.execute("insert into raw.load_ledger (file_kind, source_file, sha256, status)"
                        " values ('reference:fund_budgets', 'reference/fund_budgets.csv', %s, 'loaded')"
                        " returning load_id", (uuid.uuid4().hex,))
            added["ledger"].append(cur.fetchone()[0])
        assert _failed(validate_marts(city, s, AS_OF, "scope-3"), "error").get(check) == 1
    finally:
        with psycopg2.connect(city) as conn, conn.cursor() as cur:
            cur.execute("delete from raw.claim where load_id = %s", (claim_load,))
            cur.execute("delete from raw.load_ledger where load_id = any(%s)", ([claim_load, *added["ledger"]],))
            cur.execute("delete from audit.publish_log where publish_id = any(%s)", (added["publish"],))


def test_marts_schema_name_is_an_identifier(city):
    from yibao.quality import validate_marts

    with pytest.raises(ValueError, match="schema name"):
        validate_marts(city, "marts; drop table x", AS_OF, "x")


# ------------------------------------------------------------------------------------ SQL check functions


def _sql_map(url: str, function: str, values: list[str], *extra) -> dict[str, bool]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"select v, {function}(v{''.join(', %s' for _ in extra)}) from unnest(%s::text[]) as v",
                    (*extra, values))
        return dict(cur.fetchall())


def _corrupt(rng: random.Random, code: str, alphabet: str) -> str:
    i = rng.randrange(len(code))
    if rng.random() < 0.3 and i < len(code) - 1 and code[i] != code[i + 1]:  # transposition
        return code[:i] + code[i + 1] + code[i] + code[i + 2:]
    return code[:i] + rng.choice(alphabet.replace(code[i], "")) + code[i + 1:]


def test_uscc_function_matches_stdnum(city):
    from stdnum.cn import uscc

    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    rng = random.Random(11643)
    valid = [_uscc("".join(rng.choice("0123456789") for _ in range(8))
                   + "".join(rng.choice(alphabet) for _ in range(9))) for _ in range(2000)]
    corrupted = [_corrupt(rng, v, alphabet) for v in valid]
    odd = ["91110000600037341", "911100006000373411L", "9111000060003734IL", "", "Y1110000600037341L"]
    values = valid + corrupted + odd + ["914403001922038216", "91110000600037341L"]
    sql = _sql_map(city, "audit.uscc_is_valid", values)
    assert sql["914403001922038216"] and sql["91110000600037341L"]  # real codes (docs/codes.md)
    assert all(sql[v] for v in valid)
    assert not any(sql[v] for v in corrupted)  # mod 31: every substitution and transposition is caught
    for v in values:
        assert sql[v] == uscc.is_valid(v), v
    # strict where stdnum is lenient: no case folding, no separators
    sql = _sql_map(city, "audit.uscc_is_valid", ["91110000600037341l", "9111 0000 6000 37341L"])
    assert not any(sql.values())
    # GB 32100 lets the first two characters be letters (stdnum wants digits): same check character
    lettered = [_uscc("N2" + v[2:17]) for v in valid[:200]]
    sql = _sql_map(city, "audit.uscc_is_valid", lettered + [v[:-1] + ("0" if v[-1] != "0" else "1") for v in lettered])
    assert sum(sql.values()) == len(lettered)


def test_udi_function_matches_stdnum_gtin14(city):
    from stdnum import ean

    rng = random.Random(14)
    valid = [_gtin("".join(rng.choice("0123456789") for _ in range(13))) for _ in range(3000)]
    corrupted = [_corrupt(rng, v, "0123456789") for v in valid]
    odd = ["0690123456789", "069012345678921", "0690123456789X", " 06901234567892"]
    values = valid + corrupted + odd + ["06901234567892"]
    sql = _sql_map(city, "audit.udi_is_valid", values)
    for v in values:
        assert sql[v] == (len(v) == 14 and ean.is_valid(v)), v  # stdnum's ean takes 8-14 digits
    assert sum(sql[v] for v in valid) == len(valid)
    assert sum(sql[v] for v in corrupted) < len(corrupted) * 0.05  # mod 10 misses transposed 0-5, 1-6 …


def test_id_number_function_matches_stdnum_ric(city):
    from stdnum.cn import ric
    from stdnum.exceptions import ValidationError

    rng = random.Random(17)
    today = dt.date(2026, 1, 1)
    regions = ["110101", "310104", "440305", "520201", "410702", "360426"]

    def make(region: str, birth: dt.date, seq: int) -> str:
        body = f"{region}{birth:%Y%m%d}{seq:03d}"
        return body + ric.calc_check_digit(body + "0")

    def stdnum_says(v: str) -> bool:
        """stdnum's check character and birth date rules (its is_valid also wants a birth place
        its county table knows for the birth year, which docs/codes.md does not ask for)."""
        if len(v) != 18 or not v[:17].isdigit() or v[17] not in "0123456789X" or ric.calc_check_digit(v) != v[17]:
            return False
        try:
            return ric.get_birth_date(v) <= today
        except ValidationError:
            return False

    valid = [make(rng.choice(regions), dt.date(1930, 1, 1) + dt.timedelta(days=rng.randrange(32000)),
                  rng.randrange(1000)) for _ in range(2000)]
    corrupted = [_corrupt(rng, v, "0123456789") for v in valid]
    impossible = [f"110101{day}007" for day in ("19900230", "19901301", "19900001")]
    impossible = [v + ric.calc_check_digit(v + "0") for v in impossible]  # right check char, no such day
    future = make("110101", dt.date(2030, 1, 1), 1)
    values = valid + corrupted + impossible + [future, "36042619910101007", "360426199101010071", "36042619910101007x"]
    sql = _sql_map(city, "audit.ric_is_valid", values, today)
    assert sql["360426199101010071"] and not sql[future] and not any(sql[v] for v in impossible)
    assert all(sql[v] for v in valid)
    for v in values:
        assert sql[v] == stdnum_says(v), v
    checked = 0
    for v in values:  # and stdnum's full is_valid wherever its county table knows the birth place
        try:
            ric.get_birth_place(v)
        except (ValidationError, ValueError, KeyError):  # stdnum's table lookup can raise KeyError
            continue
        if v != future:
            checked += 1
            assert sql[v] == ric.is_valid(v), v
    assert checked > 1000


def test_icd10_function_accepts_the_whole_national_list(city):
    path = PROJECT_ROOT / "tests" / "data" / "reference" / "icd10_chs_diagnoses.tsv"
    codes = [line.split("\t")[0] for line in Path(path).read_text(encoding="utf-8").splitlines()[1:] if line]
    assert len(codes) > 33000
    bad = ["I10", "I10.x0", "i10.x00", "I10.X00", "I10.x00x02", "A01.000x005+J17.0", "A01.000+J17.00*", "I10.x00 "]
    sql = _sql_map(city, "audit.icd10_is_valid", codes + bad)
    assert [c for c in codes if not sql[c]] == []
    assert [c for c in bad if sql[c]] == []


def test_hospital_and_consumable_format_functions(city):
    sql = _sql_map(city, "audit.hospital_code_is_well_formed", ["H52020100022", "H5202010002", "h52020100022",
                                                                 "H520201000221", "X52020100022"])
    assert [k for k, v in sql.items() if v] == ["H52020100022"]
    sql = _sql_map(city, "audit.consumable_code_is_valid", ["C0344051070500007551", "C09100100000000211790000049",
                                                            "C034405107050000755", "C0344051070500007551000",
                                                            "D0344051070500007551"])
    assert sorted(k for k, v in sql.items() if v) == ["C0344051070500007551", "C09100100000000211790000049"]
