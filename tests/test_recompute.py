"""End to end: the settlement marts the real pipeline publishes equal, to the cent, an independent
recomputation from the landing files (tests/recompute.py: plain Python, ``decimal``, half-up).

One generated city (4 hospitals, 2024-11-01 … 2025-02-10, so the 2024 year end is settled; one
hospital has monthly budget weights; reversals cross months and the year; refunds; untraceable
lines; deductions) plus hand-made deliveries on later nights (see :func:`add_corrections`):

- a December 2024 claim re-sent with fund_paid + the hospital's whole 2024 budget: the later version
  must win, and it puts that hospital over budget, so the year end takes the overspend branch (share
  0.15) next to the surplus branch of the others; its total is 2 × fund_paid so that its deduction
  is an exact half-cent tie;
- a usage line of the same visit re-sent with a higher charge (a later version of a usage line);
- a second, later settlement of another visit, in January 2025, with fund_paid 50.00: the visit's
  deduction moves to it (the latest settlement that is neither a reversal nor reversed) and is
  clamped to its fund_paid.

The pipeline is the Airflow DAG ``nightly_ingest`` run once for the whole range (~2 min). The only
warehouse tables read besides ``marts`` are ``raw.load_ledger`` and ``raw.quarantine``, to exclude
the rows and files the loader refused, as the warehouse does.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from recompute import (
    audit_violation_amounts,
    budget_consumption,
    generator_verdicts,
    price_usage,
    read_landing,
    recompute,
)

from yibao.rowcheck import parse_datetime

pytestmark = pytest.mark.xdist_group("e2e")

SEED = 11
START = dt.date(2024, 11, 1)
THROUGH = dt.date(2025, 2, 10)
CORRECTION_NIGHT = dt.date(2025, 1, 15)
SUPPLEMENT_NIGHT = dt.date(2025, 1, 10)
SAMPLE_DAYS = (
    dt.date(2024, 1, 1), dt.date(2024, 6, 30), dt.date(2024, 11, 1), dt.date(2024, 11, 30), dt.date(2024, 12, 31),
    dt.date(2025, 1, 1), dt.date(2025, 1, 31), dt.date(2025, 2, 1), THROUGH,
)


# --- the city ------------------------------------------------------------------------------------


def _read_csv(path: Path, encoding: str) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding=encoding, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def _append_csv(path: Path, encoding: str, line_end: str, row: list[str]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=line_end).writerow(row)
    with open(path, "ab") as fh:
        fh.write(buf.getvalue().encode("utf-8" if encoding == "utf-8-sig" else encoding))


def add_corrections(landing: Path) -> dict:
    """Re-send, on CORRECTION_NIGHT, a December 2024 surgery claim and a usage line of its visit; add
    on SUPPLEMENT_NIGHT a second, later settlement of another visit.

    The usage line (quantity 1) is charged 25 % more, plus a few cents so that the visit's Σ
    unreasonable excess is 4k + 1 cents. The claim gets fund_paid + the hospital's whole 2024 budget
    (over budget for the year) and total_amount = 2 × fund_paid, so its deduction
    Σ × fund_paid / total_amount = Σ / 2 = 2k + ½ cents: a tie that half-up rounds to 2k + 1 and
    half-even or half-down to 2k. The 2024 overspend share is set to 0.15 when the generator drew
    0 (so the overspend branch multiplies by something). Returns what was changed.
    """
    gen = json.loads((landing / "_generator" / "summary.json").read_text(encoding="utf-8"))
    rejected, quarantined = generator_verdicts(landing)
    # a hospital whose files are plain CSV without a manifest, so appending a row keeps the files valid
    h, fmt = next((c, f) for c, f in gen["hospital_formats"].items()
                  if not (f["manifest"] or f["usage_xlsx"] or f["gzip"] or f["extra_column"] or f["chinese_headers"]
                          or f["padded_headers"]))
    enc, eol = fmt["encoding"], fmt["line_end"]

    def rows_of(extract: str):
        for day_dir in sorted(p for p in landing.iterdir() if p.name.isdigit() and p.name <= f"{THROUGH:%Y%m%d}"):
            rel = f"{day_dir.name}/{h}/{extract}.csv"
            if (landing / rel).exists() and rel not in rejected:
                header, rows = _read_csv(landing / rel, enc)
                header = [x.strip().lstrip("\ufeff") for x in header]
                for n, row in enumerate(rows, start=1):
                    if (rel, n) not in quarantined and len(row) == len(header):
                        yield dict(zip(header, row)), row

    claims = list(rows_of("claim"))
    reversed_ids = {c["reversal_of"] for c, _ in claims if c["reversal_of"]}
    usage = list(rows_of("usage"))
    single = {u["visit_id"]: (u, r) for u, r in usage if u["quantity"] == "1"}
    claim, row = next(
        (c, r) for c, r in claims
        if parse_datetime(c["settled_at"]).startswith("2024-12") and c["insurance_type"] == "310" and not c["reversal_of"]
        and c["settlement_id"] not in reversed_ids and c["visit_id"] in single
    )
    folder = landing / f"{CORRECTION_NIGHT:%Y%m%d}" / h

    line, urow = single[claim["visit_id"]]
    price = (Decimal(line["charge_unit_price"]) * Decimal("1.25")).quantize(Decimal("0.01"))
    size = (folder / "usage.csv").stat().st_size
    for _ in range(4):
        unew = list(urow)
        unew[list(line).index("charge_unit_price")] = str(price)
        unew[list(line).index("charge_amount")] = str(price)
        _append_csv(folder / "usage.csv", enc, eol, unew)
        data = read_landing(landing, THROUGH, rejected, quarantined, extracts=("purchase", "usage"), hospitals={h})
        excess = sum(p.unreasonable_excess_amount for (hc, _), p in price_usage(data).items()
                     if hc == h and p.visit_id == claim["visit_id"])
        if excess * 100 % 4 == 1:
            break
        with open(folder / "usage.csv", "r+b") as fh:
            fh.truncate(size)
        price += Decimal("0.01")
    assert excess * 100 % 4 == 1, "could not make the visit's excess 4k + 1 cents"

    budget = next(
        Decimal(r[3]) for r in csv.reader((landing / "reference" / "fund_budgets.csv").read_text(encoding="utf-8").splitlines())
        if r[:3] == ["2024", h, "310"]
    )
    hd = list(claim)
    fund = Decimal(claim["fund_paid"]) + budget
    total = 2 * fund
    cash = total - fund - Decimal(claim["other_fund_paid"] or 0) - Decimal(claim["account_paid"] or 0)
    new = list(row)
    for col, value in (("total_amount", total), ("fund_paid", fund), ("cash_paid", cash)):
        new[hd.index(col)] = str(value)
    _append_csv(folder / "claim.csv", enc, eol, new)

    # a second visit, settled once in December, gets a supplementary settlement in January 2025 whose
    # fund_paid (50.00) is below the deduction: the deduction moves to January and is clamped
    pricing = price_usage(data)
    excess_of: dict[str, Decimal] = {}
    for p in pricing.values():  # this hospital's lines only
        excess_of[p.visit_id] = excess_of.get(p.visit_id, Decimal(0)) + p.unreasonable_excess_amount
    settled = {}
    for c, r in claims:
        settled.setdefault(c["visit_id"], []).append((c, r))
    c2, r2 = next(
        v[0] for visit, v in settled.items()
        if visit != claim["visit_id"] and excess_of.get(visit, 0) > 100 and len(v) == 1
        and parse_datetime(v[0][0]["settled_at"]).startswith("2024-12") and v[0][0]["settlement_id"] not in reversed_ids
    )
    style = {"iso": "%Y-%m-%d", "compact": "%Y%m%d", "slash": "%Y/%m/%d"}[fmt["date_style"]]
    supplement = list(r2)
    for col, value in (("settlement_id", f"JS{SUPPLEMENT_NIGHT:%Y%m%d}9000001"),
                       ("settled_at", f"{SUPPLEMENT_NIGHT:{style}} 10:00:00"), ("total_amount", "100.00"),
                       ("fund_paid", "50.00"), ("other_fund_paid", "0.00"), ("account_paid", "0.00"),
                       ("cash_paid", "50.00"), ("negotiated_drug_amount", "0.00")):
        supplement[list(c2).index(col)] = value
    _append_csv(landing / f"{SUPPLEMENT_NIGHT:%Y%m%d}" / h / "claim.csv", enc, eol, supplement)

    params = landing / "reference" / "settlement_params.csv"
    rows = list(csv.reader(params.read_text(encoding="utf-8").splitlines()))
    for r in rows:
        if r[0] == "2024" and Decimal(r[2] or 0) == 0:
            r[2] = "0.15"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    params.write_text(buf.getvalue(), encoding="utf-8")
    return {"hospital": h, "settlement_id": claim["settlement_id"], "visit_id": claim["visit_id"],
            "usage_id": line["usage_id"], "fund_paid": fund, "visit_excess": excess,
            "deduction": (excess / 2).quantize(Decimal("0.01"), ROUND_HALF_UP),
            "supplement": f"JS{SUPPLEMENT_NIGHT:%Y%m%d}9000001", "supplemented_visit": c2["visit_id"],
            "superseded": c2["settlement_id"]}


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    from yibao.generator import generate_city

    landing = tmp_path_factory.mktemp("recompute") / "landing"
    summary = generate_city(landing, seed=SEED, hospitals=4, start=START, end=THROUGH, volume=0.4, defect_rate=0.01,
                            fee_detail=0.5, fee_lines=2)
    corrections = add_corrections(landing)
    return landing, summary, corrections


def _fetch(cur, sql: str, args=()) -> list[dict]:
    cur.execute(sql, args)
    names = [d.name for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


@pytest.fixture(scope="module")
def built(city, module_warehouse):
    """Run the DAG once on an emptied warehouse; return the loader's verdicts and the published marts."""
    from yibao import db
    from yibao.orchestrate import run_dag

    landing, _, _ = city
    run_dag("nightly_ingest", THROUGH, {"landing": str(landing), "through": THROUGH.isoformat()}, landing=landing)
    with db.connect() as conn, conn.cursor() as cur:
        out = {
            "ledger": _fetch(cur, "select source_file, status, rows_loaded from raw.load_ledger"
                                  " where file_kind in ('purchase', 'usage', 'claim')"),
            "quarantine": _fetch(cur, "select source_file, source_row from raw.quarantine"
                                      " where file_kind in ('purchase', 'usage', 'claim')"),
        }
        for table in ("fct_usage_pricing", "fct_settlement_monthly", "fct_settlement_annual", "fct_audit_findings",
                      "fct_exam_positive_rate_monthly", "fct_settlement_deduction"):
            out[table] = _fetch(cur, f"select * from marts.{table}")
        out["fct_budget_consumption"] = _fetch(
            cur, "select * from marts.fct_budget_consumption where as_of_date = any(%s)", (list(SAMPLE_DAYS),))
        out["consumption_days"] = _fetch(
            cur, "select hospital_code, insurance_type, extract(year from as_of_date)::int as year, count(*) as days,"
                 " min(as_of_date) as first_day, max(as_of_date) as last_day"
                 " from marts.fct_budget_consumption group by 1, 2, 3")
    return out


