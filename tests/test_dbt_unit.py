"""The dbt project end to end on a small hand-made raw dataset (docs/worked-example.md worked example).

One embedded PostgreSQL (the session ``warehouse``), raw rows inserted with SQL, then four builds:

  night A  through 2025-06-30 into marts_build   (first build: everything from scratch)
  night B  through 2025-09-30 into marts          (intermediate models incremental; late and
                                                   corrected files arrive in between)
  night C  through 2025-12-31 into marts_build   (lags two nights: must catch up)
  check    through 2025-12-31 into marts_check with --full-refresh

Every ``dbt build`` also runs the unit tests (one per rule case) and the data tests. The test
asserts the §8 monthly, annual and consumption figures to the cent, and that the incrementally
built marts equal the full rebuild row for row.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from conftest import dbt_log_of, render_sql, reset_warehouse

from yibao import transform

H1 = "H41070200001"  # §8: surplus branch (March-December 95,000.00 a month)
H2 = "H41070200002"  # §8 alternative: overspend branch (March-December 110,000.00 a month)
STENT = "C0202011234567812345"  # a selected coronary stent of batch B1 (selected_price 700.00)
STENT_OTHER = "C0202011234567854321"  # same category, another brand, not selected
SUPPLIER = "914403001922038216"

A, B, C = dt.date(2025, 6, 30), dt.date(2025, 9, 30), dt.date(2025, 12, 31)
MART_TABLES = [
    "fct_usage_pricing",
    "fct_procurement_compliance",
    "fct_supplier_payment",
    "fct_settlement_monthly",
    "fct_settlement_annual",
    "fct_settlement_deduction",
    "fct_budget_consumption",
    "fct_abnormal_use_alerts",
    "fct_evaluation_quarterly",
    "fct_platform_purchasing_monthly",
    "fct_load_summary",
    "fct_audit_findings",
    "fct_exam_positive_rate_monthly",
    "fct_audit_summary_monthly",
    "dim_hospital",
    "dim_consumable",
    "dim_date",
]

REFERENCE = {
    "hospitals": (
        ["hospital_code", "hospital_name", "level", "county_code", "ownership"],
        [
            (H1, "示例市第一人民医院", "三级", "410702", "public"),
            (H2, "示例市第二人民医院", "二级", "410702", "public"),
        ],
    ),
    "consumable_catalog": (
        ["consumable_code", "generic_name", "category_code", "is_high_value", "status"],
        [
            (STENT, "冠状动脉药物洗脱支架", "C020201", True, "active"),
            (STENT_OTHER, "冠状动脉药物洗脱支架", "C020201", True, "active"),
        ],
    ),
    "vbp_batches": (
        ["batch_id", "batch_name", "category_prefix", "cycle_start", "cycle_end"],
        [("B1", "冠脉支架集采", "C020201", dt.date(2025, 1, 1), dt.date(2025, 12, 31))],
    ),
    "vbp_products": (
        [
            "batch_id",
            "product_group",
            "consumable_code",
            "manufacturer",
            "selected_price",
            "pre_vbp_price",
        ],
        [("B1", "G1", STENT, "示例医疗", D("700.00"), D("13000.00"))],
    ),
    "vbp_agreed_volumes": (
        ["batch_id", "hospital_code", "product_group", "base_qty", "agreed_ratio"],
        [("B1", H1, "G1", D(100), D("0.55"))],
    ),
    "fund_budgets": (
        ["year", "hospital_code", "insurance_type", "annual_budget"],
        [(2025, H1, "310", D("1200000.00")), (2025, H2, "310", D("1200000.00"))],
    ),
    "settlement_params": (
        ["year", "surplus_retention_rate", "overspend_share_rate"],
        [(2025, D("0.6"), D("0.3"))],
    ),
}

PURCHASE_COLS = [
    "purchase_line_id",
    "order_date",
    "delivery_date",
    "consumable_code",
    "supplier_uscc",
    "quantity",
    "unit_price",
    "amount",
    "via_platform",
    "paid_date",
    "paid_amount",
]
USAGE_COLS = [
    "usage_id",
    "visit_id",
    "patient_key",
    "dept_code",
    "doctor_code",
    "surgery_id",
    "consumable_code",
    "quantity",
    "charge_unit_price",
    "charge_amount",
    "used_at",
]
CLAIM_COLS = [
    "settlement_id",
    "visit_id",
    "patient_key",
    "insurance_type",
    "medical_category",
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


def purchase(line_id, delivery, qty, price, code=STENT, platform=True, paid=None):
    qty, price = D(qty), D(price)
    return (
        line_id,
        delivery - dt.timedelta(days=3),
        delivery,
        code,
        SUPPLIER,
        qty,
        price,
        (qty * price).quantize(D("0.01")),
        platform,
        paid,
        None,
    )


def usage(
    usage_id, visit, used_at, qty, price, code=STENT, patient="PK1", surgery=None
):
    qty, price = D(qty), D(price)
    return (
        usage_id,
        visit,
        patient,
        "0301",
        "D410702000001",
        surgery,
        code,
        qty,
        price,
        (qty * price).quantize(D("0.01")),
        used_at,
    )


def claim(
    settlement_id,
    visit,
    settled_at,
    fund,
    total=None,
    negotiated="0",
    reversal_of=None,
    patient="PK1",
    category="21",
):
    fund, negotiated = D(fund), D(negotiated)
    total = D(total) if total is not None else fund
    return (
        settlement_id,
        visit,
        patient,
        "310",
        category,
        settled_at,
        "I21.000",
        total,
        fund,
        D(0),
        D(0),
        total - fund,
        negotiated,
        reversal_of,
    )


def ts(y, m, d, hh=10):
    return dt.datetime(y, m, d, hh, 0, 0)


def _extract_files(hospital):
    """(night loaded, business_date, kind, rows) of one hospital: §8 January-February, the
    monthly claims of March-December, and files that arrive late or re-send corrections."""
    monthly_fund = "95000.00" if hospital == H1 else "110000.00"
    monthly_total = "100000.00" if hospital == H1 else "120000.00"
    files = [
        # S1 is first delivered with a wrong fund_paid and corrected by a re-send on 2025-07-10
        (
            "A",
            dt.date(2025, 1, 15),
            "claim",
            [claim("S1", "V1", ts(2025, 1, 15), "70000.00", "100000.00")],
        ),
        (
            "A",
            dt.date(2025, 1, 20),
            "claim",
            [
                claim(
                    "S2",
                    "V2",
                    ts(2025, 1, 20),
                    "40000.00",
                    "50000.00",
                    negotiated="5000.00",
                    patient="PK2",
                )
            ],
        ),
        # U1 is first delivered against the wrong visit and price; corrected on 2025-07-10
        (
            "A",
            dt.date(2025, 1, 10),
            "usage",
            [usage("U1", "V9", ts(2025, 1, 10), "2", "750.00")],
        ),
        (
            "A",
            dt.date(2025, 2, 5),
            "claim",
            [
                claim(
                    "S4",
                    "V2",
                    ts(2025, 2, 5),
                    "-40000.00",
                    "-50000.00",
                    negotiated="-5000.00",
                    reversal_of="S2",
                    patient="PK2",
                )
            ],
        ),
        (
            "A",
            dt.date(2025, 2, 10),
            "claim",
            [claim("S3", "V3", ts(2025, 2, 10), "60000.00", "70000.00")],
        ),
        # §8 reference price: two purchases delivered the same day and a use the next day (its
        # visit has no settlement, so no deduction)
        (
            "A",
            dt.date(2025, 6, 16),
            "purchase",
            [
                purchase("P3", dt.date(2025, 6, 16), "1", "700.00"),
                purchase("P4", dt.date(2025, 6, 16), "1", "737.50"),
            ],
        ),
        (
            "A",
            dt.date(2025, 6, 17),
            "usage",
            [usage("U2", "V99", ts(2025, 6, 17), "1", "750.00")],
        ),
        # U3 is untraceable until P1 arrives and must then be re-priced although it never changes
        (
            "A",
            dt.date(2025, 3, 1),
            "usage",
            [usage("U3", "V98", ts(2025, 3, 1), "1", "720.00")],
        ),
        # U4 is first charged to S3's visit (a deduction on S3), then moved to a visit without a
        # settlement: S3's deduction must go back to 0 although S3 never changes
        (
            "A",
            dt.date(2025, 2, 10),
            "usage",
            [usage("U4", "V3", ts(2025, 2, 10), "1", "800.00")],
        ),
        (
            "B",
            dt.date(2025, 7, 10),
            "usage",
            [usage("U4", "V98", ts(2025, 2, 10), "1", "800.00")],
        ),
        # M05 is first delivered with the wrong settlement date (05-20), corrected to 05-15
        (
            "B",
            dt.date(2025, 7, 10),
            "claim",
            [
                claim(
                    "M05",
                    "VM05",
                    ts(2025, 5, 15),
                    monthly_fund,
                    monthly_total,
                    patient="PK5",
                )
            ],
        ),
        # a late file: business date 2025-01-06 (before night A's as-of date) loaded only before
        # night B; U1 and U3 become traceable and must be re-priced
        (
            "B",
            dt.date(2025, 1, 6),
            "purchase",
            [
                purchase(
                    "P1", dt.date(2025, 1, 5), "10", "700.00", paid=dt.date(2025, 1, 20)
                )
            ],
        ),
        (
            "B",
            dt.date(2025, 7, 10),
            "claim",
            [claim("S1", "V1", ts(2025, 1, 15), "80000.00", "100000.00")],
        ),
        (
            "B",
            dt.date(2025, 7, 10),
            "usage",
            [usage("U1", "V1", ts(2025, 1, 10), "2", "800.00")],
        ),
        # §8 supplier payment: delivered on Sunday 2025-09-28 (an adjusted working day), unpaid
        (
            "B",
            dt.date(2025, 9, 28),
            "purchase",
            [purchase("P2", dt.date(2025, 9, 28), "5", "700.00", platform=False)],
        ),
        # loaded before night C but dated after its as-of date: must be ignored (no 2026 budget,
        # so counting it would fail the missing-budget check)
        (
            "C",
            dt.date(2026, 1, 5),
            "claim",
            [claim("S2026", "V2026", ts(2026, 1, 5), "1000.00")],
        ),
    ]
    for month in range(3, 13):
        day = dt.date(2025, month, 15)
        # July's file is loaded ahead, before night A (whose as-of date must ignore it)
        night = "A" if day <= A or month == 7 else "B" if day <= B else "C"
        settled = ts(2025, month, 20 if month == 5 else 15)
        files.append(
            (
                night,
                day,
                "claim",
                [
                    claim(
                        f"M{month:02d}",
                        f"VM{month:02d}",
                        settled,
                        monthly_fund,
                        monthly_total,
                        patient=f"PK{month}",
                    )
                ],
            )
        )
    return files


def _insert(cur, table, columns, rows, lineage):
    cols = list(lineage) + columns
    placeholders = ", ".join(["%s"] * len(cols))
    for i, row in enumerate(rows, start=1):
        values = [lineage[k] if k != "source_row" else i for k in lineage] + list(row)
        cur.execute(
            f"insert into {table} ({', '.join(cols)}) values ({placeholders})", values
        )


def _ledger(cur, kind, hospital, business_date, source_file, n) -> int:
    cur.execute(
        "insert into raw.load_ledger (file_kind, hospital_code, business_date, source_file, sha256,"
        " status, rows_read, rows_loaded) values (%s, %s, %s, %s, md5(random()::text), 'loaded', %s, %s)"
        " returning load_id",
        (kind, hospital, business_date, source_file, n, n),
    )
    return cur.fetchone()[0]


def load_reference(cur, names=tuple(REFERENCE)) -> None:
    for name in names:
        columns, rows = REFERENCE[name]
        lid = _ledger(
            cur, f"reference:{name}", None, None, f"reference/{name}.csv", len(rows)
        )
        _insert(
            cur, f"raw.ref_{name}", columns, rows, {"load_id": lid, "source_row": None}
        )


def load_night(cur, night: str) -> None:
    """The extract files the loader would have loaded before ``night``'s build."""
    columns = {"purchase": PURCHASE_COLS, "usage": USAGE_COLS, "claim": CLAIM_COLS}
    files = sorted(
        (day, kind, hospital, rows)
        for hospital in (H1, H2)
        for loaded, day, kind, rows in _extract_files(hospital)
        if loaded == night
    )
    for day, kind, hospital, rows in files:
        path = f"{day:%Y%m%d}/{hospital}/{kind}.csv"
        lid = _ledger(cur, kind, hospital, day, path, len(rows))
        _insert(
            cur,
            f"raw.{kind}",
            ["hospital_code", *columns[kind]],
            [(hospital, *r) for r in rows],
            {
                "load_id": lid,
                "business_date": day,
                "source_file": path,
                "source_row": None,
            },
        )


# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(warehouse, tmp_path_factory):
    """The dataset loaded and the four builds run; yields (connection, runs, url).

    Unit tests run in the last two builds only (they do not depend on the data)."""
    import os

    import psycopg2


    url = warehouse
    saved_target = os.environ.get("DBT_TARGET_PATH")
    os.environ["DBT_TARGET_PATH"] = str(
        tmp_path_factory.mktemp("dbt_target")
    )  # not the shared one
    conn = psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    reset_warehouse()
    runs = {}
    load_reference(cur)
    load_night(cur, "A")
    runs["A"] = transform.build(A, marts_schema="marts_build", url=url)
    load_night(cur, "B")
    load_reference(
        cur, ["fund_budgets"]
    )  # re-delivered snapshot: consumption recomputed
    runs["B"] = transform.build(B, marts_schema="marts", url=url)
    load_night(cur, "C")
    load_reference(cur, ["vbp_products"])  # re-delivered snapshot: every line re-priced
    runs["C_log"], runs["C"] = dbt_log_of(
        lambda: transform.build(C, marts_schema="marts_build", url=url, unit_tests=True))
    runs["check"] = transform.build(
        C, marts_schema="marts_check", url=url, full_refresh=True, unit_tests=True
    )
    yield conn, runs, url
    conn.close()
    if saved_target is None:
        os.environ.pop("DBT_TARGET_PATH", None)
    else:
        os.environ["DBT_TARGET_PATH"] = saved_target


def _rows(conn, sql, *params):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_unit_and_data_tests_ran(built):
    runs = built[1]
    statuses = runs["check"].statuses
    unit = [
        n
        for n in statuses
        if n.startswith(
            ("r1_", "r2_", "r3_", "r5_", "r6_", "r7_", "r8_", "r9_", "r10_")
            + tuple(f"r{n}_" for n in range(11, 23))
        )
    ]
    assert len(unit) >= 30, sorted(statuses)
    assert all(statuses[n] == "pass" for n in unit)
    assert statuses["assert_claims_have_fund_budget"] == "pass"


def test_monthly_settlement_worked_example(built):
    conn = built[0]
    rows = {
        r[0].month: r[1:]
        for r in _rows(
            conn,
            """
            select settlement_month, monthly_quota_amount, declared_amount, deduction_amount,
                   reasonable_amount, paid_amount, deferred_amount, negotiated_drug_amount
            from marts_build.fct_settlement_monthly
            where hospital_code = %s and insurance_type = '310' and budget_year = 2025
            order by settlement_month""",
            H1,
        )
    }
    assert sorted(rows) == list(range(1, 13))
    q = D("100000.00")
    assert rows[1] == (
        q,
        D("115000.00"),
        D("160.00"),
        D("114840.00"),
        D("100000.00"),
        D("14840.00"),
        D("5000.00"),
    )
    assert rows[2] == (
        q,
        D("25000.00"),
        D("0.00"),
        D("25000.00"),
        D("25000.00"),
        D("0.00"),
        D("-5000.00"),
    )
    for m in range(3, 13):
        assert rows[m] == (
            q,
            D("95000.00"),
            D("0.00"),
            D("95000.00"),
            D("95000.00"),
            D("0.00"),
            D("0.00"),
        )


def test_annual_settlement_both_branches(built):
    conn = built[0]
    got = {
        r[0]: r[1:]
        for r in _rows(
            conn,
            """
            select hospital_code, annual_budget_amount, reasonable_amount, monthly_paid_amount,
                   entitlement_amount, year_end_payment_amount
            from marts_build.fct_settlement_annual where settlement_year = 2025 and insurance_type = '310'""",
        )
    }
    assert got[H1] == (
        D("1200000.00"),
        D("1089840.00"),
        D("1075000.00"),
        D("1155936.00"),
        D("80936.00"),
    )
    assert got[H2] == (
        D("1200000.00"),
        D("1239840.00"),
        D("1125000.00"),
        D("1211952.00"),
        D("86952.00"),
    )


def test_budget_consumption_worked_example(built):
    conn = built[0]
    (row,) = _rows(
        conn,
        """
        select consumed_amount, consumption_rate, time_elapsed, pace, projected_year_end_amount, alert_level
        from marts_build.fct_budget_consumption
        where hospital_code = %s and insurance_type = '310' and as_of_date = '2025-01-31'""",
        H1,
    )
    assert row == (
        D("115000.00"),
        D("0.0958"),
        D("0.0849"),
        D("1.1284"),
        D("1354032.26"),
        "red",
    )
    (n_days,) = _rows(
        conn,
        """select count(*) from marts_build.fct_budget_consumption
                                where hospital_code = %s""",
        H1,
    )[0]
    assert n_days == 365


def test_supplier_payment_due_date_across_national_day(built):
    conn = built[0]
    (row,) = _rows(
        conn,
        """
        select due_date, payment_status, overdue_workdays from marts_build.fct_supplier_payment
        where hospital_code = %s and purchase_line_id = 'P2'""",
        H1,
    )
    assert row == (dt.date(2025, 11, 14), "overdue", 33)
    (paid,) = _rows(
        conn,
        """
        select payment_status, overdue_workdays from marts_build.fct_supplier_payment
        where hospital_code = %s and purchase_line_id = 'P1'""",
        H1,
    )
    assert paid == ("paid_on_time", 0)


def test_usage_pricing_reference_prices(built):
    conn = built[0]
    got = {
        r[0]: r[1:]
        for r in _rows(
            conn,
            """
            select usage_id, visit_id, reference_price, payment_standard_price, markup_excess_amount,
                   standard_excess_amount, unreasonable_excess_amount, is_untraceable
            from marts_build.fct_usage_pricing where hospital_code = %s""",
            H1,
        )
    }
    assert got["U1"] == (
        "V1",
        D("700.0000"),
        D("700.0000"),
        D("200.00"),
        D("200.00"),
        D("200.00"),
        False,
    )
    assert got["U2"] == (
        "V99",
        D("737.5000"),
        D("700.0000"),
        D("12.50"),
        D("50.00"),
        D("50.00"),
        False,
    )
    assert got["U3"] == (
        "V98",
        D("700.0000"),
        D("700.0000"),
        D("20.00"),
        D("20.00"),
        D("20.00"),
        False,
    )
    assert got["U4"] == (
        "V98",
        D("700.0000"),
        D("700.0000"),
        D("100.00"),
        D("100.00"),
        D("100.00"),
        False,
    )


