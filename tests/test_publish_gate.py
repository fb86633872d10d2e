"""Write-audit-publish through the real DAG: an error-level defect keeps the night from being published,
the previous marts stay as they were, and the same night publishes once the defect is corrected."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
from pathlib import Path

import pytest

from yibao import db

pytestmark = pytest.mark.xdist_group("e2e")

FIXTURES = Path(__file__).parent / "fixtures"
HOSP = "H41070200001"


def _query(sql: str, params=()) -> list[tuple]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _marts() -> dict[str, list[tuple]]:
    return {
        "monthly": _query("select * from marts.fct_settlement_monthly order by 1, 2, 3"),
        "consumption": _query("select hospital_code, as_of_date, consumed_amount from marts.fct_budget_consumption"
                              " order by 1, 2"),
    }


def _budgets(landing: Path, weights: list[str]) -> None:
    with open(landing / "reference" / "fund_budgets.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["year", "hospital_code", "insurance_type", "annual_budget"] + [f"m{m:02d}_weight" for m in range(1, 13)])
        w.writerow(["2025", HOSP, "310", "1200000.00"] + weights)


def test_error_level_defect_blocks_publishing_until_corrected(module_warehouse, tmp_path):
    from yibao.orchestrate import run_dag

    spec = importlib.util.spec_from_file_location("we", FIXTURES / "make_worked_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    landing = tmp_path / "landing"
    mod.main(landing)

    def run(through: dt.date) -> None:
        run_dag("nightly_ingest", through, {"landing": str(landing), "through": through.isoformat()}, landing=landing)

    run(dt.date(2025, 1, 31))
    before = _marts()
    assert before["monthly"] and _query("select max(as_of_date) from audit.publish_log") == [(dt.date(2025, 1, 31),)]

    # the bureau re-sends the budgets with monthly weights that sum to 0.96: an error-level reference defect
    _budgets(landing, ["0.08"] * 12)
    with pytest.raises(SystemExit, match="failed"):
        run(dt.date(2025, 2, 28))
    assert _query("select max(as_of_date) from audit.publish_log") == [(dt.date(2025, 1, 31),)]
    assert _marts() == before
    failed = _query(
        "select suite, check_name, severity, failed from audit.dq_results"
        " where severity = 'error' and failed > 0 and night_date = '2025-02-28'"
    )
    assert failed and all(s == "error" for _, _, s, _ in failed)
    assert any("weight" in check for _, check, _, _ in failed), failed

    # corrected weights (sum exactly 1): the same night publishes
    _budgets(landing, ["0.08"] * 11 + ["0.12"])
    run(dt.date(2025, 2, 28))
    assert _query("select max(as_of_date) from audit.publish_log") == [(dt.date(2025, 2, 28),)]
    quotas = _query(
        "select settlement_month, monthly_quota_amount from marts.fct_settlement_monthly"
        " where hospital_code = %s order by 1", (HOSP,)
    )
    from decimal import Decimal

    assert quotas[:2] == [(dt.date(2025, 1, 1), Decimal("96000.00")), (dt.date(2025, 2, 1), Decimal("96000.00"))]