@pytest.fixture(scope="module")
def expected(city, built):
    landing, _, _ = city
    rejected = {r["source_file"] for r in built["ledger"] if r["status"] == "rejected"}
    quarantined = {(r["source_file"], r["source_row"]) for r in built["quarantine"]}
    data = read_landing(landing, THROUGH, rejected, quarantined)
    return data, recompute(data, THROUGH, audit_violation_amounts(_truth(landing, "audit_findings")))


def _truth(landing: Path, name: str) -> list[dict]:
    return json.loads((landing / "_generator" / f"{name}.json").read_text(encoding="utf-8"))


def _mismatches(expected_rows: dict, actual_rows: dict, fields: tuple[str, ...]) -> list[str]:
    out = []
    for key in sorted(set(expected_rows) | set(actual_rows), key=str):
        e, a = expected_rows.get(key), actual_rows.get(key)
        if e is None or a is None:
            out.append(f"{key}: {'missing from the mart' if a is None else 'not expected'}")
            continue
        for f in fields:
            ev, av = getattr(e, f), a[f]
            if ev != av or (ev is None) != (av is None):
                out.append(f"{key} {f}: recomputed {ev!r}, mart {av!r}")
    return out


def _report(problems: list[str], what: str) -> str:
    return f"{len(problems)} {what} differ:\n" + "\n".join(problems[:40])