def _assert_marts_equal(conn, built_schema, check_schema):
    for table in MART_TABLES:
        columns = [
            c
            for (c,) in _rows(
                conn,
                """
                select column_name from information_schema.columns
                where table_schema = %s and table_name = %s and column_name not like '\\_%%'
                order by ordinal_position""",
                check_schema,
                table,
            )
        ]
        assert columns, table
        cols = ", ".join(columns)
        diff = _rows(
            conn,
            f"""
            (select {cols} from {built_schema}.{table} except all select {cols} from {check_schema}.{table})
            union all
            (select {cols} from {check_schema}.{table} except all select {cols} from {built_schema}.{table})""",
        )
        assert diff == [], (
            f"{table}: incremental build differs from a full rebuild: {diff[:5]}"
        )


def test_incremental_builds_equal_full_rebuild(built):
    _assert_marts_equal(built[0], "marts_build", "marts_check")


def test_claims_city_gathers_no_audit_key_sets(built):
    """A city without fee lines: night C's incremental audit models do not gather key sets from the
    night's settlements for findings that nothing holds (macro audit_holds_none; ~0.5 s of every
    claims night on the 30 M-claim year, docs/scale-out.md §6). The marts still equal a full
    rebuild (test_incremental_builds_equal_full_rebuild)."""
    log = built[1]["C_log"]
    assert "int_audit_claim_rules: the re-settled visits not gathered" in log, log[-3000:]
    for name in ("touched_claim_visits", "touched_stays", "touched_settlements"):
        assert f"fct_audit_findings: key set {name} not gathered" in log, name


def test_procurement_compliance_agreed_volume(built):
    conn = built[0]
    (row,) = _rows(
        conn,
        """
        select agreed_qty, purchased_selected_qty, price_violation_count, compliance_status
        from marts_build.fct_procurement_compliance where hospital_code = %s""",
        H1,
    )
    # ceil(100 x 0.55) = 55 in exact decimals; bought 10 + 1 + 1 + 5; one line at 737.50
    assert row == (D(55), D("17.0000"), 1, "behind")


def test_build_back_in_time_falls_back_to_full_refresh(built):
    """Incremental targets hold rows through 2025-12-31: a build through 2025-09-30 cannot be
    incremental, so build() rebuilds from scratch (and months after September disappear)."""
    conn, _, url = built
    run = transform.build(B, marts_schema="marts_check", url=url)
    assert run.statuses["fct_usage_pricing"] == "success"
    months = _rows(
        conn, "select max(settlement_month) from marts_check.fct_settlement_monthly"
    )
    assert months == [(dt.date(2025, 9, 1),)]
    (consumed,) = _rows(
        conn,
        "select consumed_amount from marts_check.fct_budget_consumption"
        " where hospital_code = %s and as_of_date = (select max(as_of_date) from marts_check.fct_budget_consumption)",
        H1,
    )
    assert consumed == (D("805000.00"),)  # declared 115,000 + 25,000 + 7 x 95,000 through September


def test_uncovered_year_fails_the_build_naming_it(built):
    conn = built[0]
    with conn.cursor() as cur:
        day = dt.date(2027, 1, 4)
        lid = _ledger(cur, "purchase", H1, day, "x", 1)
        _insert(
            cur,
            "raw.purchase",
            ["hospital_code", *PURCHASE_COLS],
            [(H1, *purchase("P2027", day, "1", "700.00"))],
            {
                "load_id": lid,
                "business_date": day,
                "source_file": "x",
                "source_row": None,
            },
        )
        cur.execute("update raw.ref_vbp_batches set cycle_end = '2027-12-31'")
    try:
        with pytest.raises(transform.TransformError) as err:
            transform.run_dbt(
                [
                    "run",
                    "--select",
                    "stg_purchase_lines",
                    "int_vbp_purchases_in_cycle",
                    "int_vbp_purchase_lines_due",
                ],
                as_of=day,
                marts_schema="marts_check",
                url=built[2],
            )
        assert "int_vbp_purchase_lines_due" in str(err.value)
        assert "does not cover year(s) 2027" in str(err.value)
    finally:
        with conn.cursor() as cur:
            cur.execute("delete from raw.purchase where load_id = %s", (lid,))
            cur.execute("delete from raw.load_ledger where load_id = %s", (lid,))
            cur.execute("update raw.ref_vbp_batches set cycle_end = '2025-12-31'")


def test_late_reversal_of_a_deducted_settlement_rederives_exactly(built):
    """A reversal delivered late for an old settlement that carries an R6 deduction: the
    incremental night (fct_settlement_deduction reads only the re-classified settlements) drops
    that settlement's deduction row and re-derives every mart exactly as a full rebuild does."""
    conn, _, url = built
    # the back-in-time test rebuilt the shared intermediate tables through B: catch up to C
    transform.build(C, marts_schema="marts_build", url=url)
    deducted = _rows(
        conn,
        "select hospital_code, settlement_id, visit_id, fund_paid_amount, total_amount"
        " from marts_build.fct_settlement_deduction order by 1, 2",
    )
    assert deducted, "the dataset has a deducted settlement"
    hospital, sid, visit, fund, total = deducted[0]
    day = dt.date(2025, 12, 22)
    with conn.cursor() as cur:
        lid = _ledger(cur, "claim", hospital, day, "late/reversal.csv", 1)
        row = claim("SREV", visit, ts(2025, 12, 22), str(-fund), str(-total), reversal_of=sid)
        _insert(
            cur,
            "raw.claim",
            ["hospital_code", *CLAIM_COLS],
            [(hospital, *row)],
            {
                "load_id": lid,
                "business_date": day,
                "source_file": "late/reversal.csv",
                "source_row": None,
            },
        )
    run = transform.build(C, marts_schema="marts_build", url=url)
    assert run.statuses["fct_settlement_deduction"] == "success"
    after = _rows(
        conn,
        "select hospital_code, settlement_id from marts_build.fct_settlement_deduction",
    )
    assert (hospital, sid) not in after
    (reversed_,) = _rows(
        conn,
        "select is_reversed from intermediate.int_claims_with_deductions"
        " where hospital_code = %s and settlement_id = %s",
        hospital,
        sid,
    )
    assert reversed_ == (True,)
    transform.build(C, marts_schema="marts_check", url=url, full_refresh=True)
    _assert_marts_equal(conn, "marts_build", "marts_check")


def _quarter_totals_recomputed(conn):
    """R10's additive parts per hospital and quarter straight from int_claims_with_deductions
    (the definition, independent of the models that keep them by difference)."""
    return _rows(
        conn,
        """
        select claims.hospital_code, date_trunc('quarter', claims.settlement_date)::date,
               count(*), count(distinct claims.patient_key),
               count(*) filter (where coalesce(categories.is_inpatient, false)),
               sum(coalesce(claims.account_paid_amount, 0) + coalesce(claims.cash_paid_amount, 0)),
               sum(claims.total_amount)
        from intermediate.int_claims_with_deductions as claims
        left join seeds.code_medical_categories as categories
            on claims.medical_category_code = categories.medical_category_code
        where not claims.is_reversal and not claims.is_reversed and claims.settlement_date is not null
        group by 1, 2 order by 1, 2""",
    )


def _quarter_totals_kept(conn):
    return _rows(
        conn,
        """
        select hospital_code, quarter_start, settlement_count, patient_count,
               inpatient_settlement_count, personal_paid_amount, total_amount
        from intermediate.int_evaluation_quarter_totals
        where settlement_count > 0 order by 1, 2""",
    )


def _deliver(conn, kind, day, source, rows):
    """H1's rows of a ``kind`` extract (claim, usage, purchase) delivered on ``day`` as one ledger file."""
    columns = {"claim": CLAIM_COLS, "usage": USAGE_COLS, "purchase": PURCHASE_COLS}[kind]
    with conn.cursor() as cur:
        lid = _ledger(cur, kind, H1, day, source, len(rows))
        _insert(
            cur,
            f"raw.{kind}",
            ["hospital_code", *columns],
            [(H1, *r) for r in rows],
            {"load_id": lid, "business_date": day, "source_file": source, "source_row": None},
        )


def _deliver_claims(conn, day, source, rows):
    _deliver(conn, "claim", day, source, rows)


