"""fee_detail (the optional fourth extract) and the audit_rules reference through the loader.

Every quarantine reason with its exact count, every landing format, patient_age_days to the day,
no ID number nor birth date stored, re-sends, and the rule library: the packaged national file
loads once (then is recognised by its stat), a bureau file's bad rule rows are quarantined.
"""

from __future__ import annotations

import collections
import csv
import datetime as dt
import gzip
import importlib.util
import re
from decimal import Decimal
from pathlib import Path

import pytest

from yibao import db
from yibao.contract import AUDIT_RULES_COLUMNS, FEE_DETAIL
from yibao.loader import load_landing

FIXTURES = Path(__file__).parent / "fixtures"
HOSP = "H41070200001"
OTHER = "H41070300009"
DOCTOR = "D410702000001"
HEADER = [c.name for c in FEE_DETAIL.columns]
NATIONAL_ROWS = 15_113
ID_SHAPE = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9A-Za-z])"
)
DRUG = "XA01ABD075A002010100483"  # 西药, 23 chars (CODES.md example)
TCM = "ZA01AAA0001010100001"  # 中成药, 20 chars
HERB = "饮片-黄芪-切片"  # 中药饮片: local text
SERVICE = "001201000010000"  # 医疗服务项目, 15 digits
CONSUMABLE = "C0202020010100100001"  # 医用耗材 (consumable code format)