# --- tests -----------------------------------------------------------------------------------------


def test_rows_kept_match_the_loader(city, built, expected):
    """The recomputation keeps exactly the rows the loader loaded (per file), so both sides see one input."""
    data, _ = expected
    ledger = {r["source_file"]: r["rows_loaded"] for r in built["ledger"] if r["status"] == "loaded"}
    assert data.kept_rows == ledger
    rejected = [r for r in built["ledger"] if r["status"] == "rejected"]
    assert rejected, "the city should have files rejected for a bad manifest or truncation"
    assert built["quarantine"], "the city should have quarantined rows"


def test_city_exercises_the_settlement_rules(city, expected):
    _, _, corrections = city
    data, marts = expected
    s = marts.stats
    assert s["refund_lines"] > 0 and s["untraceable_lines"] > 0
    assert s["lines_with_markup"] > 0 and s["lines_with_standard_excess"] > 0
    assert s["lines_standard_excess_larger"] > 0  # R6 takes the larger of the two, not always markup
    assert s["nonzero_deductions"] > 0 and s["visits_with_excess_but_no_effective_settlement"] > 0
    assert s["reversals_crossing_month"] > 0 and s["reversals_crossing_year"] > 0
    assert s["annual_surplus"] > 0 and s["annual_overspend"] > 0
    assert s["months_with_deferred"] > 0
    assert s["purchase_versions"] > 0 and s["claim_versions"] >= 1 and s["usage_versions"] >= 1
    assert any(w for _, w in data.budgets.values()), "one hospital has monthly budget weights"
    h, sid = corrections["hospital"], corrections["settlement_id"]
    assert data.claims[(h, sid)].fund_paid == corrections["fund_paid"]  # the re-sent version is the latest
    assert marts.deductions[(h, sid)] == corrections["deduction"]  # a half-cent tie, rounded up
    assert marts.deductions[(h, corrections["supplement"])] == Decimal("50.00")  # latest settlement, clamped
    assert (h, corrections["superseded"]) not in marts.deductions
    assert s["clamped_deductions"] >= 1 and s["visits_with_excess_and_several_candidates"] >= 1
    assert s["deductions_on_visits_with_a_reversal"] > 0


