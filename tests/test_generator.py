"""The synthetic city (yibao.generator): layout, determinism, validity, exact defect ground truth.

The cities here are small (a few seconds each). Files are read back with a reader of this test's
own (not the loader), so the generator is checked against the contract, not against the loader.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import itertools
import json
import statistics
from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

import pytest

from yibao import codes
from yibao.config import PROJECT_ROOT
from yibao.contract import (
    AUDIT_RULES_COLUMNS,
    EXTRACTS,
    FEE_DETAIL,
    FEE_ITEM_TYPES,
    OPTIONAL_EXTRACTS,
    OPTIONAL_REFERENCE,
    REFERENCE,
)
from yibao.generator import (
    CHRONIC_DIAGNOSES,
    DEFECT_CLASSES,
    INPATIENT_DIAGNOSES,
    MATERNITY_INPATIENT,
    MATERNITY_OUTPATIENT,
    OUTPATIENT_DIAGNOSES,
    SURGERY_DIAGNOSES,
    TRAUMA_DIAGNOSES,
    estimate_rows_per_day,
    generate_city,
    volume_for_rows,
)

REFERENCE_DIR = PROJECT_ROOT / "tests" / "data" / "reference"  # the national lists, vendored
CENT = Decimal("0.01")
ZH = {e: {c.zh: c.name for c in ex.columns} for e, ex in {**EXTRACTS, "fee_detail": FEE_DETAIL}.items()}
DATE_STYLES = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d")

# One small city, clean and with defects: same seed and shape, so the dirty one is the clean one
# with the listed rows changed.
CITY = {"seed": 7, "hospitals": 6, "start": dt.date(2025, 12, 22), "end": dt.date(2026, 1, 12), "volume": 0.15}


@pytest.fixture(scope="module")
def clean_city(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("clean") / "landing"
    generate_city(landing, defect_rate=0.0, **CITY)
    return landing


@pytest.fixture(scope="module")
def dirty_city(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("dirty") / "landing"
    generate_city(landing, defect_rate=0.04, **CITY)
    return landing


@pytest.fixture(scope="module")
def very_dirty_city(tmp_path_factory) -> Path:
    """Half of all rows corrupted: every defect class shows up."""
    landing = tmp_path_factory.mktemp("very_dirty") / "landing"
    generate_city(landing, seed=3, hospitals=6, start=dt.date(2025, 3, 1), end=dt.date(2025, 3, 6),
                  volume=0.1, defect_rate=0.5)
    return landing


@pytest.fixture(scope="module")
def busy_city(tmp_path_factory) -> Path:
    """Two 三级 hospitals for six weeks across Spring Festival: enough for every rule to fire."""
    landing = tmp_path_factory.mktemp("busy") / "landing"
    generate_city(landing, seed=42, hospitals=2, start=dt.date(2025, 1, 20), end=dt.date(2025, 3, 2),
                  volume=0.8, defect_rate=0.0)
    return landing


# --- reading the landing zone back ------------------------------------------------------------


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    return str(v)


def raw_rows(path: Path) -> list[list[str]]:
    if path.name.endswith(".xlsx"):
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True)
        try:
            return [[_cell(v) for v in r] for r in wb.worksheets[0].iter_rows(values_only=True)]
        finally:
            wb.close()
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("gb18030")
    return list(csv.reader(io.StringIO(text, newline="")))


def read_extract(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(canonical column names in file order, rows as dicts)."""
    extract = path.name.split(".")[0]
    rows = raw_rows(path)
    names = [ZH[extract].get(h.strip(), h.strip()) for h in rows[0]]
    out = []
    for r in rows[1:]:
        assert len(r) <= len(names), f"{path}: {len(r)} fields, header has {len(names)}"
        out.append(dict(zip(names, r + [""] * (len(names) - len(r)))))
    return names, out


def extract_files(landing: Path):
    """(business date, hospital folder, extract name, path) of every extract file."""
    for day_dir in sorted(p for p in landing.iterdir() if p.name.isdigit()):
        day = dt.datetime.strptime(day_dir.name, "%Y%m%d").date()
        for hdir in sorted(day_dir.iterdir()):
            for path in sorted(hdir.iterdir()):
                if path.name != "_manifest.json":
                    yield day, hdir.name, path.name.split(".")[0], path