def _example():
    spec = importlib.util.spec_from_file_location("we", FIXTURES / "make_worked_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


WE = _example()


def pid(birth: str, seq: str = "123") -> str:
    return WE.id_number("410702", birth, seq)


P1 = pid("19800315", "101")  # odd sequence digit: M
P2 = pid("20000229", "202")  # a leap-day birth: F


def line(n, *, hosp=HOSP, patient=P1, item_type="11", code=DRUG, name="阿莫西林胶囊", charged="2025-01-10 09:00:00",
         qty="2", price="12.5000", amount="25.00", exam="", key=None):
    return [key or f"F{n}", hosp, f"V{n % 7}", patient, item_type, code, name, "XNK", DOCTOR, charged, qty, price,
            amount, exam]


def write(path: Path, rows, header=HEADER, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", newline="", encoding=encoding) as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _query(sql: str, params=()) -> list[tuple]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


@pytest.fixture
def landing(tmp_path) -> Path:
    out = tmp_path / "landing"
    WE.main(out)
    return out


def _good_lines(start: int, n: int) -> list[list[str]]:
    kinds = [("11", DRUG, "2", "12.5000", "25.00", ""), ("12", TCM, "1", "36.8000", "36.80", ""),
             ("13", HERB, "10", "0.3333", "3.33", ""), ("21", SERVICE, "1", "120.0000", "120.00", "P"),
             ("31", CONSUMABLE, "1", "800.0000", "800.00", ""), ("21", SERVICE, "-1", "120.0000", "-120.00", "N")]
    out = []
    for i in range(start, start + n):
        t, code, q, p, a, exam = kinds[i % len(kinds)]
        out.append(line(i, item_type=t, code=code, qty=q, price=p, amount=a, exam=exam,
                        patient=P1 if i % 2 else P2))
    return out


def test_every_fee_detail_quarantine_reason_with_its_exact_count(clean_warehouse, landing):
    good = _good_lines(1, 30)
    bad = [
        line(101, item_type="41"),  # bad_item_type
        line(102, item_type="", code=DRUG),  # missing_required
        line(103, code=DRUG[:-1]),  # 西药 code one char short: bad_item_code
        line(104, code=DRUG.lower()),  # lower case: bad_item_code
        line(105, item_type="12", code=DRUG),  # a 西药 code as 中成药: bad_item_code
        line(106, item_type="13", code="x" * 51),  # 中药饮片 longer than 50: bad_item_code
        line(107, item_type="21", code="00120100001000A"),  # bad_item_code
        line(108, item_type="31", code="C020202001010010000"),  # 19 chars: bad_item_code
        line(109, amount="25.02"),  # amount_mismatch (beyond ± 0.01)
        line(110, price="0", amount="0.00"),  # nonpositive_price
        line(111, price="-12.5", amount="-25.00"),  # nonpositive_price
        line(112, exam="阳性"),  # bad_exam_result
        line(113, exam="p"),  # bad_exam_result
        line(114, qty="0", amount="0.00"),  # zero_quantity
        line(115, hosp=OTHER),  # hospital_mismatch
        line(116, patient=P1[:17] + ("0" if P1[17] != "0" else "1")),  # bad_id_check_char
        line(117, patient=pid("20250111"), charged="2025-01-10 23:59:59"),  # born the day after: charge_before_birth
        line(118, charged="2025-01-32 09:00:00"),  # bad_date
        line(119, key="DUP"), line(120, key="DUP", amount="99.00"),  # duplicate_key (both; one also bad)
    ]
    write(landing / "20250110" / HOSP / "fee_detail.csv", good + bad)
    night = load_landing(landing, dt.date(2025, 1, 10), show_progress=False)
    fee = [f for f in night.files if f.file.kind == "fee_detail"]
    assert [f.status for f in fee] == ["loaded"]
    got = collections.Counter(dict(_query(
        "select reason_code, count(*) from raw.quarantine where file_kind = 'fee_detail' group by 1")))
    assert got == {
        "bad_item_type": 1, "missing_required": 1, "bad_item_code": 6, "amount_mismatch": 1, "nonpositive_price": 2,
        "bad_exam_result": 2, "zero_quantity": 1, "hospital_mismatch": 1, "bad_id_check_char": 1,
        "charge_before_birth": 1, "bad_date": 1, "duplicate_key": 2,
    }
    assert (fee[0].rows_read, fee[0].rows_loaded, fee[0].rows_quarantined) == (50, 30, 20)
    assert _query("select count(*) from raw.fee_detail") == [(30,)]
    # a tolerated rounding (± 0.01) loads; the amount stored is the one delivered
    assert _query("select count(*) from raw.fee_detail where item_type = '13' and amount = 3.33")[0][0] == 5


def _load_rows(landing: Path, rows, day="20250110"):
    write(landing / day / HOSP / "fee_detail.csv", rows)
    return load_landing(landing, dt.datetime.strptime(day, "%Y%m%d").date(), show_progress=False)


def test_patient_age_days_is_completed_days_on_the_charge_date(clean_warehouse, landing):
    cases = {  # fee_line_id: (birth date, charged_at, expected completed days of age)
        "A1": ("20000229", "2001-02-28 23:59:59", 365),  # leap-day birth, the day before its first 'birthday'
        "A2": ("20000229", "2001-03-01 00:00:00", 366),
        "A3": ("20000229", "2004-02-29 08:00:00", 1461),  # four years of 365 + one leap day
        "A4": ("19800315", "2025-03-14 10:00:00", 16435),  # the eve of the 45th birthday
        "A5": ("19800315", "2025-03-15 00:00:00", 16436),  # the birthday itself
        "A6": ("20250110", "2025-01-10 00:00:01", 0),  # charged on the day of birth
        "A7": ("20241231", "2025-01-10 12:00:00", 10),  # across a year end
    }
    rows = [line(i, key=k, patient=pid(b, f"{i:03d}"), charged=c) for i, (k, (b, c, _)) in enumerate(cases.items())]
    night = _load_rows(landing, rows, "20250310")
    assert night.files and _query("select count(*) from raw.quarantine") == [(0,)]
    got = dict(_query("select fee_line_id, patient_age_days from raw.fee_detail"))
    assert got == {k: v[2] for k, v in cases.items()}
    # independently: the calendar difference, as Python's date arithmetic gives it
    for k, (b, c, days) in cases.items():
        assert (dt.date.fromisoformat(c[:10]) - dt.datetime.strptime(b, "%Y%m%d").date()).days == days, k
    sexes = dict(_query("select fee_line_id, patient_sex from raw.fee_detail"))
    assert set(sexes.values()) <= {"M", "F"} and sexes["A1"] == ("M" if int(pid("20000229", "000")[16]) % 2 else "F")


def test_no_id_number_nor_birth_date_in_any_raw_table(clean_warehouse, landing):
    rows = _good_lines(1, 12) + [line(50, patient=P1[:17] + ("0" if P1[17] != "0" else "1"))]  # one bad ID too
    _load_rows(landing, rows)
    assert _query("select count(*) from raw.fee_detail") == [(12,)]
    births = {"19800315", "1980-03-15", "20000229", "2000-02-29", "1980/03/15", "2000/02/29"}
    columns = _query(
        "select table_schema, table_name, column_name, data_type from information_schema.columns"
        " where table_schema not in ('pg_catalog', 'information_schema')"
        " and data_type in ('text', 'character varying', 'jsonb', 'json', 'date')"
    )
    hits = []
    for schema, table, column, _kind in columns:
        for (value,) in _query(f'select "{column}"::text from "{schema}"."{table}" where "{column}" is not null'):
            if ID_SHAPE.search(value) or any(b in value for b in births):
                hits.append((schema, table, column, value[:60]))
    assert hits == []
    fee_columns = {c for _, t, c, _ in columns if t == "fee_detail"}
    assert "patient_id_no" not in fee_columns and not any("birth_date" in c for c in fee_columns)


def test_formats_gbk_chinese_headers_xlsx_and_gzip(clean_warehouse, landing):
    import openpyxl

    rows = _good_lines(1, 12)
    zh = [c.zh for c in FEE_DETAIL.columns]
    write(landing / "20250110" / HOSP / "fee_detail.csv", rows, header=zh, encoding="gbk")
    write(landing / "20250111" / HOSP / "fee_detail.csv.gz", [r[:0] + [f"G{r[0]}"] + r[1:] for r in rows])
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append([" " + h for h in zh] + ["备注"])  # padded Chinese headers, an extra column
    for r in rows:
        ws.append([f"X{r[0]}", *r[1:], "附注"])
    (landing / "20250112" / HOSP).mkdir(parents=True, exist_ok=True)
    wb.save(landing / "20250112" / HOSP / "fee_detail.xlsx")
    night = load_landing(landing, dt.date(2025, 1, 12), show_progress=False)
    fee = {f.file.relpath: f for f in night.files if f.file.kind == "fee_detail"}
    assert len(fee) == 3 and all(f.status == "loaded" and f.rows_loaded == 12 for f in fee.values()), fee
    assert _query("select count(*) from raw.quarantine") == [(0,)]
    by_file = _query(
        "select source_file, count(*), count(distinct item_name), sum(amount), sum(patient_age_days),"
        " count(*) filter (where item_code = %s), count(*) filter (where exam_result = 'P')"
        " from raw.fee_detail group by 1 order by 1", (HERB,))
    assert len(by_file) == 3 and len({r[1:] for r in by_file}) == 1, by_file  # the same content whatever the format
    assert by_file[0][1] == 12 and by_file[0][3] == sum(Decimal(r[12]) for r in rows)
    assert by_file[0][5:] == (2, 2)
    assert _query("select count(*) from raw.fee_detail where extra ->> '备注' = '附注'") == [(12,)]
    assert _query("select count(distinct item_name) from raw.fee_detail where item_name like '阿莫西林%%'") == [(1,)]


def test_a_resent_line_supersedes_keeping_history(clean_warehouse, landing):
    _load_rows(landing, _good_lines(1, 6), "20250110")
    corrected = _good_lines(1, 6)
    corrected[0][10:13] = ["3", "12.5000", "37.50"]  # F1 re-sent with its quantity corrected
    _load_rows(landing, corrected[:1], "20250115")
    versions = _query("select business_date, quantity, amount from raw.fee_detail where fee_line_id = 'F1'"
                      " order by business_date, load_id")
    assert [(d, float(q), float(a)) for d, q, a in versions] == [
        (dt.date(2025, 1, 10), 1.0, 36.8), (dt.date(2025, 1, 15), 3.0, 37.5)]
    again = load_landing(landing, dt.date(2025, 1, 15), show_progress=False)  # nothing doubled
    assert {f.status for f in again.files} == {"skipped"}
    assert _query("select count(*) from raw.fee_detail") == [(7,)]


def test_fast_path_writes_exactly_what_the_general_path_writes_for_fee_detail():
    """The compiled fast row path of fee_detail accepts only what the general path loads, writing the same bytes."""
    from test_loader import _mutations

    from yibao import loader
    from yibao.landing import LandingFile
    from yibao.pseudonym import Pseudonymiser

    f = LandingFile(Path("/nonexistent/fee_detail.csv"), f"20250110/{HOSP}/fee_detail.csv", "fee_detail", HOSP,
                    dt.date(2025, 1, 10))
    fl = loader.FileLoader(None, Pseudonymiser(b"a key for the fast path test"), {}, None, dt.date(2025, 3, 1))
    columns = FEE_DETAIL.columns
    header = HEADER + ["备注"]
    positions, extras = loader._header_map(header, columns, f)
    result = loader.FileResult(file=f, status="loaded")
    general = fl._general_row(f, columns, positions, extras, len(header), 7, result, [], {"mismatched_hosp": 0})
    fast = fl.context.row_function("fee_detail", columns, positions, len(header), extras, HOSP,
                                   f"7,2025-01-10,{f.relpath},", set())
    assert fast is not None
    rows = [r + ["x"] for r in _good_lines(1, 12)]
    rows += [line(200, patient=pid("20250110"), charged="2025-01-10 00:00:00") + [""],
             line(201, patient=pid("20250111"), charged="2025-01-10 23:59:59") + [""]]
    variants = []
    for r in rows[:6]:
        variants += _mutations("fee_detail", r, header)
    accepted = refused = 0
    for n, fields in enumerate(rows + variants, start=1):
        got, want = fast(fields, n), general(fields, n)
        if got is None:
            refused += 1
            continue
        accepted += 1
        assert got == want, (n, fields)
    # not vacuous: the fast path took every clean row, and the general path decided many others
    assert accepted >= len(rows) - 1 and refused > 100 and result.rows_quarantined > 100


# --- the rule library -----------------------------------------------------------------------------


RULE_HEADER = [c.name for c in AUDIT_RULES_COLUMNS]


def rule(rule_id, rule_type, prefix="XA01ABD075A", severity="violation", **kw):
    values = {"rule_id": rule_id, "rule_type": rule_type, "item_prefix": prefix, "severity": severity,
              "effective_from": "2025-01-01", **kw}
    return [values.get(c, "") for c in RULE_HEADER]


def test_national_library_loads_once_and_a_bureau_files_bad_rules_are_quarantined(clean_warehouse, landing,
                                                                                    monkeypatch):
    from yibao import loader

    good = [
        rule("B-SEX", "sex", allowed_sex="F"),
        rule("B-AGE", "age", max_age_days="6574"),
        rule("B-LVL", "hospital_level", min_hospital_level="二级"),
        rule("B-INP", "inpatient_only"),
        rule("B-DAY", "daily_quantity", max_quantity="2"),
        rule("B-INT", "min_interval_days", days="30"),
        rule("B-CRS", "course_days", days="14"),
        rule("B-INC", "included_in", prefix="001201000010000", main_item_prefix="00120100002", days="0"),
        rule("B-IND", "indication", severity="suspicious", diagnosis_prefixes="I10|E11.9|J18.x00"),
        rule("B-REX", "repeat_exam", prefix="002101", severity="suspicious", days="7"),
        rule("B-POS", "positive_rate", prefix="0023", severity="suspicious", exam_class="CT", threshold="0.7"),
        rule("B-READ", "readmission", prefix="", severity="suspicious", days="15"),
        rule("NAT-SEX-0001", "sex", allowed_sex="F", source="本地修订"),  # replaces the national row (dbt)
    ]
    bad = [
        rule("X-TYPE", "gender", allowed_sex="F"),  # unknown_rule_type
        rule("X-SEV", "sex", severity="warning", allowed_sex="F"),  # bad_severity
        rule("X-SEX", "sex"),  # missing_rule_parameter: allowed_sex
        rule("X-SEX2", "sex", allowed_sex="男"),  # missing_rule_parameter: allowed_sex not M/F
        rule("X-AGE", "age"),  # missing_rule_parameter: neither bound
        rule("X-LVL", "hospital_level", min_hospital_level="特级"),  # missing_rule_parameter
        rule("X-DAY", "daily_quantity", max_quantity="0"),  # missing_rule_parameter: not > 0
        rule("X-INT", "min_interval_days", days="0"),  # missing_rule_parameter: not > 0
        rule("X-INC", "included_in", main_item_prefix="00120100002", days="3"),  # missing_rule_parameter
        rule("X-IND", "indication", diagnosis_prefixes="I10|10A"),  # missing_rule_parameter: malformed prefix
        rule("X-POS", "positive_rate", exam_class="CT", threshold="1.5"),  # missing_rule_parameter
        rule("X-READ", "readmission", days="15"),  # missing_rule_parameter: item_prefix must be empty
        rule("X-NOPFX", "course_days", prefix="", days="7"),  # missing_rule_parameter: item_prefix
        rule("X-PFX", "sex", prefix="xa01abd", allowed_sex="F"),  # bad_item_prefix (lower case)
        rule("X-PFX2", "sex", prefix="X" * 28, allowed_sex="F"),  # bad_item_prefix (> 27 chars)
        rule("X-DATES", "sex", allowed_sex="F", effective_to="2024-12-31"),  # effective_dates_reversed
        rule("X-DUP", "sex", allowed_sex="F"), rule("X-DUP", "sex", allowed_sex="M"),  # duplicate_key (both)
    ]
    WE.write(landing / "reference" / "audit_rules.csv", RULE_HEADER, good + bad)
    night = load_landing(landing, dt.date(2025, 1, 10), show_progress=False)
    kinds = {f.file.kind: f for f in night.files if f.file.kind.startswith("reference:audit_rules")}
    national, bureau = kinds["reference:audit_rules_national"], kinds["reference:audit_rules"]
    assert (national.status, national.rows_loaded, national.rows_quarantined) == ("loaded", NATIONAL_ROWS, 0)
    assert (bureau.status, bureau.rows_read, bureau.rows_loaded) == ("loaded", len(good) + len(bad), len(good))
    got = collections.Counter(dict(_query(
        "select reason_code, count(*) from raw.quarantine where file_kind = 'reference:audit_rules' group by 1")))
    assert got == {"unknown_rule_type": 1, "bad_severity": 1, "missing_rule_parameter": 11, "bad_item_prefix": 2,
                   "effective_dates_reversed": 1, "duplicate_key": 2}
    assert _query("select count(*) from raw.quarantine where natural_key is null or reason_detail is null") == [(0,)]
    by_kind = dict(_query("select l.file_kind, count(*) from raw.ref_audit_rules r join raw.load_ledger l using (load_id)"
                          " group by 1"))
    assert by_kind == {"reference:audit_rules_national": NATIONAL_ROWS, "reference:audit_rules": len(good)}
    assert _query("select count(distinct rule_id) from raw.ref_audit_rules r join raw.load_ledger l using (load_id)"
                  " where l.file_kind = 'reference:audit_rules_national'") == [(NATIONAL_ROWS,)]
    assert _query("select threshold, days from raw.ref_audit_rules where rule_id = 'B-POS'") == [(Decimal("0.7000"), None)]

    # the next nights: the national file is recognised by its stat, never read again
    read = []
    real = loader.fingerprint
    monkeypatch.setattr(loader, "fingerprint", lambda p: read.append(Path(p).name) or real(p))
    for day in ("20250111", "20250112"):
        (landing / day / HOSP).mkdir(parents=True, exist_ok=True)
        again = load_landing(landing, dt.datetime.strptime(day, "%Y%m%d").date(), show_progress=False)
        statuses = {f.file.kind: f.status for f in again.files if f.file.is_reference}
        assert statuses["reference:audit_rules_national"] == "skipped"
    assert "audit_rules_national.csv" not in read
    assert _query("select count(*) from raw.load_ledger where file_kind = 'reference:audit_rules_national'") == [(1,)]
    assert _query("select count(*) from raw.ref_audit_rules") == [(NATIONAL_ROWS + len(good),)]


def test_manifest_counts_and_hashes_fee_detail_like_the_other_extracts(clean_warehouse, landing):
    import hashlib
    import json

    good = landing / "20250110" / HOSP
    write(good / "fee_detail.csv", _good_lines(1, 6))
    sha = hashlib.sha256((good / "fee_detail.csv").read_bytes()).hexdigest()
    (good / "_manifest.json").write_text(json.dumps({"fee_detail": {"rows": 6, "sha256": sha}}), encoding="utf-8")
    short = landing / "20250111" / HOSP
    write(short / "fee_detail.csv", _good_lines(10, 6))
    (short / "_manifest.json").write_text(json.dumps({"fee_detail": {"rows": 7}}), encoding="utf-8")
    night = load_landing(landing, dt.date(2025, 1, 11), show_progress=False)
    fee = {f.file.business_date: f for f in night.files if f.file.kind == "fee_detail"}
    assert fee[dt.date(2025, 1, 10)].status == "loaded" and fee[dt.date(2025, 1, 10)].rows_loaded == 6
    assert (fee[dt.date(2025, 1, 11)].status, fee[dt.date(2025, 1, 11)].reject_reason) == ("rejected", "manifest_mismatch")
    assert fee[dt.date(2025, 1, 11)].rows_held == 6
    assert _query("select count(*) from raw.fee_detail") == [(6,)]


@pytest.mark.xdist_group("quality")  # the GX project's uncommitted/ is shared with tests/test_quality.py
def test_what_the_loader_loads_passes_the_raw_gate(clean_warehouse, landing):
    """The GX raw suites re-check what the loader accepted: the loader's fee lines (every item type,
    a refund, examination results, a leap-day birth) and all 15,113 national rules pass them."""
    from yibao import quality

    write(landing / "20250110" / HOSP / "fee_detail.csv", _good_lines(1, 30) + [line(99, item_type="41")])
    WE.write(landing / "reference" / "audit_rules.csv", RULE_HEADER,
             [rule("B-READ", "readmission", prefix="", severity="suspicious", days="15"),
              rule("B-POS", "positive_rate", prefix="0023", severity="suspicious", exam_class="CT", threshold="0.7")])
    night = load_landing(landing, dt.date(2025, 1, 10), show_progress=False)
    report = quality.validate_night(clean_warehouse, dt.date(2025, 1, 10), night.load_ids, "fee-gate")
    assert report.errors == [], report.summary_text()
    by_name = {(r.suite, r.check): r for r in report.results}
    assert by_name["raw_fee_detail_codes", "item_code_format"].evaluated == 30
    assert by_name["raw_audit_rules", "rule_parameters_present"].evaluated == NATIONAL_ROWS + 2
    assert by_name["raw_quarantine_report", "quarantined_bad_item_type"].failed == 1
    assert {r.check for r in report.warnings} <= {"quarantined_bad_item_type", "extracts_delivered"}, report.summary_text()