def test_usage_pricing_matches(built, expected):
    _, marts = expected
    actual = {(r["hospital_code"], r["usage_id"]): r for r in built["fct_usage_pricing"]}
    fields = ("visit_id", "quantity", "charge_unit_price", "reference_price", "payment_standard_price",
              "markup_excess_amount", "standard_excess_amount", "unreasonable_excess_amount", "is_untraceable")
    problems = _mismatches(marts.usage_pricing, actual, fields)
    assert not problems, _report(problems, "usage lines")


def test_settlement_monthly_matches(built, expected):
    data, marts = expected
    actual = {(r["hospital_code"], r["insurance_type"], r["settlement_month"]): r for r in built["fct_settlement_monthly"]}
    assert len(actual) == len(built["fct_settlement_monthly"]), "one row per hospital × insurance type × month"
    # every month of every budget year up to the as-of month, per hospital × insurance type
    months = {(h, ins, dt.date(y, m, 1)) for (y, h, ins) in data.budgets for m in range(1, 13)
              if dt.date(y, m, 1) <= THROUGH}
    assert set(actual) == months
    assert set(marts.monthly) == months
    fields = ("monthly_quota_amount", "declared_amount", "deduction_amount", "reasonable_amount", "paid_amount",
              "deferred_amount", "negotiated_drug_amount")
    problems = _mismatches(marts.monthly, actual, fields)
    assert not problems, _report(problems, "monthly settlement rows")


def test_settlement_annual_matches(built, expected):
    _, marts = expected
    actual = {(r["hospital_code"], r["insurance_type"], r["settlement_year"]): r for r in built["fct_settlement_annual"]}
    assert {k[2] for k in actual} == {2024}, "only 2024 has ended by the as-of date"
    fields = ("annual_budget_amount", "reasonable_amount", "monthly_paid_amount", "entitlement_amount",
              "year_end_payment_amount")
    problems = _mismatches(marts.annual, actual, fields)
    assert not problems, _report(problems, "annual settlement rows")