def test_quarter_patient_count_kept_by_difference(built):
    """R10's distinct patients are kept by difference (int_evaluation_quarter_totals): a new
    patient takes a quarter's count up by one (0 → 2 settlements, over two nights, the first of
    which built the settlements' contributions but not the totals), a refund of both of them takes
    it back down (2 → 0); a patient already counted neither adds one with a new settlement nor
    loses one when that settlement is refunded (their other settlements in the quarter count);
    the totals equal their definition after every night, a marts schema lagging behind catches
    up, and every mart equals a full rebuild."""
    conn, _, url = built
    transform.build(C, marts_schema="marts_build", url=url)  # catch up (earlier tests rebuilt through B)
    group = (H1, dt.date(2025, 10, 1))

    def kept(table="intermediate.int_evaluation_quarter_totals"):
        return _rows(
            conn,
            f"select settlement_count, patient_count from {table}"
            " where hospital_code = %s and quarter_start = %s",
            *group,
        )

    before = kept()
    assert before and before[0][0] > 0, "the dataset has settlements in H1 2025 Q4"
    # tables written before the watermark was recorded (macros/incremental.sql): no comment on
    # _batch_at, so each incremental model falls back once to max() of its lineage columns
    watermarked = '''
        select n.nspname, c.relname
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attname = '_batch_at'
        where c.relkind = 'r' and n.nspname in ('intermediate', 'marts_build')
          and col_description(c.oid, a.attnum) like %s order by 1, 2'''
    recorded = _rows(conn, watermarked, "%incremental watermark: {%")
    assert ("intermediate", "int_evaluation_quarter_totals") in recorded
    assert ("marts_build", "fct_evaluation_quarterly") in recorded
    with conn.cursor() as cur:
        for schema, table in recorded:
            cur.execute(f"comment on column {schema}.{table}._batch_at is null")
    (settlements, patients), = before

    # night 1: a new patient's first settlement; only the contributions are built (the totals'
    # build does not happen, e.g. skipped after a failed test)
    _deliver_claims(conn, dt.date(2025, 12, 10), "late/new_patient_1.csv",
                    [claim("SNEW1", "VNEW1", ts(2025, 12, 10), "300.00", patient="PNEW1")])
    transform.run_dbt(["run", "--select", "int_claims_with_deductions", "int_evaluation_settlements"],
                      as_of=C, marts_schema="marts_build", url=url)
    assert kept() == before
    # night 2: the same patient's second settlement, another patient's outpatient one, and one
    # more settlement of a patient the quarter already counts (the count does not move)
    (counted_patient,), = _rows(
        conn,
        "select min(claims.patient_key) from intermediate.int_evaluation_settlements as counted"
        " join intermediate.int_claims_with_deductions as claims using (hospital_code, settlement_id)"
        " where counted.hospital_code = %s and counted.quarter_start = %s", *group,
    )
    _deliver_claims(conn, dt.date(2025, 12, 11), "late/new_patient_2.csv",
                    [claim("SNEW2", "VNEW2", ts(2025, 12, 11), "200.00", patient="PNEW1"),
                     claim("SNEW3", "VNEW3", ts(2025, 12, 11), "50.00", patient="PNEW3", category="11"),
                     claim("SNEW4", "VNEW4", ts(2025, 12, 11), "80.00", patient=counted_patient, category="11")])
    transform.build(C, marts_schema="marts_build", url=url)
    assert _rows(conn, watermarked, "%incremental watermark: {%") == recorded  # recorded again
    assert kept() == [(settlements + 4, patients + 2)]
    assert _quarter_totals_kept(conn) == _quarter_totals_recomputed(conn)
    # night 3: both of PNEW1's settlements refunded (冲正): back to no settlement in the quarter;
    # the counted patient's new one refunded too: they keep their earlier settlements there
    _deliver_claims(conn, dt.date(2025, 12, 12), "late/refunds.csv",
                    [claim("SNEW1R", "VNEW1", ts(2025, 12, 12), "-300.00", reversal_of="SNEW1", patient="PNEW1"),
                     claim("SNEW2R", "VNEW2", ts(2025, 12, 12), "-200.00", reversal_of="SNEW2", patient="PNEW1"),
                     claim("SNEW4R", "VNEW4", ts(2025, 12, 12), "-80.00", reversal_of="SNEW4",
                           patient=counted_patient, category="11")])
    transform.build(C, marts_schema="marts_build", url=url)
    assert kept() == [(settlements + 1, patients + 1)]
    assert kept("marts_build.fct_evaluation_quarterly") == [(settlements + 1, patients + 1)]
    assert _quarter_totals_kept(conn) == _quarter_totals_recomputed(conn)
    # the other marts schema (built through B, two nights behind) catches up
    transform.build(C, marts_schema="marts", url=url)
    assert kept("marts.fct_evaluation_quarterly") == [(settlements + 1, patients + 1)]
    _assert_marts_equal(conn, "marts", "marts_build")
    transform.build(C, marts_schema="marts_check", url=url, full_refresh=True)
    _assert_marts_equal(conn, "marts_build", "marts_check")
    assert _quarter_totals_kept(conn) == _quarter_totals_recomputed(conn)


WINDOW_TYPES = "rule_type in ('daily_quantity', 'min_interval_days', 'repeat_exam')"
# model: its columns, what its comment records (the post-hook's predicate, its included columns),
# that predicate as PostgreSQL stores it
PARTIAL_INDEXES = {
    "int_claims_with_deductions": (
        "hospital_code, patient_key", "medical_category_code = '21'", "(medical_category_code = '21'::text)",
    ),
    "int_audit_rule_matches": (
        "patient_key, rule_id, charge_date", WINDOW_TYPES + " include (rule_type, severity, hospital_code, visit_id, quantity, days)",
        "(rule_type = ANY (ARRAY['daily_quantity'::text, 'min_interval_days'::text, 'repeat_exam'::text]))",
    ),
    "fct_audit_findings": (
        "patient_key, rule_id", WINDOW_TYPES,
        "(rule_type = ANY (ARRAY['daily_quantity'::text, 'min_interval_days'::text, 'repeat_exam'::text]))",
    ),
}


# fct_audit_findings' (hospital_code, visit_id) index: full before 2026-12-06 (fourth session), now
# partial to the findings the mart re-reads by touched visit (all but R11-R13, read by line)
MART_VISIT_INDEX = ("select pg_get_expr(indpred, indrelid) from pg_index where indrelid = %s::regclass"
                    " and pg_get_indexdef(indexrelid) like '%%USING btree (hospital_code, visit_id)%%'")
LINE_RULES = "intermediate.int_audit_line_rules"  # read by visit before 2026-12-06 (fourth session)
MART_VISIT_PREDICATE = ("((subject_type = 'fee_line'::text)"
                        " AND (rule_type <> ALL (ARRAY['sex'::text, 'age'::text, 'hospital_level'::text])))")


# the window rules' index of int_audit_rule_matches before 2026-12-05, on exactly these columns
EARLIER_MATCHES_INDEX = ("select pg_get_expr(indpred, indrelid) from pg_index where indrelid = %s::regclass"
                         " and pg_get_indexdef(indexrelid) like '%%USING btree (patient_key, rule_id)%%'")


def _indexes_on(conn, table, model):
    """(oid, predicate, comment) of each index of the table on the model's partial-index columns."""
    columns = PARTIAL_INDEXES[model][0]
    return _rows(
        conn,
        "select indexrelid::bigint, pg_get_expr(indpred, indrelid), obj_description(indexrelid, 'pg_class')"
        " from pg_index where indrelid = %s::regclass and pg_get_indexdef(indexrelid) like %s order by 1",
        table, f"%USING btree ({columns})%",
    )


def _assert_partial_index(conn, table, model) -> int:
    """The table has one index on the model's columns, partial to the current predicate, which
    its comment records with its included columns (macros/indexes.sql); returns its OID."""
    _, recorded, stored = PARTIAL_INDEXES[model]
    found = _indexes_on(conn, table, model)
    assert [p for _, p, _ in found] == [stored], (table, found)
    assert found[0][2] == f"yibao partial_index: {recorded}", (table, found)
    return found[0][0]


def _patient_indexes(conn, table) -> list[str]:
    """The column lists of the table's indexes that involve patient_key or hospital_patient."""
    return [d.split("USING btree ")[1] for (d,) in _rows(
        conn,
        "select pg_get_indexdef(indexrelid) from pg_index where indrelid = %s::regclass"
        " and pg_get_indexdef(indexrelid) like '%%patient%%' order by 1",
        table,
    )]


EVALUATION_PATIENT_INDEX = "(quarter_start, hospital_patient)"


def _drop_index(cur, oid) -> None:
    cur.execute("select %s::oid::regclass::text", (oid,))
    cur.execute(f"drop index {cur.fetchone()[0]}")


def test_upgrade_refreshes_only_the_tables_of_a_non_incremental_version(built):
    """The first night after an upgrade that made a model incremental: its table, written by the
    earlier table-materialised version, has no lineage columns. build() rebuilds that model alone
    with --full-refresh and runs the night again; the other incremental targets keep their rows
    (not rebuilt from scratch), and every mart equals a full rebuild. The same night replaces
    what earlier versions left of the post-hooks' partial indexes (macros/indexes.sql): the
    full (hospital_code, patient_key) index of int_claims_with_deductions, and a (patient_key,
    rule_id) index of int_audit_rule_matches partial to fewer window rule types, without a
    recorded predicate, each by one index partial to the current predicate, recorded in its
    comment; fct_audit_findings' index, unchanged, is kept (same OID), and its full (hospital_code,
    visit_id) index is replaced by one partial to all but R11-R13, and int_audit_line_rules' one
    dropped; a full refresh keeps them. int_evaluation_settlements keeps its (quarter_start,
    hospital_patient) index."""
    conn, _, url = built
    transform.build(C, marts_schema="marts_build", url=url)  # catch up (earlier tests rebuilt through B)
    icwd, matches, findings, evaluation = (
        "intermediate.int_claims_with_deductions", "intermediate.int_audit_rule_matches",
        "marts_build.fct_audit_findings", "intermediate.int_evaluation_settlements",
    )
    assert _patient_indexes(conn, evaluation) == [EVALUATION_PATIENT_INDEX]
    oids = {}
    for table in (icwd, matches, findings):
        [(oids[table], predicate, _)] = _indexes_on(conn, table, table.split(".")[1])
        assert predicate == PARTIAL_INDEXES[table.split(".")[1]][2], (table, predicate)
    with conn.cursor() as cur:  # what earlier versions left: a full index, another predicate unrecorded
        _drop_index(cur, oids[icwd])
        cur.execute("create index on intermediate.int_claims_with_deductions (hospital_code, patient_key)")
        _drop_index(cur, oids[matches])
        cur.execute("create index on intermediate.int_audit_rule_matches (patient_key, rule_id)"
                    " where rule_type in ('daily_quantity', 'min_interval_days')")
        assert _rows(conn, MART_VISIT_INDEX, findings) == [(MART_VISIT_PREDICATE,)]
        cur.execute(MART_VISIT_INDEX.replace("pg_get_expr(indpred, indrelid)", "indexrelid::regclass::text"),
                    (findings,))
        cur.execute(f"drop index {cur.fetchone()[0]}")
        cur.execute("create index on marts_build.fct_audit_findings (hospital_code, visit_id)")
        assert _rows(conn, MART_VISIT_INDEX, LINE_RULES) == []  # built without it
        cur.execute(f"create index on {LINE_RULES} (hospital_code, visit_id)")  # as earlier versions were
    assert _rows(conn, MART_VISIT_INDEX, findings) == [(None,)]
    assert _rows(conn, MART_VISIT_INDEX, LINE_RULES) == [(None,)]
    assert [(p, c) for _, p, c in _indexes_on(conn, icwd, "int_claims_with_deductions")] == [(None, None)]
    assert _rows(conn, EARLIER_MATCHES_INDEX, matches) == [
        ("(rule_type = ANY (ARRAY['daily_quantity'::text, 'min_interval_days'::text]))",)
    ]
    assert _indexes_on(conn, matches, "int_audit_rule_matches") == []
    # what the earlier version left: the same business columns, no lineage columns
    lineage = [c for (c,) in _rows(
        conn,
        "select column_name from information_schema.columns"
        " where table_schema = 'marts_build' and table_name = 'fct_usage_pricing' and column_name like '\\_%%'",
    )]
    assert "_batch_at" in lineage
    with conn.cursor() as cur:
        cur.execute("alter table marts_build.fct_usage_pricing "
                    + ", ".join(f"drop column {c}" for c in lineage))
    kept = "select count(*), min(_batch_at), max(_batch_at) from intermediate.int_claims_with_deductions"
    before = _rows(conn, kept)

    run = transform.build(C, marts_schema="marts_build", url=url)

    assert run.full_refreshed == ["fct_usage_pricing"]
    assert run.statuses["fct_usage_pricing"] == "success"
    # the refresh's own dbt run is kept with the night's (benchmarks count its time): it ran the stale model alone
    assert [[n.name for n in r.nodes] for r in run.refresh_runs] == [["fct_usage_pricing"]]
    assert run.model_seconds()["fct_usage_pricing"] > run.refresh_runs[0].nodes[0].seconds > 0
    assert "_batch_at" in [c for (c,) in _rows(
        conn,
        "select column_name from information_schema.columns"
        " where table_schema = 'marts_build' and table_name = 'fct_usage_pricing'",
    )]
    assert _rows(conn, kept) == before  # the rest of the night stayed incremental
    for table in (matches, icwd, findings):
        _assert_partial_index(conn, table, table.split(".")[1])
    assert _rows(conn, EARLIER_MATCHES_INDEX, matches) == []  # replaced by (patient_key, rule_id, charge_date)
    assert _patient_indexes(conn, evaluation) == [EVALUATION_PATIENT_INDEX]
    # fct_audit_findings' index, unchanged, was not rebuilt (its post-hook ran twice: the night ran
    # again after the refresh)
    assert _assert_partial_index(conn, findings, "fct_audit_findings") == oids[findings]
    assert _rows(conn, MART_VISIT_INDEX, findings) == [(MART_VISIT_PREDICATE,)]  # the full one replaced
    assert _rows(conn, MART_VISIT_INDEX, LINE_RULES) == []  # dropped: nothing reads it by visit
    assert transform.build(C, marts_schema="marts_check", url=url, full_refresh=True).full_refreshed == ["*"]
    _assert_marts_equal(conn, "marts_build", "marts_check")
    for table in (matches, icwd, "marts_check.fct_audit_findings"):
        _assert_partial_index(conn, table, table.split(".")[1])
    assert _patient_indexes(conn, evaluation) == [EVALUATION_PATIENT_INDEX]


