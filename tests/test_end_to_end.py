"""End to end through the real Airflow DAG on the embedded PostgreSQL: the worked example of docs/worked-example.md.

Every figure asserted here is computed by hand in docs/worked-example.md.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
from decimal import Decimal
from pathlib import Path

import pytest

from yibao import db

pytestmark = pytest.mark.xdist_group("e2e")

FIXTURES = Path(__file__).parent / "fixtures"
HOSP = "H41070200001"
D = Decimal
ID_SHAPE = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9A-Za-z])"
)


def _query(sql: str, params=()) -> list[tuple]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _snapshot() -> dict[str, int]:
    tables = _query(
        "select table_schema, table_name from information_schema.tables"
        " where table_schema in ('raw', 'marts') and table_type = 'BASE TABLE'"
        " and table_name <> 'landing_walk' order by 1, 2"  # the loader's log: a row per load step
    )
    return {f"{s}.{t}": _query(f'select count(*) from {s}."{t}"')[0][0] for s, t in tables}


@pytest.fixture(scope="module")
def worked_example(module_warehouse, tmp_path_factory):
    from yibao.orchestrate import run_dag

    spec = importlib.util.spec_from_file_location("we", FIXTURES / "make_worked_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    landing = tmp_path_factory.mktemp("we") / "landing"
    mod.main(landing)

    def run(through: dt.date) -> None:
        run_dag("nightly_ingest", through, {"landing": str(landing), "through": through.isoformat()}, landing=landing)

    # night 1: January only
    run(dt.date(2025, 1, 31))
    january = _query(
        "select as_of_date, consumed_amount, consumption_rate, time_elapsed, pace, projected_year_end_amount,"
        " alert_level from marts.fct_budget_consumption where as_of_date = (select max(as_of_date) from"
        " marts.fct_budget_consumption)"
    )
    # night 2 catches up every later folder; night 2 again must change nothing
    run(dt.date(2026, 1, 5))
    first = _snapshot()
    run(dt.date(2026, 1, 5))
    return {"landing": landing, "january": january, "first": first, "second": _snapshot()}


def test_first_night_publishes_january(worked_example):
    assert worked_example["january"] == [
        (dt.date(2025, 1, 31), D("115000.00"), D("0.0958"), D("0.0849"), D("1.1284"), D("1354032.26"), "red")
    ]


def test_monthly_settlement_matches_the_worked_example(worked_example):
    rows = _query(
        "select settlement_month, monthly_quota_amount, declared_amount, deduction_amount, reasonable_amount,"
        " paid_amount, deferred_amount, negotiated_drug_amount from marts.fct_settlement_monthly"
        " where hospital_code = %s and insurance_type = '310' order by settlement_month",
        (HOSP,),
    )
    assert [r[0] for r in rows] == [dt.date(2025, m, 1) for m in range(1, 13)]
    assert rows[0][1:] == (D("100000.00"), D("115000.00"), D("160.00"), D("114840.00"), D("100000.00"),
                           D("14840.00"), D("5000.00"))
    assert rows[1][1:] == (D("100000.00"), D("25000.00"), D("0.00"), D("25000.00"), D("25000.00"), D("0.00"),
                           D("-5000.00"))
    for r in rows[2:]:
        assert r[1:] == (D("100000.00"), D("95000.00"), D("0.00"), D("95000.00"), D("95000.00"), D("0.00"), D("0.00"))


def test_annual_settlement_matches_the_worked_example(worked_example):
    rows = _query(
        "select settlement_year, annual_budget_amount, reasonable_amount, monthly_paid_amount, entitlement_amount,"
        " year_end_payment_amount from marts.fct_settlement_annual where hospital_code = %s",
        (HOSP,),
    )
    assert rows == [(2025, D("1200000.00"), D("1089840.00"), D("1075000.00"), D("1155936.00"), D("80936.00"))]


def test_usage_priced_against_the_latest_purchase(worked_example):
    rows = _query(
        "select usage_id, reference_price, payment_standard_price, markup_excess_amount, standard_excess_amount,"
        " unreasonable_excess_amount, is_untraceable from marts.fct_usage_pricing"
    )
    assert rows == [("U1", D("700.0000"), D("700.0000"), D("200.00"), D("200.00"), D("200.00"), False)]


def test_rerunning_the_night_changes_nothing(worked_example):
    assert worked_example["first"] == worked_example["second"]
    assert worked_example["first"]["raw.claim"] == 14
    assert worked_example["first"]["marts.fct_settlement_monthly"] == 12
    published = _query("select as_of_date from audit.publish_log order by publish_id")
    assert [p[0] for p in published] == [dt.date(2025, 1, 31), dt.date(2026, 1, 5), dt.date(2026, 1, 5)]


def test_every_step_of_every_run_is_logged(worked_example):
    steps = _query("select step, count(*) from audit.run_log where status = 'ok' group by 1 order by 1")
    assert dict(steps) == {"load": 3, "validate_raw": 3, "transform": 3, "validate_marts": 3, "publish": 3}


def test_no_id_number_in_airflow_task_logs(worked_example, yibao_home):
    # Airflow's task logs, and the whole Airflow output of each `yibao run` (logs/runs/) and dbt's log
    logs = list((yibao_home / "airflow").rglob("*.log")) + list((yibao_home / "logs").rglob("*.log"))
    assert any("runs" in p.parts for p in logs), logs
    landing_ids = ID_SHAPE.findall((worked_example["landing"] / "20250120" / HOSP / "claim.csv").read_text())
    assert landing_ids, "the fixture must carry an ID number for this test to mean anything"
    for path in logs:
        assert not ID_SHAPE.search(path.read_text(encoding="utf-8", errors="ignore")), path