def reference(landing: Path, name: str) -> list[dict[str, str]]:
    with open(landing / "reference" / f"{name}.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def defects_of(landing: Path) -> list[dict]:
    return json.loads((landing / "_generator" / "defects.json").read_text(encoding="utf-8"))


def parse_date(text: str) -> dt.date | None:
    for style in DATE_STYLES:
        try:
            return dt.datetime.strptime(text, style).date()
        except ValueError:
            pass
    return None


def parse_datetime(text: str) -> dt.datetime | None:
    day, _, time = text.partition(" ")
    d = parse_date(day)
    if d is None or not time:
        return None
    try:
        return dt.datetime.combine(d, dt.time.fromisoformat(time))
    except ValueError:
        return None


def num(text: str) -> Decimal | None:
    try:
        return Decimal(text) if text else None
    except InvalidOperation:
        return None


class Context:
    def __init__(self, landing: Path):
        self.catalog = {r["consumable_code"]: r for r in reference(landing, "consumable_catalog")}
        self.hospitals = {r["hospital_code"]: r for r in reference(landing, "hospitals")}
        self.counties = {r["county_code"] for r in self.hospitals.values()}


def row_problems(extract: str, row: dict[str, str], folder: str, day: dt.date, ctx: Context) -> list[str]:
    """Every contract violation of one row, named like the generator's defect classes."""
    problems = []
    cols = EXTRACTS[extract].columns
    blank = {c.name for c in cols if row.get(c.name, "") == ""}
    for c in cols:
        if c.required and c.name in blank:
            problems.append("missing_required")
    if row["hospital_code"] and row["hospital_code"] != folder:
        problems.append("hospital_mismatch")
    for c in cols:
        v = row.get(c.name, "")
        if v and c.kind == "date" and parse_date(v) is None:
            problems.append("bad_date")
        if v and c.kind == "timestamp" and parse_datetime(v) is None:
            problems.append("bad_date")
        if v and c.kind in ("qty", "price", "money") and num(v) is None:
            problems.append("bad_number")
    pid = row.get("patient_id_no", "")
    if pid:
        reason = codes.validate_id_number(pid, day)
        if reason:
            problems.append(f"bad_id_{reason}")
    if extract in ("purchase", "usage"):
        code = row["consumable_code"]
        if code:
            if codes.validate_consumable_code(code):
                problems.append("bad_consumable_format")
            elif code not in ctx.catalog and not (len(code) == 27 and code[:20] in ctx.catalog):
                problems.append("unknown_consumable_code")
        if row["udi_di"]:
            reason = codes.validate_udi_di(row["udi_di"])
            if reason:
                problems.append(f"bad_udi_{reason}")
        qty = num(row["quantity"])
        price_col, amount_col = ("unit_price", "amount") if extract == "purchase" else ("charge_unit_price", "charge_amount")
        price, amount = num(row[price_col]), num(row[amount_col])
        if qty == 0:
            problems.append("zero_quantity")
        if price is not None and price <= 0:
            problems.append("nonpositive_price")
        if (qty is not None and price is not None and amount is not None
                and abs((qty * price).quantize(CENT, ROUND_HALF_UP) - amount) > CENT):
            problems.append("amount_mismatch")
    if extract == "purchase":
        if row["supplier_uscc"]:
            reason = codes.validate_uscc(row["supplier_uscc"])
            if reason:
                problems.append(f"bad_uscc_{reason}")
        o, d = parse_date(row["order_date"]), parse_date(row["delivery_date"])
        if o and d and d < o:
            problems.append("date_order")
        if row["via_platform"] and row["via_platform"] not in ("Y", "N", "是", "否"):
            problems.append("bad_flag")
    elif extract == "usage":
        if row["doctor_code"] and (codes.validate_doctor_code(row["doctor_code"]) or row["doctor_code"][1:7] not in ctx.counties):
            problems.append("bad_doctor_code")
    else:
        if row["principal_diagnosis"] and codes.validate_icd10(row["principal_diagnosis"]):
            problems.append("bad_icd10")
        if row["insurance_type"] and row["insurance_type"] not in codes.INSURANCE_TYPES:
            problems.append("unknown_insurance_type")
        if row["medical_category"] and row["medical_category"] not in codes.MEDICAL_CATEGORIES:
            problems.append("unknown_medical_category")
        parts = [num(row[c]) for c in ("fund_paid", "other_fund_paid", "account_paid", "cash_paid")]
        total = num(row["total_amount"])
        if total is not None and None not in parts and abs(total - sum(parts)) > CENT:
            problems.append("claim_parts_mismatch")
        fund, nego = parts[0], num(row["negotiated_drug_amount"])
        if fund is not None and nego is not None and (
            (fund >= 0 and not 0 <= nego <= fund) or (fund < 0 and not fund <= nego <= 0)
        ):
            problems.append("negotiated_exceeds_fund")
        a, d = parse_date(row["admission_date"]), parse_date(row["discharge_date"])
        if a and d and d < a:
            problems.append("date_order")
        inpatient = row["medical_category"] in codes.INPATIENT_CATEGORIES
        if inpatient and ("admission_date" in blank or "discharge_date" in blank):
            problems.append("missing_inpatient_dates")
        if row["medical_category"] in codes.MEDICAL_CATEGORIES and not inpatient and not {"admission_date", "discharge_date"} <= blank:
            problems.append("outpatient_with_dates")
    return problems


def load(landing: Path):
    """{relpath: (day, folder, extract, names, rows)} for every extract file."""
    out = {}
    for day, folder, extract, path in extract_files(landing):
        try:
            names, rows = read_extract(path)
        except EOFError:  # a truncated .csv.gz (a truncated_file defect)
            names, rows = [], None
        out[path.relative_to(landing).as_posix()] = (day, folder, extract, names, rows)
    return out


def latest(files: dict, extract: str) -> dict[tuple[str, str], dict]:
    key = EXTRACTS[extract].key
    out = {}
    for rel in sorted(files, key=lambda r: (files[r][0], r)):
        day, _, e, _, rows = files[rel]
        if e == extract:
            for r in rows:
                out[(r["hospital_code"], r[key])] = r | {"_day": day, "_file": rel}
    return out


# --- layout and formats --------------------------------------------------------------------------


def test_layout_matches_the_contract(clean_city):
    ref_names = sorted(p.stem for p in (clean_city / "reference").iterdir())
    assert ref_names == sorted(set(REFERENCE) - OPTIONAL_REFERENCE)  # no year after 2026 in range
    for name in ref_names:
        with open(clean_city / "reference" / f"{name}.csv", encoding="utf-8", newline="") as fh:
            assert next(csv.reader(fh)) == [c.name for c in REFERENCE[name]]
    hospitals = [r["hospital_code"] for r in reference(clean_city, "hospitals")]
    assert len(hospitals) == CITY["hospitals"]
    top = sorted(p.name for p in clean_city.iterdir())
    days = [(CITY["start"] + dt.timedelta(i)).strftime("%Y%m%d") for i in range((CITY["end"] - CITY["start"]).days + 1)]
    assert top == sorted(days + ["reference", "_generator"])
    extra_columns = Counter()
    for day in days:
        assert sorted(p.name for p in (clean_city / day).iterdir()) == sorted(hospitals)
        for h in hospitals:
            names = sorted(p.name for p in (clean_city / day / h).iterdir())
            stems = sorted(n.split(".")[0] for n in names if n != "_manifest.json")
            assert stems == ["claim", "purchase", "usage"], names
            for n in names:
                assert n == "_manifest.json" or n.endswith((".csv", ".csv.gz", ".xlsx")), n
            for n in names:
                if n == "_manifest.json":
                    continue
                extract = n.split(".")[0]
                header, _ = read_extract(clean_city / day / h / n)
                canonical = [c.name for c in EXTRACTS[extract].columns]
                assert header[: len(canonical)] == canonical, (day, h, n)
                extra_columns.update(header[len(canonical):])
    assert set(extra_columns) == {"备注"}  # one hospital's unknown extra column, in every file


def test_hospital_formats(clean_city):
    hospitals = [r["hospital_code"] for r in reference(clean_city, "hospitals")]
    day = clean_city / "20251222"
    h0, h1, h2, h3, h4, h5 = (day / h for h in hospitals)
    # 0: plain UTF-8, English headers, ISO dates, manifest
    data = (h0 / "claim.csv").read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf") and data.startswith(b"settlement_id,")
    assert (h0 / "_manifest.json").exists()
    # 1: UTF-8 with BOM, YYYYMMDD
    data = (h1 / "claim.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbfsettlement_id,")
    _, rows = read_extract(h1 / "claim.csv")
    assert rows and all(len(r["settled_at"].split(" ")[0]) == 8 for r in rows)
    # 2: GB18030, Chinese headers, CRLF, YYYY/MM/DD, 是/否
    data = (h2 / "purchase.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert data.decode("gb18030").startswith("采购明细号,定点医疗机构代码,")
    assert b"\r\n" in data
    _, rows = read_extract(h2 / "purchase.csv")
    assert rows and {r["via_platform"] for r in rows} <= {"是", "否"} and "/" in rows[0]["delivery_date"]
    # 3: usage as xlsx with typed cells; purchase and claim as csv
    assert (h3 / "usage.xlsx").exists() and (h3 / "claim.csv").exists()
    import openpyxl

    wb = openpyxl.load_workbook(h3 / "usage.xlsx", read_only=True)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    wb.close()
    assert rows[0][0] == "usage_id"
    for r in rows[1:]:
        assert isinstance(r[7], str) and isinstance(r[13], dt.datetime) and isinstance(r[10], int)
    # 4: gzip with mtime 0 and no file name
    for name in ("purchase.csv.gz", "usage.csv.gz", "claim.csv.gz"):
        data = (h4 / name).read_bytes()
        assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\0\0\0\0" and not data[3] & 0x08
    # 5: extra column and padded headers
    header = raw_rows(h5 / "claim.csv")[0]
    assert header[-1] == "备注" and header != [h.strip() for h in header]


def test_manifests_state_rows_and_sha(clean_city):
    manifests = list(clean_city.glob("*/*/_manifest.json"))
    assert manifests
    for m in manifests:
        data = json.loads(m.read_text(encoding="utf-8"))
        assert sorted(data) == ["claim", "purchase", "usage"]
        for extract, entry in data.items():
            path = next(m.parent.glob(f"{extract}.*"))
            assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
            assert entry["rows"] == len(raw_rows(path)) - 1


def test_same_arguments_same_bytes(tmp_path):
    args = {"seed": 11, "hospitals": 7, "start": dt.date(2026, 12, 28), "end": dt.date(2027, 1, 2), "volume": 0.1,
            "defect_rate": 0.05}
    a, b = tmp_path / "a", tmp_path / "b"
    summary = generate_city(a, **args)
    generate_city(b, **args)
    files_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert any(rel.endswith(".xlsx") for rel in files_a)
    assert summary.defects and sum(summary.defects.values()) == len(defects_of(a))
    # a different seed is a different city
    c = tmp_path / "c"
    generate_city(c, **(args | {"seed": 12}))
    assert (c / "20261228").exists()
    assert (a / "reference/fund_budgets.csv").read_bytes() != (c / "reference/fund_budgets.csv").read_bytes()


def test_workday_overrides_for_years_after_the_bundled_calendar(tmp_path):
    generate_city(tmp_path, hospitals=1, start=dt.date(2026, 12, 30), end=dt.date(2027, 1, 2), volume=0.05, defect_rate=0)
    rows = reference(tmp_path, "workday_overrides")
    days = {dt.date.fromisoformat(r["date"]): r["is_workday"] for r in rows}
    assert days and {d.year for d in days} == {2027}  # 2026 is in the bundled calendar
    assert days[dt.date(2027, 1, 1)] == "N"
    assert days[dt.date(2027, 2, 6)] == "N"  # Spring Festival
    assert days[dt.date(2027, 10, 1)] == "N"
    assert "Y" in days.values()  # adjusted working days (调休) fall on weekends
    assert all(d.weekday() >= 5 for d, w in days.items() if w == "Y")
    budgets = reference(tmp_path, "fund_budgets")
    assert {r["year"] for r in budgets} == {"2026", "2027"}


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        generate_city(tmp_path, start=dt.date(2025, 2, 1), end=dt.date(2025, 1, 1))
    with pytest.raises(ValueError):
        generate_city(tmp_path, hospitals=0, start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 1))
    with pytest.raises(ValueError):
        generate_city(tmp_path, start=dt.date(2031, 1, 1), end=dt.date(2031, 1, 2))


def test_sizing_helpers():
    est = estimate_rows_per_day(60, volume_for_rows(1_000_000, 60))
    assert abs(est["total"] - 1_000_000) < 10
    assert est["claim"] > est["usage"] > est["purchase"]


# --- a clean city is clean -------------------------------------------------------------------------


def test_clean_city_has_no_contract_violation(clean_city):
    ctx = Context(clean_city)
    files = load(clean_city)
    assert sum(len(f[4]) for f in files.values()) > 3000
    counts = Counter()
    for rel, (day, folder, extract, _, rows) in files.items():
        keys = Counter(r[EXTRACTS[extract].key] for r in rows)
        assert max(keys.values(), default=1) == 1, rel
        for n, row in enumerate(rows, 1):
            assert row_problems(extract, row, folder, day, ctx) == [], (rel, n, row)
            counts[extract] += 1
            if extract == "usage":
                assert parse_datetime(row["used_at"]).date() == day
            if extract == "claim":
                assert parse_datetime(row["settled_at"]).date() == day
    assert all(counts[e] for e in EXTRACTS if e not in OPTIONAL_EXTRACTS)  # fee_detail: optional per hospital
    assert defects_of(clean_city) == []
    summary = json.loads((clean_city / "_generator" / "summary.json").read_text(encoding="utf-8"))
    assert summary["rows"] == dict(counts)
    assert set(summary["defects"]) == set(DEFECT_CLASSES) and not any(summary["defects"].values())


def test_patients_are_consistent(clean_city):
    files = load(clean_city)
    insurance = defaultdict(set)
    for _, _, extract, _, rows in files.values():
        if extract != "claim":
            continue
        for r in rows:
            insurance[r["patient_id_no"]].add(r["insurance_type"])
    assert len(insurance) > 500
    assert all(len(v) == 1 for v in insurance.values())
    usage = latest(files, "usage")
    claims = latest(files, "claim")
    claim_patient = {(r["hospital_code"], r["visit_id"]): r["patient_id_no"] for r in claims.values()}
    linked = 0
    for u in usage.values():
        key = (u["hospital_code"], u["visit_id"])
        if key in claim_patient:
            linked += 1
            assert claim_patient[key] == u["patient_id_no"]
        else:  # a visit is settled at discharge: only the last days may still be in hospital
            assert u["_day"] > CITY["end"] - dt.timedelta(days=12), u
    assert linked > 0.5 * len(usage)
    surgery_visits = defaultdict(set)
    for u in usage.values():
        surgery_visits[(u["hospital_code"], u["surgery_id"])].add(u["visit_id"])
    assert all(len(v) == 1 for v in surgery_visits.values())


def test_claims_add_up_and_reversals_negate_their_originals(clean_city):
    files = load(clean_city)
    claims = latest(files, "claim")
    amounts = ("total_amount", "fund_paid", "other_fund_paid", "account_paid", "cash_paid", "negotiated_drug_amount")
    reversals = [r for r in claims.values() if r["reversal_of"]]
    assert reversals
    months = set()
    for r in reversals:
        original = claims[(r["hospital_code"], r["reversal_of"])]
        assert not original["reversal_of"]
        for col in amounts:
            assert Decimal(r[col]) == -Decimal(original[col]), col
        for col in ("visit_id", "patient_id_no", "insurance_type", "medical_category", "principal_diagnosis"):
            assert r[col] == original[col]
        assert parse_date(r["admission_date"] or "x") == parse_date(original["admission_date"] or "x")
        assert parse_datetime(r["settled_at"]).date() > parse_datetime(original["settled_at"]).date()
        assert r["_day"] > original["_day"]
        months.add(parse_datetime(r["settled_at"]).month != parse_datetime(original["settled_at"]).month)
    assert True in months  # some reversal is settled in a later month (here: the next year)
    reversed_ids = Counter((r["hospital_code"], r["reversal_of"]) for r in reversals)
    assert max(reversed_ids.values()) == 1
    categories = Counter(r["medical_category"] for r in claims.values())
    assert {"11", "14", "21", "51", "52"} <= set(categories)
    assert categories["11"] > categories["21"] > categories["52"]
    assert {r["insurance_type"] for r in claims.values()} == {"310", "390"}
    assert any(Decimal(r["negotiated_drug_amount"]) > 0 for r in claims.values())
    assert any(Decimal(r["other_fund_paid"]) > 0 for r in claims.values())


def test_diagnoses_and_drg_groups_are_real():
    icd = {line.split("\t")[0] for line in (REFERENCE_DIR / "icd10_chs_diagnoses.tsv").read_text(encoding="utf-8").splitlines()[1:]}
    drg = {line.split("\t")[0] for line in (REFERENCE_DIR / "chs_drg_11_groups.tsv").read_text(encoding="utf-8").splitlines()[1:]}
    used = set(OUTPATIENT_DIAGNOSES) | set(CHRONIC_DIAGNOSES) | set(MATERNITY_OUTPATIENT)
    groups = set()
    for pairs in (INPATIENT_DIAGNOSES, TRAUMA_DIAGNOSES, MATERNITY_INPATIENT):
        used |= {c for c, _ in pairs}
        groups |= {g for _, g in pairs}
    for rows in SURGERY_DIAGNOSES.values():
        used |= {r[0] for r in rows}
        groups |= {r[1] for r in rows}
    assert used - icd == set()
    assert groups - drg == set()


def test_reference_data_is_consistent(clean_city):
    catalog = {r["consumable_code"]: r for r in reference(clean_city, "consumable_catalog")}
    for code, r in catalog.items():
        assert codes.validate_consumable_code(code) is None
        assert r["category_code"] == code[:7] and r["is_high_value"] in "YN" and r["status"] in ("active", "retired")
        if len(code) == 27:
            assert code[:20] in catalog
    assert sum(len(c) == 27 for c in catalog) >= 2 and any(r["status"] == "retired" for r in catalog.values())
    hospitals = reference(clean_city, "hospitals")
    for h in hospitals:
        assert codes.validate_hospital_code(h["hospital_code"]) is None
        assert codes.hospital_region(h["hospital_code"]) == h["county_code"] and h["county_code"].startswith("4107")
        assert h["level"] in ("三级", "二级", "一级", "基层") and h["ownership"] in ("public", "private")
    assert len({h["hospital_name"] for h in hospitals}) == len(hospitals)
    batches = {b["batch_id"]: b for b in reference(clean_city, "vbp_batches")}
    by_prefix = defaultdict(list)
    for b in batches.values():
        by_prefix[b["category_prefix"]].append((dt.date.fromisoformat(b["cycle_start"]), dt.date.fromisoformat(b["cycle_end"])))
    assert set(by_prefix) == {"C020202", "C031001"}
    for cycles in by_prefix.values():  # cycles cover the range without overlap
        cycles.sort()
        assert cycles[0][0] <= CITY["start"] and cycles[-1][1] >= CITY["end"]
        for (_, e1), (s2, _) in itertools.pairwise(cycles):
            assert s2 == e1 + dt.timedelta(1)
    groups = set()
    for p in reference(clean_city, "vbp_products"):
        b = batches[p["batch_id"]]
        assert p["consumable_code"] in catalog and p["consumable_code"].startswith(b["category_prefix"])
        price, pre = Decimal(p["selected_price"]), Decimal(p["pre_vbp_price"])
        if b["category_prefix"] == "C020202":
            assert 469 <= price <= 798 and 10000 <= pre <= 13000
        else:
            assert 5000 <= price <= 7500 and pre >= 30000
        groups.add((p["batch_id"], p["product_group"]))
    non_selected = [c for c in catalog if c.startswith(("C020202", "C031001")) and catalog[c]["status"] == "active"
                    and c not in {p["consumable_code"] for p in reference(clean_city, "vbp_products")}]
    assert non_selected
    agreed = reference(clean_city, "vbp_agreed_volumes")
    assert agreed
    for a in agreed:
        assert (a["batch_id"], a["product_group"]) in groups
        assert a["hospital_code"] in {h["hospital_code"] for h in hospitals}
        assert int(a["base_qty"]) > 0 and a["agreed_ratio"] in ("0.7", "0.8", "0.55")


def test_budgets_cover_every_hospital_type_and_year(clean_city):
    files = load(clean_city)
    budgets = {(r["hospital_code"], r["insurance_type"], r["year"]): r for r in reference(clean_city, "fund_budgets")}
    hospitals = [r["hospital_code"] for r in reference(clean_city, "hospitals")]
    years = [str(y) for y in range(CITY["start"].year, CITY["end"].year + 1)]
    assert set(budgets) == {(h, t, y) for h in hospitals for t in ("310", "390") for y in years}
    for _, _, extract, _, rows in files.values():
        if extract != "claim":
            continue
        for r in rows:
            assert (r["hospital_code"], r["insurance_type"], str(parse_datetime(r["settled_at"]).year)) in budgets
    weighted = [r for r in budgets.values() if r["m01_weight"]]
    assert weighted and len({r["hospital_code"] for r in weighted}) == 1
    for r in weighted:
        assert sum(Decimal(r[f"m{m:02d}_weight"]) for m in range(1, 13)) == 1
    for r in budgets.values():
        assert Decimal(r["annual_budget"]) > 0 and Decimal(r["annual_budget"]).as_tuple().exponent == -2
        if r not in weighted:
            assert all(r[f"m{m:02d}_weight"] == "" for m in range(1, 13))
    params = reference(clean_city, "settlement_params")
    assert [p["year"] for p in params] == years
    for p in params:
        assert Decimal("0.6") <= Decimal(p["surplus_retention_rate"]) <= 1
        assert 0 <= Decimal(p["overspend_share_rate"]) <= Decimal("0.3")


# --- defects: exactly what defects.json says ---------------------------------------------------------

CHANGED_COLUMNS = {"zero_quantity": {"quantity", "amount", "charge_amount"}}  # beyond the listed column


def check_defects_against_files(landing: Path) -> Counter:
    ctx = Context(landing)
    files = load(landing)
    defects = defects_of(landing)
    summary = json.loads((landing / "_generator" / "summary.json").read_text(encoding="utf-8"))
    by_class = Counter(d["class"] for d in defects)
    assert {k: v for k, v in summary["defects"].items() if v} == dict(by_class)
    assert set(by_class) <= set(DEFECT_CLASSES)
    file_level = {d["file"]: d for d in defects if d["row"] is None}
    rows_listed = defaultdict(dict)
    for d in defects:
        if d["row"] is not None:
            assert d["file"] not in file_level, d  # a rejected file carries no row defects
            assert d["row"] not in rows_listed[d["file"]], d  # one defect per row
            rows_listed[d["file"]][d["row"]] = d
    for rel, (day, folder, extract, _, rows) in files.items():
        if file_level.get(rel, {}).get("class") == "truncated_file":
            continue
        assert rows is not None, rel
        listed = rows_listed.get(rel, {})
        keys = Counter(r[EXTRACTS[extract].key] for r in rows)
        for n, row in enumerate(rows, 1):
            problems = row_problems(extract, row, folder, day, ctx)
            d = listed.get(n)
            if d is None:
                assert problems == [] and keys[row[EXTRACTS[extract].key]] == 1, (rel, n, problems)
                continue
            if d["class"] == "duplicate_key":
                also = d.get("also")  # the copy is malformed too (its other defect)
                assert problems == ([also["class"]] if also else []), (rel, n, d, problems)
                assert keys[row[d["column"]]] == 2 and row[d["column"]] == d["value"], (rel, n)
                pair = n + 1 if listed.get(n + 1, {}).get("value") == d["value"] and rows[n][d["column"]] == d["value"] else n - 1
                partner = rows[pair - 1]
                assert listed[pair]["class"] == "duplicate_key"
                if also or listed[pair].get("also"):
                    cls = (also or listed[pair]["also"])["class"]
                    column = (also or listed[pair]["also"])["column"]
                    diff = {k for k in row if row[k] != partner[k]}
                    assert diff and diff <= {column} | CHANGED_COLUMNS.get(cls, set()), (rel, n, diff)
                else:
                    assert partner == row
            else:
                assert problems == [d["class"]], (rel, n, d, problems)
                if d["column"] in row and not rel.endswith(".xlsx"):
                    assert row[d["column"]] == d["value"], (rel, n, d)
    for rel, d in file_level.items():
        if d["class"] == "missing_file":  # never arrived: no file, and no manifest entry for it
            assert rel not in files and not (landing / rel).exists(), rel
            manifest_path = (landing / rel).parent / "_manifest.json"
            if manifest_path.exists():
                assert rel.split("/")[-1].split(".")[0] not in json.loads(manifest_path.read_text(encoding="utf-8"))
            continue
        manifest = json.loads((landing / rel).parent.joinpath("_manifest.json").read_text(encoding="utf-8"))
        entry = manifest[EXTRACTS[rel.split("/")[-1].split(".")[0]].name]
        data = (landing / rel).read_bytes()
        if d["class"] == "truncated_file":
            assert len(data) < int(d["value"].split(" of ")[1].split()[0]) and entry["sha256"] != hashlib.sha256(data).hexdigest()
        else:
            assert d["class"] == "bad_manifest"
            true_rows = len(raw_rows(landing / rel)) - 1
            assert (entry["rows"], entry["sha256"]) != (true_rows, hashlib.sha256(data).hexdigest())
            assert str(entry[d["column"]]) == d["value"]
    return by_class


def test_defects_json_matches_the_files(dirty_city):
    by_class = check_defects_against_files(dirty_city)
    assert sum(by_class.values()) > 100


def test_every_defect_class_is_injected_and_recorded(very_dirty_city):
    by_class = check_defects_against_files(very_dirty_city)
    assert set(by_class) == set(DEFECT_CLASSES)


def test_defects_are_the_clean_city_with_listed_changes(clean_city, dirty_city):
    """Defects come from their own random stream: every unlisted row equals the clean city's row."""
    clean, dirty = load(clean_city), load(dirty_city)
    defects = defects_of(dirty_city)
    missing = {d["file"] for d in defects if d["class"] == "missing_file"}
    assert len(missing) == 1 and missing <= set(clean)  # one claim file in the middle never arrives
    assert sorted(clean) == sorted([*dirty, *missing])
    (rel,) = missing
    assert rel.endswith("/claim.csv") or "/claim." in rel
    assert CITY["start"] < dt.datetime.strptime(rel.split("/")[0], "%Y%m%d").date() < CITY["end"]
    listed = defaultdict(dict)
    for d in defects:
        listed[d["file"]][d["row"]] = d
    changed_columns = CHANGED_COLUMNS
    compared = 0
    for rel in clean:
        if rel in missing:
            continue
        c_rows, d_rows = clean[rel][4], dirty[rel][4]
        file_defect = listed[rel].get(None)
        if file_defect and file_defect["class"] == "truncated_file":
            cut = (dirty_city / rel).read_bytes()
            assert cut == (clean_city / rel).read_bytes()[: len(cut)]
            continue
        if file_defect:  # bad manifest: the file itself is the clean file
            assert (dirty_city / rel).read_bytes() == (clean_city / rel).read_bytes()
        # drop the inserted copies of duplicate rows (the second row of each pair)
        dup_rows = sorted(n for n, d in listed[rel].items() if n and d["class"] == "duplicate_key")
        copies = set(dup_rows[1::2])
        kept = [r for n, r in enumerate(d_rows, 1) if n not in copies]
        kept_numbers = [n for n in range(1, len(d_rows) + 1) if n not in copies]
        assert len(kept) == len(c_rows), rel
        for n, c_row, d_row in zip(kept_numbers, c_rows, kept):
            d = listed[rel].get(n)
            diff = {k for k in c_row if c_row[k] != d_row[k]}
            if d is None or d["class"] == "duplicate_key":
                assert diff == set(), (rel, n, diff)
            else:
                assert diff and diff <= {d["column"]} | changed_columns.get(d["class"], set()), (rel, n, d, diff)
            compared += 1
    assert compared > 3000


# --- the rules have something to find ---------------------------------------------------------------


def test_busy_city_exercises_the_rules(busy_city):
    files = load(busy_city)
    purchases, usage, claims = (latest(files, e) for e in ("purchase", "usage", "claim"))
    products = {p["consumable_code"]: p for p in reference(busy_city, "vbp_products") if p["batch_id"] in ("ZJ2025", "GJ2024")}
    # R1 zero markup: most charges equal the latest purchase price, some are marked up, few untraceable
    bought = defaultdict(list)
    for p in purchases.values():
        if Decimal(p["quantity"]) > 0:
            bought[(p["hospital_code"], p["consumable_code"])].append((parse_date(p["delivery_date"]), Decimal(p["unit_price"])))
    equal = marked_up = untraceable = 0
    for u in usage.values():
        used = parse_datetime(u["used_at"]).date()
        earlier = [b for b in bought[(u["hospital_code"], u["consumable_code"])] if b[0] <= used]
        if not earlier:
            untraceable += 1
            continue
        last = max(b[0] for b in earlier)
        ref = max(b[1] for b in earlier if b[0] == last)
        price = Decimal(u["charge_unit_price"])
        equal += price == ref
        marked_up += price > ref
    assert equal > 10 * marked_up > 0 and untraceable > 0
    # R3: selected products bought at another price; R4: off-platform purchases
    violations = [p for p in purchases.values() if p["consumable_code"] in products and Decimal(p["quantity"]) > 0
                  and Decimal(p["unit_price"]) != Decimal(products[p["consumable_code"]]["selected_price"])]
    assert violations
    assert any(p["via_platform"] == "N" for p in purchases.values())
    # R5: payments re-sent later under the same line id; returns; R1/R6 refunds
    resent = [p for p in purchases.values() if p["paid_date"]]
    assert resent and all(p["_day"] == parse_date(p["paid_date"]) > parse_date(p["delivery_date"]) for p in resent)
    assert any(Decimal(p["quantity"]) < 0 for p in purchases.values())
    assert any(Decimal(u["quantity"]) < 0 for u in usage.values())
    # R9 single_brand: a doctor with ≥ 10 units in a month of one VBP category, ≥ 80 % one brand
    per_doctor = defaultdict(Counter)
    for u in usage.values():
        for prefix in ("C020202", "C031001"):
            if u["consumable_code"].startswith(prefix):
                month = parse_datetime(u["used_at"]).strftime("%Y-%m")
                per_doctor[(u["doctor_code"], month, prefix)][codes.consumable_brand(u["consumable_code"])] += int(u["quantity"])
    shares = [max(c.values()) / sum(c.values()) for c in per_doctor.values() if sum(c.values()) >= 10]
    assert any(s >= 0.8 for s in shares) and any(s < 0.8 for s in shares)
    # R9 surgery_cost: groups of ≥ 5 surgeries per diagnosis and month, some above 3 × the median
    high_value = {r["consumable_code"] for r in reference(busy_city, "consumable_catalog") if r["is_high_value"] == "Y"}
    cost = defaultdict(Decimal)
    visit_of = {}
    for u in usage.values():
        if u["consumable_code"] in high_value:
            cost[(u["hospital_code"], u["surgery_id"])] += Decimal(u["charge_amount"])
            visit_of[(u["hospital_code"], u["surgery_id"])] = (u["visit_id"], parse_datetime(u["used_at"]).strftime("%Y-%m"))
    diagnosis = {(c["hospital_code"], c["visit_id"]): c["principal_diagnosis"] for c in claims.values() if not c["reversal_of"]}
    groups = defaultdict(list)
    for key, amount in cost.items():
        visit, month = visit_of[key]
        if (key[0], visit) in diagnosis:
            groups[(diagnosis[(key[0], visit)], month)].append(amount)
    big = [g for g in groups.values() if len(g) >= 5]
    assert len(big) >= 3
    assert any(max(g) > 3 * statistics.median(g) for g in big)
    # R7/R8: budgets are near what the hospitals declare
    budgets = {(b["hospital_code"], b["insurance_type"]): Decimal(b["annual_budget"]) for b in reference(busy_city, "fund_budgets")}
    declared = defaultdict(Decimal)
    for c in claims.values():
        declared[(c["hospital_code"], c["insurance_type"])] += Decimal(c["fund_paid"]) - Decimal(c["negotiated_drug_amount"])
    days = (dt.date(2025, 3, 2) - dt.date(2025, 1, 20)).days + 1
    for key, amount in declared.items():
        pace = amount / budgets[key] * 365 / days
        assert Decimal("0.5") < pace < Decimal("1.6"), (key, pace)
    # R10: patients come back
    patients = {c["patient_id_no"] for c in claims.values()}
    assert len(claims) / len(patients) > 1.3


# --- fee_detail and the smart-audit ground truth ---------------------------------------------------

# Half of the six hospitals send fee_detail: #0 (三级, UTF-8), #2 (二级, GB18030 + Chinese headers + CRLF),
# #4 (一级, gzip): one per format family and level.
FEE_CITY = {**CITY, "fee_detail": 0.5}
LINE_RULE_TYPES = ("sex", "age", "hospital_level", "inpatient_only")
NATIONAL = PROJECT_ROOT / "src" / "yibao" / "data" / "audit_rules_national.csv"
LEVEL_RANK = {"基层": 1, "一级": 2, "二级": 3, "三级": 4}


@pytest.fixture(scope="module")
def fee_city(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("fees") / "landing"
    generate_city(landing, defect_rate=0.0, **FEE_CITY)
    return landing


def _json(landing: Path, name: str):
    return json.loads((landing / "_generator" / name).read_text(encoding="utf-8"))


def fee_files(landing: Path) -> dict[str, tuple[dt.date, str, list[dict[str, str]]]]:
    return {path.relative_to(landing).as_posix(): (day, folder, read_extract(path)[1])
            for day, folder, extract, path in extract_files(landing) if extract == "fee_detail"}


def loaded_fee_lines(landing: Path):
    """(folder, row) of every fee line that loads (defects.json's rows are quarantined)."""
    bad = {(d["file"], d["row"]) for d in defects_of(landing)}
    for rel, (_, folder, rows) in fee_files(landing).items():
        for n, row in enumerate(rows, 1):
            if (rel, n) not in bad:
                yield folder, row


def effective_library(landing: Path) -> list[dict[str, str]]:
    """National rows, a bureau row replacing a national one with the same rule_id (decision 1 of issue 14)."""
    with open(NATIONAL, encoding="utf-8", newline="") as fh:
        rows = {r["rule_id"]: r for r in csv.DictReader(fh)}
    rows.update({r["rule_id"]: r for r in reference(landing, "audit_rules")})
    return list(rows.values())


def test_fee_detail_layout_and_bureau_rules(fee_city):
    hospitals = reference(fee_city, "hospitals")
    senders = _json(fee_city, "summary.json")["audit"]["fee_hospitals"]
    assert senders == sorted(hospitals[i]["hospital_code"] for i in (0, 2, 4))
    days = 0
    for day_dir in (p for p in fee_city.iterdir() if p.name.isdigit()):
        days += 1
        for hdir in day_dir.iterdir():
            stems = {p.name.split(".")[0] for p in hdir.iterdir()} - {"_manifest"}
            assert stems == ({"purchase", "usage", "claim", "fee_detail"} if hdir.name in senders
                             else {"purchase", "usage", "claim"}), hdir
            manifest = hdir / "_manifest.json"
            if manifest.exists() and hdir.name in senders:
                entry = json.loads(manifest.read_text(encoding="utf-8"))["fee_detail"]
                path = next(hdir.glob("fee_detail.*"))
                assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert days == (FEE_CITY["end"] - FEE_CITY["start"]).days + 1
    with open(fee_city / "reference" / "audit_rules.csv", encoding="utf-8", newline="") as fh:
        assert next(csv.reader(fh)) == [c.name for c in AUDIT_RULES_COLUMNS]
    bureau = reference(fee_city, "audit_rules")
    with open(NATIONAL, encoding="utf-8", newline="") as fh:
        national = {r["rule_id"]: r for r in csv.DictReader(fh)}
    types = Counter(r["rule_type"] for r in bureau)
    assert {"repeat_exam", "positive_rate", "readmission", "indication"} <= set(types)
    for r in bureau:
        if r["rule_id"] in national:  # a national rule the bureau applies earlier: only the dates and source differ
            same = {k: v for k, v in national[r["rule_id"]].items() if k not in ("effective_from", "source")}
            assert {k: v for k, v in r.items() if k not in ("effective_from", "source")} == same
            assert r["effective_from"] <= national[r["rule_id"]]["effective_from"]
        else:
            assert r["rule_id"].startswith("LOC-") and r["rule_type"] in ("indication", "repeat_exam", "positive_rate",
                                                                          "readmission")


def test_fee_lines_are_valid_and_consistent_with_claims(fee_city):
    claims = {}
    for day, folder, extract, path in extract_files(fee_city):
        if extract == "claim":
            for r in read_extract(path)[1]:
                if not r["reversal_of"]:
                    claims.setdefault((folder, r["visit_id"]), []).append((day, r))
    flagged_visits = {(f["hospital_code"], f["visit_id"]) for f in _json(fee_city, "audit_findings.json")}
    totals: Counter = Counter()
    ids = Counter()
    n = 0
    for rel, (day, folder, rows) in fee_files(fee_city).items():
        for r in rows:
            n += 1
            ids[(folder, r["fee_line_id"])] += 1
            assert r["hospital_code"] == folder, rel
            assert r["item_type"] in FEE_ITEM_TYPES and r["item_type"] != "31", r
            code = r["item_code"]
            if r["item_type"] == "11":
                assert len(code) == 23 and code[0] == "X" and code.isalnum() and code.upper() == code, r
            elif r["item_type"] == "12":
                assert len(code) == 20 and code[0] == "Z" and code.isalnum() and code.upper() == code, r
            else:
                assert r["item_type"] == "21" and len(code) == 15 and code.isdigit() and code[:2] == "00", r
            assert r["item_name"] and r["dept_code"] and r["doctor_code"]
            qty, price, amount = int(r["quantity"]), Decimal(r["unit_price"]), Decimal(r["amount"])
            assert qty != 0 and price > 0 and -price.as_tuple().exponent <= 4
            assert amount == (qty * price).quantize(CENT, rounding=ROUND_HALF_UP), r
            assert r["exam_result"] in ("", "P", "N") and (not r["exam_result"] or r["item_type"] == "21")
            charged = parse_datetime(r["charged_at"])
            assert charged is not None and charged.date() <= day, r
            assert codes.validate_id_number(r["patient_id_no"]) is None, r
            settled = claims[(folder, r["visit_id"])]  # every visit has its claim, in the same folder
            assert settled[0][0] == day and settled[0][1]["patient_id_no"] == r["patient_id_no"]
            admission = parse_date(settled[0][1]["admission_date"]) if settled[0][1]["admission_date"] else day
            assert admission <= charged.date(), r
            totals[(folder, r["visit_id"])] += amount
    assert n > 5000 and max(ids.values()) == 1
    assert sum(1 for r in (x for f in fee_files(fee_city).values() for x in f[2]) if int(r["quantity"]) < 0) > 0
    assert {r["exam_result"] for f in fee_files(fee_city).values() for r in f[2]} == {"", "P", "N"}
    for visit, total in totals.items():  # clean visits stay within the claim's total_amount
        if visit not in flagged_visits:
            assert total <= Decimal(claims[visit][0][1]["total_amount"]), visit
    summary = _json(fee_city, "summary.json")
    assert summary["rows"]["fee_detail"] == n


def test_audit_ground_truth_covers_every_rule_type(fee_city):
    findings = _json(fee_city, "audit_findings.json")
    by_type = Counter(f["rule_type"] for f in findings)
    expected = {"sex", "age", "hospital_level", "inpatient_only", "daily_quantity", "min_interval_days",
                "course_days", "included_in", "indication", "repeat_exam", "readmission"}  # R11-R20, R22
    assert set(by_type) == expected and all(by_type.values()), by_type
    assert _json(fee_city, "summary.json")["audit"]["findings_by_rule_type"] == dict(sorted(by_type.items()))
    assert any(f["is_cross_hospital"] for f in findings if f["rule_type"] == "repeat_exam")
    assert len({(f["rule_id"], f["subject_id"]) for f in findings}) == len(findings)  # one row per rule × subject
    lines = {(folder, r["fee_line_id"]): r for _, folder, rows in fee_files(fee_city).values() for r in rows}
    severities = {r["rule_id"]: r["severity"] for r in effective_library(fee_city)}
    for f in findings:
        assert f["severity"] == severities[f["rule_id"]]
        if f["subject_type"] == "settlement":
            assert f["rule_type"] == "readmission" and f["severity"] == "suspicious"
            continue
        line = lines[(f["hospital_code"], f["subject_id"])]
        assert (line["visit_id"], line["patient_id_no"], line["item_code"]) == (
            f["visit_id"], f["patient_id_no"], f["item_code"])
        assert parse_datetime(line["charged_at"]).date().isoformat() == f["charge_date"]
        if f["rule_type"] != "daily_quantity":  # whole line
            assert (f["flagged_quantity"], f["flagged_amount"]) == (line["quantity"], line["amount"]), f
        else:
            assert 0 < int(f["flagged_quantity"]) <= int(line["quantity"])
    rates = _json(fee_city, "exam_positive_rate.json")
    assert rates and {r["is_alert"] for r in rates} == {True, False}


def line_rule_violations(fee_city: Path) -> set[tuple[str, str]]:
    """(rule_id, fee_line_id) of every per-line rule (sex, age, level, inpatient-only) a fee line breaks:
    an independent check against the library."""
    library = effective_library(fee_city)
    by_prefix: dict[str, list[dict]] = {}
    for r in library:
        if r["rule_type"] in LINE_RULE_TYPES:
            by_prefix.setdefault(r["item_prefix"], []).append(r)
    lengths = sorted({len(p) for p in by_prefix})
    levels = {r["hospital_code"]: LEVEL_RANK[r["level"]] for r in reference(fee_city, "hospitals")}
    categories = {}  # the visit's settlement, where it loads
    rejected = {d["file"] for d in defects_of(fee_city) if d["row"] is None}
    for _, folder, extract, path in extract_files(fee_city):
        if extract == "claim" and path.relative_to(fee_city).as_posix() not in rejected:
            for r in read_extract(path)[1]:
                categories[(folder, r["visit_id"])] = r["medical_category"]
    found = set()
    for folder, line in loaded_fee_lines(fee_city):
        code, pid = line["item_code"], line["patient_id_no"]
        charged = parse_datetime(line["charged_at"]).date()
        sex = "M" if int(pid[16]) % 2 else "F"
        age = (charged - dt.date(int(pid[6:10]), int(pid[10:12]), int(pid[12:14]))).days
        for n in lengths:
            for r in by_prefix.get(code[:n], ()):
                if not (r["effective_from"] <= charged.isoformat() and (not r["effective_to"]
                                                                       or charged.isoformat() <= r["effective_to"])):
                    continue
                kind = r["rule_type"]
                if kind == "sex":
                    bad = sex != r["allowed_sex"]
                elif kind == "age":
                    bad = (r["min_age_days"] and age < int(r["min_age_days"])) or (
                        r["max_age_days"] and age > int(r["max_age_days"]))
                elif kind == "hospital_level":
                    bad = levels[folder] < LEVEL_RANK[r["min_hospital_level"]]
                else:
                    bad = categories.get((folder, line["visit_id"])) in ("11", "12", "13", "14", "16", "41", "51")
                if bad:
                    found.add((r["rule_id"], line["fee_line_id"]))
    return found


def test_no_line_rule_violation_outside_the_ground_truth(fee_city):
    truth = {(f["rule_id"], f["subject_id"]) for f in _json(fee_city, "audit_findings.json")
             if f["rule_type"] in LINE_RULE_TYPES}
    assert line_rule_violations(fee_city) == truth and truth


def exam_positive_rates(fee_city: Path) -> dict[tuple, list[int]]:
    """(hospital, month, exam class) → [examined, positive], recomputed from the fee lines that load."""
    rules = [r for r in effective_library(fee_city) if r["rule_type"] == "positive_rate"]
    levels = {r["hospital_code"]: LEVEL_RANK[r["level"]] for r in reference(fee_city, "hospitals")}
    counts: dict[tuple, list[int]] = {}
    for folder, line in loaded_fee_lines(fee_city):
        if levels[folder] < 3 or not line["exam_result"] or int(line["quantity"]) <= 0:
            continue
        month = parse_datetime(line["charged_at"]).date().replace(day=1).isoformat()
        for r in rules:
            if line["item_code"].startswith(r["item_prefix"]):
                c = counts.setdefault((folder, month, r["exam_class"]), [0, 0])
                c[0] += 1
                c[1] += line["exam_result"] == "P"
    return counts


def positive_rate_truth(landing: Path) -> dict[tuple, list[int]]:
    return {(r["hospital_code"], r["month_start"], r["exam_class"]): [r["examined_count"], r["positive_count"]]
            for r in _json(landing, "exam_positive_rate.json")}


def test_exam_positive_rates_recomputed(fee_city):
    assert exam_positive_rates(fee_city) == positive_rate_truth(fee_city)


def test_fee_detail_is_reproducible_and_leaves_purchases_and_usage_alone(fee_city, clean_city, tmp_path):
    again = tmp_path / "again"
    generate_city(again, defect_rate=0.0, **FEE_CITY)
    for p in sorted(fee_city.rglob("*")):
        if p.is_file():
            assert (again / p.relative_to(fee_city)).read_bytes() == p.read_bytes(), p
    for _, _, extract, path in extract_files(clean_city):  # same seed without fee_detail
        if extract in ("purchase", "usage"):
            assert (fee_city / path.relative_to(clean_city)).read_bytes() == path.read_bytes(), path


def test_fee_city_with_defects_keeps_an_exact_ground_truth(tmp_path):
    """Fee lines get row defects of their own; what defects make unloadable never carries a finding."""
    landing = tmp_path / "dirty_fees"
    generate_city(landing, defect_rate=0.04, **FEE_CITY)
    defects = defects_of(landing)
    fee_defects = [d for d in defects if "/fee_detail." in d["file"]]
    assert {d["class"] for d in fee_defects} == {"bad_item_code", "bad_item_type", "amount_mismatch",
                                                   "bad_exam_result"}
    fee_rows = {rel: rows for rel, (_, _, rows) in fee_files(landing).items()}
    for d in fee_defects:  # the listed field holds the listed value, and it is wrong
        row = fee_rows[d["file"]][d["row"] - 1]
        assert row[d["column"]] == d["value"], d
        if d["class"] == "bad_item_code":
            code = d["value"]
            assert not ((row["item_type"] == "11" and len(code) == 23 and code.isalnum())
                        or (row["item_type"] == "12" and len(code) == 20 and code.isalnum())
                        or (row["item_type"] == "21" and len(code) == 15 and code.isdigit())), d
        elif d["class"] == "bad_item_type":
            assert d["value"] not in FEE_ITEM_TYPES
        elif d["class"] == "amount_mismatch":
            qty, price = int(row["quantity"]), Decimal(row["unit_price"])
            assert abs(Decimal(d["value"]) - qty * price) >= 1
        else:
            assert d["value"] not in ("", "P", "N")
    summary = _json(landing, "summary.json")
    assert all(summary["defects"][c] == sum(1 for d in defects if d["class"] == c) for c in summary["defects"])
    lost_files = {d["file"] for d in defects if d["row"] is None}
    lost_rows = {(d["file"], d["row"]) for d in defects if d["row"] is not None}
    lost_rows |= {(d["file"], d["row"] - 1) for d in defects if d["class"] == "duplicate_key"}
    files = {}  # claim file of a hospital-day → {settlement_id: row number}
    for day, folder, extract, path in extract_files(landing):
        rel = path.relative_to(landing).as_posix()
        if extract == "claim" and rel not in lost_files:  # (a truncated file may not even decompress)
            files[(f"{day:%Y%m%d}", folder)] = (rel, {r["settlement_id"]: n for n, r in
                                                      enumerate(read_extract(path)[1], 1)})
    findings = _json(landing, "audit_findings.json")
    assert {f["rule_type"] for f in findings} >= {"readmission", "inpatient_only", "indication"}
    for f in findings:
        if f["subject_type"] == "settlement":
            rel, rows = files[(f["subject_id"][2:10], f["hospital_code"])]  # JS<YYYYMMDD>…: settled that day
            assert (rel, rows[f["subject_id"]]) not in lost_rows, f
    truth = {(f["rule_id"], f["subject_id"]) for f in findings if f["rule_type"] in LINE_RULE_TYPES}
    assert line_rule_violations(landing) == truth
    quarantined = {(d["file"].split("/")[1], fee_rows[d["file"]][d["row"] - 1]["fee_line_id"]) for d in fee_defects}
    assert not any((f["hospital_code"], f["subject_id"]) in quarantined for f in findings)
    assert exam_positive_rates(landing) == positive_rate_truth(landing)


def test_readmissions_recomputed_from_the_claims(fee_city):
    """R22, independently: effective inpatient (21) settlements of a patient at a hospital, readmitted within
    the local rule's days of the discharge of the previous stay with the same 3-character diagnosis."""
    rule = next(r for r in reference(fee_city, "audit_rules") if r["rule_type"] == "readmission")
    settlements, reversed_ = [], set()
    for _, folder, extract, path in extract_files(fee_city):
        if extract == "claim":
            for r in read_extract(path)[1]:
                if r["reversal_of"]:
                    reversed_.add((folder, r["reversal_of"]))
                else:
                    settlements.append((folder, r))
    effective: dict[tuple[str, str], dict] = {}
    for folder, r in settlements:
        if (folder, r["settlement_id"]) in reversed_:
            continue
        key = (folder, r["visit_id"])
        if key not in effective or parse_datetime(r["settled_at"]) > parse_datetime(effective[key]["settled_at"]):
            effective[key] = r
    stays = defaultdict(list)
    for (folder, _), r in effective.items():
        if r["medical_category"] == "21":
            stays[(folder, r["patient_id_no"], r["principal_diagnosis"][:3])].append(r)
    expected = set()
    for (folder, _, _), group in stays.items():
        group.sort(key=lambda r: (parse_date(r["admission_date"]), r["settlement_id"]))
        for prev, cur in itertools.pairwise(group):
            gap = (parse_date(cur["admission_date"]) - parse_date(prev["discharge_date"])).days
            if gap <= int(rule["days"]):
                expected.add((folder, cur["settlement_id"], cur["fund_paid"]))
    truth = {(f["hospital_code"], f["subject_id"], f["flagged_amount"]) for f in _json(fee_city, "audit_findings.json")
             if f["rule_type"] == "readmission"}
    assert expected == truth and truth


def test_window_rules_recomputed_from_the_fee_lines(fee_city):
    """R15 (daily quantity), R16 (interval) and R20 (repeat exam), independently, over every fee line."""
    rules = [r for r in effective_library(fee_city)
             if r["rule_type"] in ("daily_quantity", "min_interval_days", "repeat_exam")]
    lines = defaultdict(list)  # (rule, patient) → matching lines
    for folder, line in loaded_fee_lines(fee_city):
        charged = parse_datetime(line["charged_at"])
        for r in rules:
            if line["item_code"].startswith(r["item_prefix"]) and r["effective_from"] <= charged.date().isoformat() \
                    and (not r["effective_to"] or charged.date().isoformat() <= r["effective_to"]):
                lines[(r["rule_id"], line["patient_id_no"])].append((charged, folder, line))
    expected = set()
    for (rule_id, _), group in lines.items():
        rule = next(r for r in rules if r["rule_id"] == rule_id)
        net = Counter()
        if rule["rule_type"] == "daily_quantity":
            for at, folder, line in group:
                net[(folder, at.date())] += int(line["quantity"])
            for (folder, day), q in net.items():
                if q > int(rule["max_quantity"]):
                    last = max((at, line["fee_line_id"]) for at, f, line in group
                               if (f, at.date()) == (folder, day) and int(line["quantity"]) > 0)
                    expected.add((rule_id, last[1], str(q - int(rule["max_quantity"])), False))
        elif rule["rule_type"] == "min_interval_days":
            for at, _, line in group:
                net[at.date()] += int(line["quantity"])
            payable, denied = None, set()
            for day in sorted(d for d, q in net.items() if q > 0):
                if payable is None or (day - payable).days >= int(rule["days"]):
                    payable = day
                else:
                    denied.add(day)
            expected |= {(rule_id, line["fee_line_id"], line["quantity"], False)
                         for at, _, line in group if at.date() in denied}
        else:
            for at, folder, line in group:
                net[(at.date(), folder)] += int(line["quantity"])
            pairs = sorted(p for p, q in net.items() if q > 0)
            for prev, cur in itertools.pairwise(pairs):
                if (cur[0] - prev[0]).days <= int(rule["days"]):
                    expected |= {(rule_id, line["fee_line_id"], line["quantity"], cur[1] != prev[1])
                                 for at, folder, line in group if (at.date(), folder) == cur}
    truth = {(f["rule_id"], f["subject_id"], f["flagged_quantity"], f["is_cross_hospital"])
             for f in _json(fee_city, "audit_findings.json")
             if f["rule_type"] in ("daily_quantity", "min_interval_days", "repeat_exam")}
    assert expected == truth and {t[0].split("-")[1] for t in truth} >= {"FRQ", "INT", "REP"}