def test_upgrade_adding_a_kept_column_refreshes_the_settlement_models_alone(built):
    """The first night after the upgrade that added _replaces_stored (the replace_stored strategy)
    finds int_claims_with_deductions and int_evaluation_settlements without it: each is rebuilt
    alone with --full-refresh (the second once the first is, being downstream of it), the night
    then runs incrementally, and the marts equal a full rebuild's."""
    conn, _, url = built
    transform.build(C, marts_schema="marts_build", url=url)  # catch up (earlier tests rebuilt through B)
    settlement_models = ["int_claims_with_deductions", "int_evaluation_settlements"]
    with conn.cursor() as cur:
        for model in settlement_models:
            cur.execute(f"alter table intermediate.{model} drop column _replaces_stored")

    run = transform.build(C, marts_schema="marts_build", url=url)

    assert run.full_refreshed == settlement_models
    assert [[n.name for n in r.nodes] for r in run.refresh_runs] == [[m] for m in settlement_models]
    for model in settlement_models:
        assert run.statuses[model] == "success"
        assert _rows(
            conn,
            "select count(*) from information_schema.columns where table_schema = 'intermediate'"
            " and table_name = %s and column_name = '_replaces_stored'",
            model,
        ) == [(1,)]
    assert transform.build(C, marts_schema="marts_check", url=url, full_refresh=True).full_refreshed == ["*"]
    _assert_marts_equal(conn, "marts_build", "marts_check")


def test_upgrade_to_the_hospital_patient_key_rebuilds_the_evaluation_settlements_alone(built):
    """The first night after the upgrade that keyed R10's patients by hospital_patient (a 16-byte
    uuid) finds int_evaluation_settlements as the earlier version wrote it: patient_key and
    _counted_patient_key (text) and a (hospital_code, quarter_start, patient_key) index. The model
    alone is rebuilt with --full-refresh, the quarter totals are then aggregated again (the counted
    contributions are unknown after a full build), the table has only the (quarter_start,
    hospital_patient) patient index, and the marts equal a full rebuild's."""
    conn, _, url = built
    transform.build(C, marts_schema="marts_build", url=url)  # catch up (earlier tests rebuilt through B)
    evaluation = "intermediate.int_evaluation_settlements"
    with conn.cursor() as cur:  # the earlier version's columns and index
        cur.execute(f"alter table {evaluation} drop column hospital_patient, drop column _counted_hospital_patient,"
                    " add column patient_key text, add column _counted_patient_key text")
        cur.execute(f"create index on {evaluation} (hospital_code, quarter_start, patient_key)")
    assert _patient_indexes(conn, evaluation) == ["(hospital_code, quarter_start, patient_key)"]
    icwd = "select count(*), min(_batch_at), max(_batch_at) from intermediate.int_claims_with_deductions"
    before = _rows(conn, icwd)

    run = transform.build(C, marts_schema="marts_build", url=url)

    assert run.full_refreshed == ["int_evaluation_settlements"]
    assert run.statuses["int_evaluation_quarter_totals"] == "success"
    assert _rows(conn, icwd) == before  # upstream stayed incremental
    assert _patient_indexes(conn, evaluation) == [EVALUATION_PATIENT_INDEX]
    (with_key,), = _rows(conn, "select count(*) from intermediate.int_claims_with_deductions where patient_key is not null")
    assert with_key > 0
    assert _rows(conn, "select count(*) from intermediate.int_evaluation_settlements as e"
                 " join intermediate.int_claims_with_deductions as c using (hospital_code, settlement_id)"
                 " where e.hospital_patient = md5(c.hospital_code || '/' || c.patient_key)::uuid") == [(with_key,)]
    assert transform.build(C, marts_schema="marts_check", url=url, full_refresh=True).full_refreshed == ["*"]
    _assert_marts_equal(conn, "marts_build", "marts_check")


def test_unchanged_settlement_is_not_rewritten(built):
    """int_claims_with_deductions re-classifies every settlement of a touched visit, but writes
    again only those whose re-derived values changed: S4 (the reversal of S2, visit V2) re-sent
    unchanged is written again (a new version), S2 (still reversed) is not, and neither is its
    day's row of int_settlement_daily_totals; every mart still equals a full rebuild."""
    conn, _, url = built
    transform.build(C, marts_schema="marts_build", url=url)  # catch up (earlier tests rebuilt through B)

    def batches():
        return dict(_rows(
            conn,
            "select settlement_id, _batch_at from intermediate.int_claims_with_deductions"
            " where hospital_code = %s and visit_id = 'V2'",
            H1,
        ))

    def day_batch():
        return _rows(
            conn,
            "select _batch_at, settlement_count, declared_amount from intermediate.int_settlement_daily_totals"
            " where hospital_code = %s and insurance_type_code = '310' and settlement_date = '2025-01-20'",
            H1,
        )

    before, day_before = batches(), day_batch()
    assert set(before) == {"S2", "S4"} and day_before
    _deliver_claims(conn, dt.date(2025, 12, 15), "late/resend_S4.csv",
                    [claim("S4", "V2", ts(2025, 2, 5), "-40000.00", "-50000.00", negotiated="-5000.00",
                           reversal_of="S2", patient="PK2")])
    transform.build(C, marts_schema="marts_build", url=url)
    after = batches()
    assert after["S4"] > before["S4"], "the re-sent settlement is written again"
    assert after["S2"] == before["S2"], "the unchanged settlement of the touched visit is not rewritten"
    assert day_batch() == day_before
    (reversed_,) = _rows(
        conn,
        "select is_reversed from intermediate.int_claims_with_deductions"
        " where hospital_code = %s and settlement_id = 'S2'",
        H1,
    )
    assert reversed_ == (True,)
    transform.build(C, marts_schema="marts_check", url=url, full_refresh=True)
    _assert_marts_equal(conn, "marts_build", "marts_check")