def test_budget_consumption_matches(built, expected):
    data, _ = expected
    expected_rows = {}
    for (y, h, ins) in data.budgets:
        for day in SAMPLE_DAYS:
            if day.year == y:
                expected_rows[(h, ins, day)] = budget_consumption(data, h, ins, day)
    actual = {(r["hospital_code"], r["insurance_type"], r["as_of_date"]): r for r in built["fct_budget_consumption"]}
    fields = ("annual_budget_amount", "consumed_amount", "consumption_rate", "time_elapsed", "pace",
              "projected_year_end_amount", "alert_level")
    problems = _mismatches(expected_rows, actual, fields)
    assert not problems, _report(problems, "budget consumption rows")
    assert {e.alert_level for e in expected_rows.values()} >= {"green", "red"}
    # every day of each budget year up to the as-of date
    spans = {(r["hospital_code"], r["insurance_type"], r["year"]): (r["days"], r["first_day"], r["last_day"])
             for r in built["consumption_days"]}
    want = {}
    for (y, h, ins) in data.budgets:
        last = min(dt.date(y, 12, 31), THROUGH)
        want[(h, ins, y)] = ((last - dt.date(y, 1, 1)).days + 1, dt.date(y, 1, 1), last)
    assert spans == want


# --- smart audit (R11–R22) ---------------------------------------------------------------------------

FINDING_FIELDS = ("rule_id", "rule_type", "severity", "hospital_code", "subject_type", "subject_id", "visit_id",
                  "charge_date", "item_code", "flagged_quantity", "flagged_amount", "is_cross_hospital")


def _finding(row: dict) -> tuple:
    out = []
    for f in FINDING_FIELDS:
        v = row[f]
        if f in ("flagged_quantity", "flagged_amount"):
            v = Decimal(str(v)).normalize()
        elif f == "charge_date":
            v = str(v)
        out.append(v)
    return tuple(out)


def test_every_injected_audit_finding_is_found_and_nothing_else(city, built):
    """fct_audit_findings holds exactly the generator's injected (and naturally arising) findings, with
    their quantities and amounts, and nothing else is flagged."""
    landing, _, _ = city
    expected = sorted(_finding(f) for f in _truth(landing, "audit_findings"))
    actual = sorted(_finding(r) for r in built["fct_audit_findings"])
    assert {f[1] for f in expected} >= {"sex", "age", "inpatient_only", "daily_quantity", "min_interval_days",
                                        "course_days", "included_in", "indication", "repeat_exam", "readmission"}
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    assert not missing and not extra, (f"{len(missing)} findings missing, {len(extra)} unexpected:\n"
                                       + "\n".join(map(str, missing[:15] + extra[:15])))
    assert len(actual) == len(expected)


def test_exam_positive_rates_match_the_generator(city, built):
    landing, _, _ = city
    fields = ("hospital_code", "month_start", "exam_class", "examined_count", "positive_count", "positive_rate",
              "is_alert")

    def norm(r: dict) -> tuple:
        return tuple(str(r[f]) if f == "month_start" else (None if r[f] is None else Decimal(str(r[f])).normalize())
                     if f == "positive_rate" else r[f] for f in fields)

    expected = sorted(norm(r) for r in _truth(landing, "exam_positive_rate"))
    actual = sorted(norm(r) for r in built["fct_exam_positive_rate_monthly"])
    assert expected and any(r[-1] for r in expected)
    assert actual == expected


def test_audit_violations_reach_the_deductions(built, expected):
    """Visits deducted for fee-line violations alone exist, and their deduction equals the recomputation."""
    _, marts = expected
    audit_only = [r for r in built["fct_settlement_deduction"]
                  if r["audit_violation_amount"] and not r["unreasonable_excess_amount"]]
    assert audit_only, "some settlement is deducted for smart-audit violations alone"
    for r in audit_only:
        assert r["deductible_base_amount"] == r["audit_violation_amount"]
        assert marts.deductions[(r["hospital_code"], r["settlement_id"])] == r["deduction_amount"]