def test_purchase_resent_for_payment_reprices_nothing(built):
    """R1 re-prices the usage lines a changed purchase line can affect. A purchase line re-sent
    only to fill in its payment (P1, the reference of U1 and U3) changes no reference price: no
    line is re-priced, so none is rewritten (nor re-derived downstream). A re-send that corrects
    the unit price (P4, U2's reference) re-prices U2, and a second correction back re-prices it
    again; every mart equals a full rebuild after each."""
    conn, _, url = built
    transform.build(C, marts_schema="marts_build", url=url)  # catch up (earlier tests rebuilt through B)

    def priced():
        return {
            usage_id: (reference, batch_at)
            for usage_id, reference, batch_at in _rows(
                conn,
                "select usage_id, reference_price, _batch_at from intermediate.int_usage_priced_against_purchases"
                " where hospital_code = %s and usage_id in ('U1', 'U2', 'U3')",
                H1,
            )
        }

    before = priced()
    assert {u: r for u, (r, _) in before.items()} == {
        "U1": D("700.0000"), "U2": D("737.5000"), "U3": D("700.0000")}
    _deliver(conn, "purchase", dt.date(2025, 12, 16), "resend/purchase_paid.csv", [
        purchase("P1", dt.date(2025, 1, 5), "10", "700.00", paid=dt.date(2025, 12, 16)),
        purchase("P4", dt.date(2025, 6, 16), "1", "745.00", paid=dt.date(2025, 12, 16)),
    ])
    transform.build(C, marts_schema="marts_build", url=url)
    after = priced()
    assert after["U1"] == before["U1"] and after["U3"] == before["U3"], "a payment re-send re-prices nothing"
    assert after["U2"][0] == D("745.0000") and after["U2"][1] > before["U2"][1]
    transform.build(C, marts_schema="marts_check", url=url, full_refresh=True)
    _assert_marts_equal(conn, "marts_build", "marts_check")
    # the price corrected back: U2 is re-priced again (the full rebuild above rewrote every row)
    rebuilt = priced()
    _deliver(conn, "purchase", dt.date(2025, 12, 17), "resend/purchase_corrected.csv", [
        purchase("P4", dt.date(2025, 6, 16), "1", "737.50", paid=dt.date(2025, 12, 16)),
    ])
    transform.build(C, marts_schema="marts_build", url=url)
    again = priced()
    assert again["U2"][0] == D("737.5000") and again["U2"][1] > rebuilt["U2"][1]
    assert again["U1"] == rebuilt["U1"] and again["U3"] == rebuilt["U3"]
    transform.build(C, marts_schema="marts_check", url=url, full_refresh=True)
    _assert_marts_equal(conn, "marts_build", "marts_check")


def test_purchase_models_follow_a_moved_line(built):
    """int_purchase_reference_prices and fct_platform_purchasing_monthly are built by touched
    group, int_vbp_purchases_in_cycle by touched line: a night computes again the (hospital, code,
    date) and (hospital, month) groups of every version of the purchase lines it loaded, and
    matches those lines again. A new line P9 (another brand, November, off the platform) adds its
    groups; re-sent with another code and date (October) it leaves them, which are removed, not
    kept stale; re-sent as a return it sets no reference price, and its day's group is removed;
    re-sent with a code under no VBP batch it leaves batch B1. After each night the three tables
    equal a full rebuild, and a group or line no version of the night was ever in (P1's) is not
    rewritten."""
    conn, _, url = built
    transform.build(C, marts_schema="marts_build", url=url)  # catch up (earlier tests rebuilt through B)
    prices = ("select hospital_code, consumable_code, delivery_date, reference_price, reference_purchase_line_id"
              " from intermediate.int_purchase_reference_prices")
    months = ("select hospital_code, purchase_month, purchase_amount, off_platform_amount, purchase_line_count,"
              " off_platform_line_count, off_platform_share from marts_build.fct_platform_purchasing_monthly")
    cycle = ("select hospital_code, purchase_line_id, batch_id, product_group, consumable_code, quantity, unit_price,"
             " amount, selected_price, is_selected_product, is_price_violation, delivery_date, paid_date"
             " from intermediate.int_vbp_purchases_in_cycle")

    def p1_written():
        return _rows(
            conn,
            "select 'price', _batch_at from intermediate.int_purchase_reference_prices"
            " where hospital_code = %s and consumable_code = %s and delivery_date = %s"
            " union all select 'cycle', _batch_at from intermediate.int_vbp_purchases_in_cycle"
            " where hospital_code = %s and purchase_line_id = 'P1'",
            H1, STENT, dt.date(2025, 1, 5), H1)

    def night(day, rows, expect_prices, expect_months, expect_batches):
        before = p1_written()
        _deliver(conn, "purchase", day, f"moved/purchase_{day:%m%d}.csv", rows)
        transform.build(C, marts_schema="marts_build", url=url)
        assert p1_written() == before and len(before) == 2, "a group or line untouched tonight is not rewritten"
        incremental = {q: sorted(_rows(conn, q), key=repr) for q in (prices, cycle)}
        assert {(code, d) for (_, code, d, _, line) in incremental[prices] if line == "P9"} == expect_prices
        got = {month for (_, month, *_rest) in _rows(conn, months)}
        assert got & {dt.date(2025, 10, 1), dt.date(2025, 11, 1)} == expect_months
        assert [batch for (_, line, batch, *_rest) in incremental[cycle] if line == "P9"] == expect_batches
        transform.build(C, marts_schema="marts_check", url=url, full_refresh=True)
        assert {q: sorted(_rows(conn, q), key=repr) for q in (prices, cycle)} == incremental
        _assert_marts_equal(conn, "marts_build", "marts_check")

    november, october = dt.date(2025, 11, 20), dt.date(2025, 10, 7)
    night(dt.date(2025, 12, 18), [purchase("P9", november, "2", "650.00", code=STENT_OTHER, platform=False)],
          {(STENT_OTHER, november)}, {dt.date(2025, 11, 1)}, ["B1"])
    night(dt.date(2025, 12, 19), [purchase("P9", october, "2", "650.00", platform=False)],
          {(STENT, october)}, {dt.date(2025, 10, 1)}, ["B1"])
    night(dt.date(2025, 12, 22), [purchase("P9", october, "-2", "650.00", platform=False)],
          set(), {dt.date(2025, 10, 1)}, ["B1"])
    night(dt.date(2025, 12, 23), [purchase("P9", october, "-2", "650.00", code="C0303011234567800000", platform=False)],
          set(), {dt.date(2025, 10, 1)}, [])


R9_MODELS = {
    "int_surgery_consumable_costs": (
        "hospital_code, surgery_id, visit_id, principal_diagnosis_code, period_month, line_count,"
        " net_charge_amount"
    ),
    "int_surgery_cost_groups": (
        "principal_diagnosis_code, period_month, group_size, median_charge_amount, threshold_amount"
    ),
    "int_doctor_brand_shares": (
        "hospital_code, doctor_code, period_month, category_prefix, top_brand_code, brand_count,"
        " net_quantity, top_brand_quantity, top_brand_share"
    ),
}


def _deliver_usage(conn, day, source, rows):
    _deliver(conn, "usage", day, source, rows)


def _r9_rows(conn, model):
    return sorted(_rows(conn, f"select {R9_MODELS[model]} from intermediate.{model}"), key=repr)


def test_r9_late_lines_rederive_the_touched_surgeries_and_months_only(built):
    """R9 is incremental: the surgery costs by surgery, the brand shares by month. Night 1
    delivers (late, in December) seven March surgeries of one diagnosis and their settlements, one
    in May and one in June: SR6 (400.00) is above 3 x the median (100.00) and the doctor's March is
    100% one brand. Night 2 delivers a refund of half of SR6, a line of another brand, a correction
    moving SR5's line to April, one moving SR8's line from May to April (May is touched only by
    where that line was before) and one moving UR4 from SR4 to SR3 (SR4 is touched only by that
    line's earlier version: it has no line left and leaves the table); SR9's settlement is re-sent
    on another visit (SR9 has no effective settlement any more and leaves the table too). March
    has five surgeries (median 100.00), SR6 at 200.00 no longer alerts. Only the touched surgeries
    are rewritten (the others keep their _batch_at, SR1, SR2 and SR10 of March's group too), only
    March, April and May of the brand shares; the R9 tables and every mart equal a full rebuild."""
    conn, _, url = built
    march, april, may = dt.date(2025, 3, 1), dt.date(2025, 4, 1), dt.date(2025, 5, 1)
    doctor = "D410702000001"
    march_surgeries = [1, 2, 3, 4, 5, 6, 10]

    def alerts():
        return _rows(
            conn,
            "select alert_type, subject_id, period_month from marts_build.fct_abnormal_use_alerts"
            " where hospital_code = %s and period_month in (%s, %s) order by 1, 2",
            H1, march, april,
        )

    def month_batches():
        return dict(_rows(
            conn,
            "select period_month, max(_batch_at) from intermediate.int_doctor_brand_shares group by 1",
        ))

    def surgery_batches():
        return {
            (h, s): b
            for h, s, b in _rows(
                conn, "select hospital_code, surgery_id, _batch_at from intermediate.int_surgery_consumable_costs"
            )
        }

    def costs():
        return {r[1]: r for r in _r9_rows(conn, "int_surgery_consumable_costs") if r[0] == H1 and r[1].startswith("SR")}

    def group(diagnosis, month):
        return _rows(
            conn,
            "select group_size, median_charge_amount from intermediate.int_surgery_cost_groups"
            " where principal_diagnosis_code = %s and period_month = %s",
            diagnosis, month,
        )

    # night 1: March surgeries used in 2025, delivered late (business date in December)
    _deliver_claims(conn, dt.date(2025, 12, 15), "late/r9_claims.csv", [
        claim(f"SR{k}", f"VR{k}", ts(2025, 3, 12), "100.00", patient=f"PR{k}") for k in march_surgeries
    ] + [claim("SR8", "VR8", ts(2025, 5, 12), "100.00", patient="PR8"),
         claim("SR9", "VR9", ts(2025, 6, 12), "100.00", patient="PR9")])
    _deliver_usage(conn, dt.date(2025, 12, 15), "late/r9_usage.csv", [
        usage(f"UR{k}", f"VR{k}", ts(2025, 3, 11), "2", "200.00" if k == 6 else "50.00",
              patient=f"PR{k}", surgery=f"SR{k}")
        for k in march_surgeries
    ] + [usage("UR8", "VR8", ts(2025, 5, 11), "2", "50.00", patient="PR8", surgery="SR8"),
         usage("UR9", "VR9", ts(2025, 6, 11), "2", "50.00", patient="PR9", surgery="SR9")])
    transform.build(C, marts_schema="marts_build", url=url)
    before = costs()
    assert before["SR8"][2:5] == ("VR8", "I21.000", may) and "SR9" in before and "SR4" in before
    assert before["SR6"][6] == D("400.00")
    assert group("I21.000", march) == [(7, D("100.0000"))]
    assert alerts() == [("single_brand", doctor, march), ("surgery_cost", "SR6", march)]
    months_before, surgeries_before = month_batches(), surgery_batches()
    assert len(months_before) > 2, "the dataset has brand shares in months other than March and April"
    untouched = {k: b for k, b in surgeries_before.items() if k[1] in ("SR1", "SR2", "SR10")}
    assert len(untouched) == 3

    # night 2: a refund of half of SR6, a line of another brand, SR5's and SR8's lines moved to
    # April, UR4 moved from SR4 to SR3; SR9's settlement re-sent on another visit
    _deliver_usage(conn, dt.date(2025, 12, 16), "late/r9_usage_2.csv", [
        usage("UR6R", "VR6", ts(2025, 3, 13), "-1", "200.00", patient="PR6", surgery="SR6"),
        usage("UR7", "VR7", ts(2025, 3, 13), "4", "1.00", code=STENT_OTHER, patient="PR7"),
        usage("UR5", "VR5", ts(2025, 4, 2), "2", "50.00", patient="PR5", surgery="SR5"),
        usage("UR8", "VR8", ts(2025, 4, 3), "2", "50.00", patient="PR8", surgery="SR8"),
        usage("UR4", "VR4", ts(2025, 3, 11), "2", "50.00", patient="PR4", surgery="SR3"),
    ])
    _deliver_claims(conn, dt.date(2025, 12, 16), "late/r9_claims_2.csv",
                    [claim("SR9", "VR9B", ts(2025, 6, 12), "100.00", patient="PR9")])
    transform.build(C, marts_schema="marts_build", url=url)
    assert alerts() == []
    months_after, surgeries_after = month_batches(), surgery_batches()
    changed = {m for m in set(months_after) | set(months_before) if months_after.get(m) != months_before.get(m)}
    assert changed == {march, april, may}
    rewritten = {k[1] for k in surgeries_after if k in surgeries_before and surgeries_after[k] != surgeries_before[k]}
    assert rewritten == {"SR3", "SR5", "SR6", "SR8"}, "only the touched surgeries are written"
    assert {k[1] for k in set(surgeries_before) - set(surgeries_after)} == {"SR4", "SR9"}
    assert all(surgeries_after[k] == b for k, b in untouched.items())
    assert set(surgeries_after) - set(surgeries_before) == set()
    after = costs()
    assert after["SR5"][4] == april and after["SR8"][4] == april
    assert after["SR3"][5:7] == (2, D("200.00")) and after["SR6"][5:7] == (2, D("200.00"))
    assert group("I21.000", march) == [(5, D("100.0000"))]

    incremental = {m: _r9_rows(conn, m) for m in R9_MODELS}
    transform.build(C, marts_schema="marts_check", url=url, full_refresh=True)
    for model, rows in incremental.items():
        assert rows == _r9_rows(conn, model), f"{model}: incremental build differs from a full rebuild"
    _assert_marts_equal(conn, "marts_build", "marts_check")


def test_night_rows_are_analysed_by_batch_at_only_once_the_table_has_statistics(built):
    """int_claims_with_deductions' post-hook (macro analyze_night_rows): a table built from scratch
    is analysed whole (every column has statistics); an incremental build analyses `_batch_at`
    alone (statistics target 10), so the planner learns of the night's batch without a whole-table
    ANALYZE every night. The table is small enough for ANALYZE to read every row, so a column it
    analyses sees the night's settlement: `_batch_at` gains a distinct value, `settlement_id`'s
    statistics stay as they were. (Placed before the budget test, which must run last.)"""
    conn, _, url = built
    table = "schemaname = 'intermediate' and tablename = 'int_claims_with_deductions'"

    def column_stats(column):
        return _rows(conn, "select null_frac, n_distinct, most_common_vals::text, histogram_bounds::text"
                     f" from pg_stats where {table} and attname = %s", column)

    (target,) = _rows(conn, "select attstattarget from pg_attribute"
                      " where attrelid = 'intermediate.int_claims_with_deductions'::regclass and attname = '_batch_at'")
    assert target == (10,)
    analysed = {c for (c,) in _rows(conn, f"select attname from pg_stats where {table}")}
    assert {"settlement_id", "visit_id", "patient_key", "deduction_amount", "_batch_at"} <= analysed
    ((_, batches_before, _, _),) = column_stats("_batch_at")
    settlements_before = column_stats("settlement_id")

    with conn.cursor() as cur:  # a night of one settlement (insurance type 310: budgeted)
        day = dt.date(2025, 12, 21)
        lid = _ledger(cur, "claim", H1, day, "late/analyse_claim.csv", 1)
        _insert(cur, "raw.claim", ["hospital_code", *CLAIM_COLS],
                [(H1, *claim("S391", "V391", ts(2025, 12, 21), "300.00"))],
                {"load_id": lid, "business_date": day, "source_file": "late/analyse_claim.csv",
                 "source_row": None})
    transform.run_dbt(["run", "--select", "stg_claims", "int_claims_with_deductions"],
                      as_of=C, marts_schema="marts_check", url=url)
    assert _rows(conn, "select count(*) from intermediate.int_claims_with_deductions"
                 " where settlement_id = 'S391'") == [(1,)]
    ((_, batches_after, _, _),) = column_stats("_batch_at")
    assert (batches_before, batches_after) == (1, 2), "the full rebuild wrote one batch, the night a second"
    assert column_stats("settlement_id") == settlements_before, "only _batch_at was analysed"


def test_a_table_built_from_scratch_is_analysed_in_its_build(built):
    """`create table as` leaves a table without statistics until autovacuum analyses it, minutes
    later on a big one; the planner then guesses, and the night after a 30 M-claim catch-up read
    int_evaluation_settlements whole for a handful of rows (docs/scale-out.md §6). Every
    incremental model is analysed by its own build when it has no statistics (macro
    record_incremental_watermark), so the models after it in the same build plan with its size."""
    conn, _, url = built
    models = ["int_evaluation_settlements", "int_evaluation_quarter_totals"]

    def analysed():
        return {t for (t,) in _rows(conn, "select distinct tablename from pg_stats"
                                    " where schemaname = 'intermediate' and tablename = any(%s)", models)}

    transform.run_dbt(["run", "--full-refresh", "--select", *models], as_of=C, marts_schema="marts_check", url=url)
    assert analysed() == set(models)


def test_the_marts_last_build_is_estimated_as_one_night_of_a_year(built):
    """The data tests of fct_usage_pricing, fct_budget_consumption and fct_load_summary read their
    last build (`where: _batch_at = (select max(_batch_at) ...)`). With the statistics of a table
    built in one batch (a catch-up, here the full refresh of marts_check) the planner took that
    filter for the whole table and every test read it whole: six sequential scans of
    fct_usage_pricing on the 30 M-claim year. Their post-hook (macro last_batch_statistics) tells
    PostgreSQL that `_batch_at` has a year of nights, so the filter is estimated at a night's rows."""
    conn = built[0]
    for mart in ("fct_usage_pricing", "fct_budget_consumption", "fct_load_summary"):
        table = f"marts_check.{mart}"
        ((rows,),) = _rows(conn, f"select count(*) from {table}")
        assert rows >= 8, f"{mart}: too few rows to tell the estimates apart"
        assert _rows(conn, "select n_distinct from pg_stats where schemaname = 'marts_check'"
                     " and tablename = %s and attname = '_batch_at'", mart) == [(365,)]
        ((plan,),) = _rows(conn, f"explain (format json) select * from {table}"
                           f" where _batch_at = (select max(_batch_at) from {table})")
        estimated = plan[0]["Plan"]["Plan Rows"]
        assert estimated <= max(1, rows // 365 + 1), f"{mart}: {estimated} rows estimated of {rows}"


def test_claims_without_budget_fail_the_build(built):
    """R7: a month with claims but no budget row is an error surfaced by the checks (runs last:
    it leaves an unbudgeted settlement in the intermediate tables)."""
    conn = built[0]
    with conn.cursor() as cur:
        day = dt.date(2025, 12, 20)
        lid = _ledger(cur, "claim", H1, day, "late/claim.csv", 1)
        row = list(claim("S390", "V390", ts(2025, 12, 20), "500.00"))
        row[CLAIM_COLS.index("insurance_type")] = "390"
        _insert(
            cur,
            "raw.claim",
            ["hospital_code", *CLAIM_COLS],
            [(H1, *row)],
            {
                "load_id": lid,
                "business_date": day,
                "source_file": "late/claim.csv",
                "source_row": None,
            },
        )
    with pytest.raises(transform.TransformError) as err:
        transform.run_dbt(
            [
                "build",
                "--select",
                "stg_claims",
                "int_claims_with_deductions",
                "int_settlement_daily_totals",
                "assert_claims_have_fund_budget",
                "--exclude",
                "test_type:unit",
            ],
            as_of=C,
            marts_schema="marts_check",
            url=built[2],
        )
    assert [f.name for f in err.value.failures] == ["assert_claims_have_fund_budget"]
    assert err.value.failures[0].status == "fail"


def test_pre_hook_temporary_tables_are_analysed_from_a_small_sample(built):
    """A pre-hook hands the night's rows or the touched keys to its model as an analysed temporary
    table (macro analysed_temp_table). The planner needs its size and its columns' null and
    distinct fractions, not a 100-value histogram of every column: the default target sampled
    30,000 rows (0.15 s for a night's 78k settlements, 0.16-0.18 s for the findings mart's 154k-211k
    rows on a 1 M-line night) where 3,000 do. The lower target is local to that ANALYZE: the
    session's default is back afterwards (the models' own tables keep theirs)."""
    conn, _runs, url = built
    sql = render_sql(url, "{{ analysed_temp_table('sample_check', 'select g, g % 7 as k from generate_series(1, 50000) as g') }}", C)
    with conn.cursor() as cur:
        cur.execute("show default_statistics_target")
        (before,) = cur.fetchone()
        cur.execute("begin")  # as in a model's transaction (the fixture's connection autocommits)
        try:
            _check_sample_statistics(cur, sql, before)
        finally:
            cur.execute("rollback")


def _probe_check_target(cur, settlement_id: str) -> None:
    """probe_check.target: 20,000 settlements of three hospitals, numbered g = 1..20000 as the SQL
    expression settlement_id of g says, amount g, under the unique index target_key."""
    cur.execute("drop schema if exists probe_check cascade; create schema probe_check")
    cur.execute("create table probe_check.target as select 'H' || (g % 3) as hospital_code,"
                f" {settlement_id} as settlement_id, g::numeric as amount from generate_series(1, 20000) as g")
    cur.execute("create unique index target_key on probe_check.target (hospital_code, settlement_id)")
    cur.execute("analyze probe_check.target")


def _probed_delete_insert(url: str, night: str) -> str:
    """The SQL of strategy delete_insert_probed for probe_check.target and the night's table."""
    return render_sql(url, (
        "{%- set t = api.Relation.create(database=target.database, schema='probe_check', identifier='target') -%}"
        "{%- set n = api.Relation.create(database=target.database, schema='probe_check', identifier='" + night + "') -%}"
        "{{ get_incremental_delete_insert_probed_sql({'target_relation': t, 'temp_relation': n,"
        " 'unique_key': ['hospital_code', 'settlement_id'], 'dest_columns': adapter.get_columns_in_relation(t),"
        " 'incremental_predicates': none}) }}"), C)


def test_delete_insert_probes_the_stored_rows_of_a_small_night(built):
    """Strategy delete_insert_probed (the marts and intermediate models that replace rows by key):
    a night of at most 5 % of the table's rows deletes the stored versions through the key's index
    (a probe per key, then a TID scan), where dbt's delete+insert, planned as a semi-join, hashed
    the night against a sequential scan of the whole target (fct_settlement_deduction: 1.27 M rows
    read to replace 45.8k, a scan that grows with every night of history). A bigger night (a
    catch-up) keeps dbt's delete. Either way the rows left are dbt's: each key of the night
    replaced, new keys added, the rest untouched."""
    conn, _runs, url = built
    with conn.cursor() as cur:
        _probe_check_target(cur, "'S' || g")
        # a small night: 900 stored settlements re-sent, 100 new; a catch-up: 2,000 re-sent
        cur.execute("create table probe_check.small as select 'H' || (g % 3) as hospital_code, 'S' || g as settlement_id,"
                    " -g::numeric as amount from generate_series(19101, 20100) as g")
        cur.execute("create table probe_check.large as select 'H' || (g % 3) as hospital_code, 'S' || g as settlement_id,"
                    " -g::numeric as amount from generate_series(1, 2000) as g")
        cur.execute("analyze probe_check.small; analyze probe_check.large")
        try:
            small = _probed_delete_insert(url, "small")
            large = _probed_delete_insert(url, "large")
            assert "ctid = any" in small and "ctid = any" not in large
            delete = small.split(";")[0]
            cur.execute("explain (costs off) " + delete)
            plan = "\n".join(r[0] for r in cur.fetchall())
            assert "Tid Scan on target" in plan and "Seq Scan on target" not in plan, plan
            # what the probes replace: dbt's own delete hashes this night against the whole target
            cur.execute("explain (costs off) delete from probe_check.target where (hospital_code, settlement_id) in"
                        " (select distinct hospital_code, settlement_id from probe_check.small)")
            assert "Seq Scan on target" in "\n".join(r[0] for r in cur.fetchall())
            for sql, first, last in ((small, 19101, 20100), (large, 1, 2000)):
                cur.execute("begin")
                try:
                    cur.execute(sql)
                    cur.execute("select count(*), count(*) filter (where amount < 0), sum(amount) filter (where amount > 0),"
                                " count(distinct (hospital_code, settlement_id)) from probe_check.target")
                    kept = sum(g for g in range(1, 20001) if not first <= g <= last)
                    assert cur.fetchone() == (max(last, 20000), last - first + 1, kept, max(last, 20000))
                finally:
                    cur.execute("rollback")
        finally:
            cur.execute("drop schema probe_check cascade")


def _probe_loops(plan: dict, index: str) -> list[int]:
    """The actual loops of every scan of `index` in an EXPLAIN (ANALYZE, FORMAT JSON) plan tree
    that looks a key up (an equality on its last key column; not the bound's backward scan)."""
    found = []
    if plan.get("Index Name") == index and "=" in plan.get("Index Cond", "") and plan.get("Scan Direction") != "Backward":
        found.append(plan["Actual Loops"])
    for child in plan.get("Plans", []):
        found += _probe_loops(child, index)
    return found


def test_probes_skip_the_keys_after_every_stored_key(built):
    """A night's keys are mostly new, and a HIS numbers its settlements, visits and lines in order:
    the new keys sort after every key stored before in their hospital and numbering. The probes of
    the night's keys (probed_delete here; int_claims_with_deductions' and int_evaluation_settlements'
    probes of the stored settlements, the audit's stored reads by visit) descend a year-sized index
    for nothing. Each probe is now gated by the greatest stored key of its hospital and stream, the
    key's first three characters (macros stored_key_bounds, below_stored_max: one backward index
    scan per stream): a key above it is not looked up. Two numberings per hospital here, as the
    outpatient visits MZ… and the inpatient stays ZY… of the generator: a new MZ key sorts below the
    hospital's greatest ZY key, and only its stream's bound skips it. In a collation that is not
    known to compare byte by byte (any libc locale but C and POSIX, e.g. C.utf8) a stream's values
    need not be one range of the index: the bound is the hospital's, and the new MZ keys are probed. Keys that are not serial numbers
    (md5 here: more than 16 streams a hospital in the night) are probed without bounds. Exact in any
    case: keys that sort among the stored ones are probed, and the rows left are the same."""
    conn, _runs, url = built
    key = "case when g % 2 = 0 then 'MZ' else 'ZY' end || lpad(g::text, 8, '0')"
    with conn.cursor() as cur:
        cur.execute("select collname from pg_collation where collprovider = 'c' and collcollate not in ('C', 'POSIX')"
                    " and collencoding in (-1, 6) order by collname limit 1")
        other = cur.fetchone()
        for collation, new_probed in (("C", 0), (other[0] if other else None, 350)):
            if collation is None:
                pytest.skip("this PostgreSQL knows no libc collation but C and POSIX: the bound per hospital is untested")
            collate = f' collate "{collation}"'
            # serial numbers, as a HIS writes them: MZ or ZY + 8 digits, per hospital in order
            _probe_check_target(cur, f"({key}){collate}")
            # 300 stored settlements re-sent (some old, some recent) and 700 new ones (350 MZ, 350 ZY);
            # then a night whose new keys sort among the stored ones (another numbering: every key probed)
            cur.execute("create table probe_check.serial as select 'H' || (g % 3) as hospital_code,"
                        f" ({key}){collate} as settlement_id, -g::numeric as amount"
                        " from generate_series(1, 19800) as g where g % 99 = 0"
                        f" union all select 'H' || (g % 3), ({key}){collate}, -g::numeric"
                        " from generate_series(19901, 20700) as g")
            cur.execute("create table probe_check.interleaved as select 'H' || (g % 3) as hospital_code,"
                        f" ({key} || 'X'){collate} as settlement_id, -g::numeric as amount"
                        " from generate_series(1, 1000) as g")
            # keys that are not serial numbers: more than 16 streams a hospital, probed without bounds
            cur.execute("create table probe_check.random as select 'H' || (g % 3) as hospital_code,"
                        f" md5(g::text){collate} as settlement_id, -g::numeric as amount"
                        " from generate_series(1, 1000) as g")
            cur.execute("analyze probe_check.serial; analyze probe_check.interleaved; analyze probe_check.random")
            try:
                cur.execute("select count(*), count(target.settlement_id) from probe_check.serial"
                            " left join probe_check.target using (hospital_code, settlement_id)")
                night, stored_keys = cur.fetchone()
                assert (night, stored_keys) == (1000, 300)
                for table, probed, deleted in (("serial", stored_keys + new_probed, stored_keys), ("interleaved", 1000, 0),
                                               ("random", 1000, 0)):
                    delete = _probed_delete_insert(url, table).split(";")[0]
                    assert "ctid = any" in delete
                    cur.execute("begin")
                    try:
                        cur.execute("explain (analyze, format json) " + delete)
                        plan = cur.fetchone()[0][0]["Plan"]
                        assert sum(_probe_loops(plan, "target_key")) == probed, (collation, table, plan)
                        cur.execute("select count(*) from probe_check.target")
                        assert cur.fetchone() == (20000 - deleted,)
                    finally:
                        cur.execute("rollback")
            finally:
                cur.execute("drop schema probe_check cascade")


def _check_sample_statistics(cur, sql: str, default_target: str) -> None:
    cur.execute(sql)
    cur.execute("select reltuples from pg_class where oid = 'pg_temp.sample_check'::regclass")
    assert cur.fetchone() == (50000,)
    cur.execute("select attname, n_distinct, cardinality(histogram_bounds::text::text[]) from pg_stats"
                " where tablename = 'sample_check' order by attname")
    (g, g_distinct, g_bounds), (k, k_distinct, _) = cur.fetchall()
    assert (g, k) == ("g", "k")
    assert g_bounds <= 11, f"{g_bounds} histogram bounds: analysed at the default target, not 10"
    assert g_distinct == -1 and k_distinct == 7  # a unique column and a 7-value one still told apart
    cur.execute("show default_statistics_target")
    assert cur.fetchone() == (default_target,)
