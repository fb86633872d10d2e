"""The loader loses nothing, doubles nothing, explains every refused row and never stores an ID number."""

from __future__ import annotations

import collections
import csv
import datetime as dt
import importlib.util
import json
import logging
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from yibao import db
from yibao.loader import load_landing

FIXTURES = Path(__file__).parent / "fixtures"
HOSP = "H41070200001"
# the shape of a mainland ID number (region, birth date, sequence, check), not inside a hex pseudonym
ID_SHAPE = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9A-Za-z])"
)
FILE_REJECT_CLASSES = {"truncated_file": "manifest_mismatch", "bad_manifest": "manifest_mismatch"}


def _worked_example(out: Path) -> Path:
    spec = importlib.util.spec_from_file_location("we", FIXTURES / "make_worked_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(out)
    return out


def _query(sql: str, params=()) -> list[tuple]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _raw_counts() -> dict[str, int]:
    tables = [r[0] for r in _query("select table_name from information_schema.tables where table_schema = 'raw'"
                                   " and table_name <> 'landing_walk'")]  # the loader's log: a row per load step
    return {t: _query(f"select count(*) from raw.{t}")[0][0] for t in sorted(tables)}


@pytest.fixture(scope="module")
def small_city(tmp_path_factory) -> Path:
    from yibao.generator import generate_city

    landing = tmp_path_factory.mktemp("city") / "landing"
    generate_city(landing, seed=3, hospitals=6, start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 4), volume=0.6,
                  defect_rate=0.03)
    return landing


def _data_rows(path: Path) -> int:
    from yibao.landing import fingerprint, read_rows

    _, enc = fingerprint(path)
    return sum(1 for row in read_rows(path, enc) if any(c.strip() for c in row)) - 1


@pytest.mark.parametrize("workers", [1, 2])
def test_every_injected_defect_ends_as_its_reason_and_no_good_row_is_lost(clean_warehouse, small_city, workers,
                                                                          monkeypatch):
    from yibao import loader

    # with 2, the night's extracts are loaded by two worker processes (whatever its size)
    monkeypatch.setattr(loader, "PARALLEL_MIN_BYTES", 0)
    night = load_landing(small_city, dt.date(2025, 1, 4), show_progress=False, workers=workers)
    truth = json.loads((small_city / "_generator" / "defects.json").read_text(encoding="utf-8"))
    truth = truth["defects"] if isinstance(truth, dict) else truth
    rejected_files = {f.file.relpath: f.reject_reason for f in night.files if f.status == "rejected"}

    expected_rows = collections.Counter(
        d["class"] for d in truth if d["row"] is not None and d["file"] not in rejected_files
    )
    # a duplicate whose copy is malformed too: both rows are quarantined as duplicates
    assert any(d.get("also") and d["file"] not in rejected_files for d in truth)
    got_rows = collections.Counter(dict(_query("select reason_code, count(*) from raw.quarantine group by 1")))
    assert got_rows == expected_rows

    expected_files = {d["file"]: FILE_REJECT_CLASSES[d["class"]] for d in truth if d["class"] in FILE_REJECT_CLASSES}
    assert rejected_files == expected_files

    # nothing lost: for every loaded file, each data row is either in raw or in quarantine, once
    for f in night.files:
        if f.status != "loaded" or f.file.is_reference:
            continue
        n = _data_rows(f.file.path)
        in_raw = _query(f"select source_row from raw.{f.file.kind} where load_id = %s", (f.load_id,))
        in_q = _query("select source_row from raw.quarantine where load_id = %s", (f.load_id,))
        rows = sorted(r[0] for r in in_raw + in_q)
        assert rows == list(range(1, n + 1)), f.file.relpath
        assert f.rows_read == n and f.rows_loaded + f.rows_quarantined == n

    # quarantine rows explain themselves: file, row, column, reason, detail
    missing = _query("select count(*) from raw.quarantine where source_file is null or reason_detail is null")
    assert missing[0][0] == 0

    # one hospital's extract load ids grow with the business date, also when workers load in parallel
    by_hospital = collections.defaultdict(list)
    for f in night.files:
        if f.load_id is not None and not f.file.is_reference:
            by_hospital[(f.file.hospital_code, f.file.kind)].append((f.file.business_date, f.load_id))
    assert by_hospital
    for loads in by_hospital.values():
        assert [i for _, i in sorted(loads)] == sorted(i for _, i in loads)


def _rows_in_bytes(path: Path) -> int:
    """Data rows of a landing file counted here, independently of the loader: decompressed as far as
    the bytes go (a truncated gzip too), decoded with replacement, blank lines not counted."""
    import io
    import zlib

    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    if path.name.endswith(".xlsx"):
        from yibao.landing import read_rows

        return sum(1 for _ in read_rows(path, None)) - 1
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:  # GB18030, or cut inside a character
        text = data.decode("gb18030", errors="replace")
    rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in r)]
    return len(rows) - 1


def test_read_equals_loaded_plus_quarantined_plus_held_back_for_every_file(clean_warehouse, small_city):
    """A file rejected whole (here: manifest mismatches of truncated or altered files) holds rows that
    are neither loaded nor quarantined: they are counted as held back, so every file's count closes."""
    night = load_landing(small_city, dt.date(2025, 1, 4), show_progress=False)
    ledger = _query(
        "select l.source_file, l.status, l.rows_read, l.rows_loaded, l.rows_quarantined, l.rows_held,"
        " (select count(*) from raw.quarantine q where q.load_id = l.load_id)"
        " + coalesce((select count(*) from raw.purchase r where r.load_id = l.load_id and l.file_kind = 'purchase'), 0)"
        " + coalesce((select count(*) from raw.usage r where r.load_id = l.load_id and l.file_kind = 'usage'), 0)"
        " + coalesce((select count(*) from raw.claim r where r.load_id = l.load_id and l.file_kind = 'claim'), 0)"
        " from raw.load_ledger l where l.business_date is not null"
    )
    files = {f.file.relpath: f for f in night.files if not f.file.is_reference}
    assert len(ledger) == len(files) > 50
    rejected = 0
    for source, status, read, loaded, quarantined, held, in_tables in ledger:
        assert read == loaded + quarantined + held, source
        assert in_tables == loaded + quarantined, source
        assert read == _rows_in_bytes(small_city / source), source  # every data row the file holds
        if status == "rejected":
            rejected += 1
            assert loaded == quarantined == 0 and held > 0, source
        else:
            assert held == 0, source
        f = files[source]
        assert (f.rows_read, f.rows_loaded, f.rows_quarantined, f.rows_held or 0) == (read, loaded, quarantined, held)
    assert rejected >= 2
    total_held = sum(r[5] for r in ledger)
    assert f"held back in rejected files {total_held:,}" in night.summary_text()


def test_loading_twice_or_all_nights_again_changes_nothing(clean_warehouse, small_city):
    load_landing(small_city, dt.date(2025, 1, 2), show_progress=False)
    load_landing(small_city, dt.date(2025, 1, 4), show_progress=False)
    first = _raw_counts()
    again = load_landing(small_city, dt.date(2025, 1, 4), show_progress=False)
    assert {f.status for f in again.files} == {"skipped"}
    assert _raw_counts() == first
    # a backfill of one date re-processes exactly that date's files, and they are already loaded
    # (those the walk of folders before the ledger's newest date recognised by their stat are
    # counted, not listed; the others are hashed and listed)
    backfill = load_landing(small_city, dt.date(2025, 1, 3), since=dt.date(2025, 1, 3), show_progress=False)
    extract_files = [f for f in backfill.files if not f.file.is_reference]
    assert {f.status for f in backfill.files} == {"skipped"}
    assert {f.file.business_date for f in extract_files} <= {dt.date(2025, 1, 3)}
    day_files = _query("select count(distinct source_file) from raw.load_ledger where business_date = '2025-01-03'")
    assert len(extract_files) + backfill.skipped_earlier == day_files[0][0] > 0
    assert _raw_counts() == first
    # each load step logged its walk: every folder, then the 92 business dates up to the ledger's
    # newest (2025-01-02, then 2025-01-04; the full walk is not 7 nights old), then the backfill's date
    walks = _query("select through, walked_from from raw.landing_walk order by walked_at")
    assert walks == [(dt.date(2025, 1, 2), None), (dt.date(2025, 1, 4), dt.date(2024, 10, 3)),
                     (dt.date(2025, 1, 4), dt.date(2024, 10, 5)), (dt.date(2025, 1, 3), dt.date(2025, 1, 3))]


def test_late_file_is_caught_up_and_resent_correction_supersedes(clean_warehouse, tmp_path):
    landing = _worked_example(tmp_path / "landing")
    load_landing(landing, dt.date(2025, 1, 31), show_progress=False)
    # a late file for an earlier date, and P1 re-sent two months later with its payment filled in
    late = landing / "20250111" / HOSP / "purchase.csv"
    late.parent.mkdir(parents=True)
    src = (landing / "20250110" / HOSP / "purchase.csv").read_text(encoding="utf-8").splitlines()
    late.write_text("\n".join([src[0], src[1].replace("P1,", "P2,", 1)]) + "\n", encoding="utf-8")
    resent = landing / "20250320" / HOSP / "purchase.csv"
    resent.parent.mkdir(parents=True)
    resent.write_text("\n".join([src[0], src[1].replace(",,\n", "").rstrip(",") + ",2025-03-18,7000.00"]) + "\n",
                      encoding="utf-8")
    night = load_landing(landing, dt.date(2025, 3, 31), show_progress=False)
    loaded = {f.file.relpath for f in night.files if f.status == "loaded"}
    assert f"20250111/{HOSP}/purchase.csv" in loaded and f"20250320/{HOSP}/purchase.csv" in loaded
    versions = _query(
        "select business_date, paid_date from raw.purchase where purchase_line_id = 'P1' order by business_date, load_id"
    )
    assert versions == [(dt.date(2025, 1, 10), None), (dt.date(2025, 3, 20), dt.date(2025, 3, 18))]


def test_formats_gb18030_chinese_headers_bom_gzip_xlsx_and_extra_columns(clean_warehouse, tmp_path):
    import gzip

    import openpyxl

    landing = _worked_example(tmp_path / "landing")
    from yibao.contract import EXTRACTS

    zh = {c.name: c.zh for c in EXTRACTS["claim"].columns}
    base = (landing / "20250120" / HOSP / "claim.csv").read_text(encoding="utf-8").splitlines()
    header = base[0].split(",")
    row = base[1].split(",")

    def variant(day: str, sid: str) -> list[str]:
        r = list(row)
        r[0] = sid
        return r

    # GB18030 with Chinese headers, YYYYMMDD dates and an extra column 备注
    d = landing / "20250121" / HOSP
    d.mkdir(parents=True)
    with open(d / "claim.csv", "w", encoding="gb18030", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f" {zh[h]} " for h in header] + ["备注"])
        r = variant("20250121", "G1")
        r[header.index("settled_at")] = "20250121 08:00:00"
        w.writerow(r + ["住院结算（中文备注）"])
    # UTF-8 with BOM and YYYY/MM/DD
    d = landing / "20250122" / HOSP
    d.mkdir(parents=True)
    r = variant("20250122", "B1")
    r[header.index("admission_date")] = "2025/01/05"
    (d / "claim.csv").write_text("\ufeff" + ",".join(header) + "\n" + ",".join(r) + "\n", encoding="utf-8")
    # gzip
    d = landing / "20250123" / HOSP
    d.mkdir(parents=True)
    with gzip.open(d / "claim.csv.gz", "wt", encoding="utf-8", newline="") as fh:
        fh.write(",".join(header) + "\n" + ",".join(variant("20250123", "Z1")) + "\n")
    # xlsx with text cells
    d = landing / "20250124" / HOSP
    d.mkdir(parents=True)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(header)
    ws.append(variant("20250124", "X1"))
    wb.save(d / "claim.xlsx")

    night = load_landing(landing, dt.date(2025, 1, 31), show_progress=False)
    assert not [f for f in night.files if f.status == "rejected"]
    got = dict(_query("select settlement_id, settled_at from raw.claim where settlement_id in ('G1','B1','Z1','X1')"))
    assert set(got) == {"G1", "B1", "Z1", "X1"}
    assert got["G1"] == dt.datetime(2025, 1, 21, 8, 0)
    assert _query("select admission_date from raw.claim where settlement_id = 'B1'")[0][0] == dt.date(2025, 1, 5)
    assert _query("select extra from raw.claim where settlement_id = 'G1'")[0][0] == {"备注": "住院结算（中文备注）"}
    assert _query("select count(*) from raw.quarantine")[0][0] == 0


@pytest.mark.parametrize(
    "case, reason",
    [
        ("missing_column", "missing_column"),
        ("undecodable", "undecodable"),
        ("wrong_folder", "wrong_hospital_folder"),
        ("unknown_hospital", "unknown_hospital"),
        ("manifest_rows", "manifest_mismatch"),
    ],
)
def test_file_level_rejects_are_recorded_and_the_night_goes_on(clean_warehouse, tmp_path, case, reason):
    landing = _worked_example(tmp_path / "landing")
    d = landing / "20250126" / HOSP
    src = (landing / "20250120" / HOSP / "claim.csv").read_text(encoding="utf-8").splitlines()
    if case == "unknown_hospital":
        d = landing / "20250126" / "H41070299999"
    d.mkdir(parents=True)
    target = d / "claim.csv"
    if case == "missing_column":
        cols = src[0].split(",")
        i = cols.index("fund_paid")
        target.write_text("\n".join(",".join(x for j, x in enumerate(line.split(",")) if j != i) for line in src) + "\n")
    elif case == "undecodable":
        target.write_bytes(src[0].encode() + b"\n" + b"\xff\xfe\x00\x81\x30" * 10 + b"\n")
    elif case == "wrong_folder":
        body = [src[1].replace("S1,", f"W{i},", 1).replace(HOSP, "H41070300009") for i in range(3)]
        target.write_text("\n".join([src[0], *body]) + "\n", encoding="utf-8")
    elif case == "unknown_hospital":
        target.write_text("\n".join([src[0], src[1].replace(HOSP, "H41070299999")]) + "\n", encoding="utf-8")
    elif case == "manifest_rows":
        target.write_text("\n".join(src) + "\n", encoding="utf-8")
        (d / "_manifest.json").write_text(json.dumps({"claim": {"rows": 5}}), encoding="utf-8")
    night = load_landing(landing, dt.date(2025, 12, 31), show_progress=False)
    rejected = [f for f in night.files if f.status == "rejected"]
    assert [(f.file.relpath, f.reject_reason) for f in rejected] == [(str(target.relative_to(landing)), reason)]
    # the data rows it held are counted: read = loaded + quarantined + held back
    held = {"missing_column": len(src) - 1, "undecodable": 1, "wrong_folder": 3, "unknown_hospital": 1,
            "manifest_rows": len(src) - 1}[case]
    assert (rejected[0].rows_read, rejected[0].rows_held) == (held, held)
    assert _query("select rows_read, rows_loaded, rows_quarantined, rows_held from raw.load_ledger"
                  " where source_file = %s", (str(target.relative_to(landing)),)) == [(held, 0, 0, held)]
    assert f"{held:,} rows held back" in night.summary_text()
    assert all(f.status == "loaded" for f in night.files if f not in rejected)
    # the ledger remembers the rejection: the same bytes are not retried, a corrected file would be
    ledger = _query("select status, reject_reason, reject_detail from raw.load_ledger where source_file = %s",
                    (str(target.relative_to(landing)),))
    assert ledger[0][:2] == ("rejected", reason) and ledger[0][2]
    assert {f.status for f in load_landing(landing, dt.date(2025, 12, 31), show_progress=False).files} == {"skipped"}


def test_duplicate_natural_key_in_one_file_quarantines_both_rows(clean_warehouse, tmp_path):
    landing = _worked_example(tmp_path / "landing")
    path = landing / "20250120" / HOSP / "claim.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0], lines[1], lines[1].replace("100000.00", "100001.00", 1).replace("15000.00", "15001.00")]) + "\n")
    load_landing(landing, dt.date(2025, 1, 31), show_progress=False)
    assert _query("select count(*) from raw.claim where settlement_id = 'S1'")[0][0] == 0
    assert _query("select source_row, reason_code from raw.quarantine order by 1") == [(1, "duplicate_key"), (2, "duplicate_key")]


def test_a_duplicate_key_whose_twin_is_malformed_quarantines_both_as_duplicates(clean_warehouse, tmp_path):
    """DOMAIN §2: duplicate detection looks at every row of the file, valid or not, and takes
    precedence over a row's other defect. The key is the trimmed key field within the folder's
    hospital (a twin naming another hospital is still this file's line)."""
    landing = _worked_example(tmp_path / "landing")
    path = landing / "20250120" / HOSP / "claim.csv"
    header, s1 = path.read_text(encoding="utf-8").splitlines()[:2]

    def row(key: str, **change: str) -> str:
        fields = s1.split(",")
        cols = header.split(",")
        fields[0] = key
        for col, value in change.items():
            fields[cols.index(col)] = value
        return ",".join(fields)

    lines = [
        row("S1"),                                           # 1 valid; twin of 2 → duplicate
        row("S1", total_amount="100001.00"),                 # 2 claim_parts_mismatch → duplicate
        row("S2"),                                           # 3 valid, alone → loads
        row(" S3 ", insurance_type="320"),                   # 4 unknown type; twin of 5 (trimmed) → duplicate
        row("S3", principal_diagnosis="I25102"),             # 5 bad_icd10 → duplicate
        row("S4", hospital_code="H41070200017"),             # 6 another hospital; twin of 7 → duplicate
        row("S4"),                                           # 7 valid → duplicate
        row("S5", total_amount="1.00"),                      # 8 claim_parts_mismatch, alone → stays so
        row("", visit_id="V9"),                              # 9 no key (missing_required) → no twin
        row("", visit_id="V10"),                             # 10 no key → no twin
    ]
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    night = load_landing(landing, dt.date(2025, 1, 31), show_progress=False)
    (f,) = [f for f in night.files if f.file.relpath.endswith("20250120/" + HOSP + "/claim.csv")]
    got = _query("select source_row, reason_code, natural_key, column_name from raw.quarantine order by 1")
    assert got == [
        (1, "duplicate_key", "S1", "settlement_id"),
        (2, "duplicate_key", "S1", "settlement_id"),
        (4, "duplicate_key", "S3", "settlement_id"),
        (5, "duplicate_key", "S3", "settlement_id"),
        (6, "duplicate_key", "S4", "settlement_id"),
        (7, "duplicate_key", "S4", "settlement_id"),
        (8, "claim_parts_mismatch", "S5", "total_amount"),
        (9, "missing_required", None, "settlement_id"),
        (10, "missing_required", None, "settlement_id"),
    ]
    assert _query("select settlement_id from raw.claim where load_id = %s", (f.load_id,)) == [("S2",)]
    # the refused twin's own defect stays in its detail
    (detail,) = _query("select reason_detail from raw.quarantine where source_row = 2")[0]
    assert "claim_parts_mismatch" in detail
    assert (f.rows_read, f.rows_loaded, f.rows_quarantined) == (10, 1, 9)
    assert f.reasons == {"duplicate_key": 6, "claim_parts_mismatch": 1, "missing_required": 2}
    assert _query("select rows_read, rows_loaded, rows_quarantined from raw.load_ledger where load_id = %s",
                  (f.load_id,)) == [(10, 1, 9)]


def test_an_amount_too_large_for_its_column_is_a_bad_row_not_a_failed_night(clean_warehouse, tmp_path):
    landing = _worked_example(tmp_path / "landing")
    path = landing / "20250120" / HOSP / "claim.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    too_big = lines[1].replace("S1,", "S9,", 1).replace("100000.00", "1" + "0" * 16 + ".00", 1)
    path.write_text("\n".join([lines[0], lines[1], too_big]) + "\n")
    night = load_landing(landing, dt.date(2025, 1, 31), show_progress=False)
    assert all(f.status == "loaded" for f in night.files)
    assert _query("select count(*) from raw.claim where settlement_id = 'S1'")[0][0] == 1
    assert _query("select source_row, column_name, reason_code from raw.quarantine") == [(2, "total_amount", "bad_number")]


def _big_landing(tmp_path: Path, rows: int) -> Path:
    landing = _worked_example(tmp_path / "landing")
    for p in list(landing.iterdir()):
        if p.name != "reference":
            shutil.rmtree(p)
    src = _worked_example(tmp_path / "src")
    lines = (src / "20250120" / HOSP / "claim.csv").read_text(encoding="utf-8").splitlines()
    d = landing / "20250120" / HOSP
    d.mkdir(parents=True)
    with open(d / "claim.csv", "w", encoding="utf-8") as fh:
        fh.write(lines[0] + "\n")
        tail = lines[1].split(",", 1)[1]
        for i in range(rows):
            fh.write(f"K{i},{tail}\n")
    return landing


def test_load_killed_mid_file_leaves_nothing_and_the_rerun_completes(clean_warehouse, tmp_path):
    landing = _big_landing(tmp_path, 300_000)
    code = (
        "import datetime as dt, sys\nfrom pathlib import Path\nfrom yibao.loader import load_landing\n"
        f"load_landing(Path({str(landing)!r}), dt.date(2025, 1, 31), show_progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the claim file's COPY is streaming
        busy = _query("select count(*) from pg_stat_activity where query ilike 'copy raw.claim%%' and state = 'active'")
        if busy[0][0]:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the loader never started copying")
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # the server notices the dead connection and rolls back
    assert _query("select count(*) from raw.claim")[0][0] == 0
    assert _query("select count(*) from raw.load_ledger where file_kind = 'claim'")[0][0] == 0
    night = load_landing(landing, dt.date(2025, 1, 31), show_progress=False)
    claim = [f for f in night.files if f.file.kind == "claim"]
    assert [f.status for f in claim] == ["loaded"]
    assert _query("select count(*), count(distinct settlement_id) from raw.claim")[0] == (300_000, 300_000)


def test_no_raw_id_number_anywhere_after_a_run(clean_warehouse, small_city, caplog):
    caplog.set_level(logging.DEBUG)
    load_landing(small_city, dt.date(2025, 1, 4), show_progress=False)
    # the landing really did carry ID numbers (so the scan below can fail)
    sample = (small_city / "20250101").rglob("claim.csv")
    assert any(ID_SHAPE.search(p.read_text(encoding="utf-8", errors="ignore")) for p in sample)
    hits = []
    columns = _query(
        "select table_schema, table_name, column_name from information_schema.columns"
        " where table_schema not in ('pg_catalog', 'information_schema')"
        " and data_type in ('text', 'character varying', 'jsonb', 'json')"
    )
    for schema, table, column in columns:
        for (value,) in _query(f'select "{column}"::text from "{schema}"."{table}" where "{column}" is not null'):
            if ID_SHAPE.search(value):
                hits.append((schema, table, column, value[:40]))
    assert hits == []
    assert not ID_SHAPE.search(caplog.text)


def _mutations(extract: str, fields: list[str], names: list[str]) -> list[list[str]]:
    """Variants of one clean row: valid ones written differently, and invalid ones of every kind."""
    col = {n: i for i, n in enumerate(names)}
    out = []

    def put(name: str, *values: str) -> None:
        if name in col:
            for value in values:
                row = list(fields)
                row[col[name]] = value
                out.append(row)

    out.append([f" {x}\u3000" for x in fields])  # padded with a space and an ideographic space
    out.append([f"\t{x} " for x in fields])
    put(names[0], "", "K,1", 'K"1', "K\n1", "K\\1", "编号1", " ")
    put("hospital_code", "H41070300009", "h41070200001", "")
    for date in ("order_date", "delivery_date", "admission_date", "discharge_date", "paid_date"):
        put(date, "2025/01/02", "20250102", "2025-02-30", "2025-1-2", "2024-02-29", "2023-02-29", "2025-13-01",
            "２０２５-０１-０２", "", "2025.01.02")
    for ts in ("used_at", "settled_at", "charged_at"):
        put(ts, "2025-01-02T10:00:00", "2025-01-02 10:00", "2025-01-02", "2025-01-02 24:00:00",
            "2025-01-02  10:00:00", "20250102 23:59:59", "2025/01/02 00:00:00", "2025-01-02 9:00:00",
            "2025-01-02 10:00:00 ", "2025-01-02 10:60:00", "2025-01-02 10:00:0０", "")
    if "patient_id_no" in col:
        pid = fields[col["patient_id_no"]]
        put("patient_id_no", pid.lower(), pid[:17], pid + "1", pid[:6] + "20991231" + pid[14:], "１" + pid[1:],
            pid[:6] + "20000229" + pid[14:], pid[:6] + "19000229" + pid[14:], "")
    for amount in ("amount", "charge_amount", "paid_amount", "total_amount", "fund_paid", "other_fund_paid",
                   "account_paid", "cash_paid", "negotiated_drug_amount", "unit_price", "charge_unit_price",
                   "quantity"):
        if amount in col:
            v = fields[col[amount]]
            put(amount, "+" + v, v + "0", v + "00", v + "001", v.split(".")[0], "-" + v, "1,234.00", "５", ".5",
                "5.", "", "0", "0.0000", "-0.00", "1e3", "١٢", "9" * 14 + ".5", "9" * 15 + ".5", "9" * 16 + ".5",
                "9" * 17, "0" * 20 + "1.5", "-" + "9" * 17 + ".00")
    for code in ("consumable_code", "udi_di", "supplier_uscc", "doctor_code", "principal_diagnosis",
                 "insurance_type", "medical_category"):
        if code in col:
            v = fields[col[code]]
            put(code, v.lower(), v[:-1], v + "0", v[:-1] + ("0" if v[-1:] != "0" else "1"), "", "D１２３")
    put("consumable_code", fields[col["consumable_code"]] + "0000028" if "consumable_code" in col else "")
    put("via_platform", "是", "否", "y", "TRUE", "true", "1", "", "Yes")
    # fee_detail: item type and code (format per type), examination result
    put("item_type", "11", "12", "13", "21", "31", "41", "1", "", " 21")
    put("item_code", "XA01ABD075A002010100483", "xa01abd075a002010100483", "XA01ABD075A00201010048",
        "ZA01AAA0001010100001", "001201000010000", "00120100001000", "C0202020010100100001", "饮片,黄芪", "x" * 51, "")
    put("exam_result", "P", "N", "p", "阳性", "", " N")
    put("medical_category", "21", "11", "52")
    put("spec", "28mm, 钉高4.8mm", '10"', "")
    for i, name in enumerate(names):  # columns outside the contract go to the extra JSON
        if name is None:
            for value in ("a,b", 'say "hi"', "", " 备注 ", "\\"):
                row = list(fields)
                row[i] = value
                out.append(row)
    return out


def test_fast_path_writes_exactly_what_the_general_path_writes(small_city):
    """The compiled fast row path only ever accepts what the general path loads, and writes the same bytes.

    Every row of the small city (3 % defects) and, for one row of each file, some 150 variants (other
    spellings of valid values, and invalid values of every kind) go through both paths.
    """
    from yibao import loader
    from yibao.contract import EXTRACTS
    from yibao.landing import discover, fingerprint, read_rows
    from yibao.pseudonym import Pseudonymiser

    files, _ = discover(small_city, dt.date(2025, 1, 4))
    with open(small_city / "reference" / "consumable_catalog.csv", encoding="utf-8-sig", newline="") as fh:
        catalog = {r["consumable_code"]: r["status"] for r in csv.DictReader(fh)}
    pseudonymise = Pseudonymiser(b"a key for the fast path test")
    context = None
    fast_rows = general_only = compared = 0
    for f in files:
        if f.is_reference:
            continue
        try:
            _, encoding = fingerprint(f.path)
        except Exception:  # noqa: BLE001 - undecodable files never reach the row paths
            continue
        fl = loader.FileLoader(None, pseudonymise, catalog, None, dt.date(2025, 1, 5), context=context)
        context = fl.context
        rows = list(read_rows(f.path, encoding))
        columns = EXTRACTS[f.kind].columns
        positions, extras = loader._header_map(rows[0], columns, f)
        result = loader.FileResult(file=f, status="loaded")
        general = fl._general_row(f, columns, positions, extras, len(rows[0]), 7, result, [], {"mismatched_hosp": 0})
        fast = context.row_function(f.kind, columns, positions, len(rows[0]), extras, f.hospital_code,
                                    f"7,{f.business_date.isoformat()},{f.relpath},", set())
        assert fast is not None, f.relpath
        names = [None] * len(rows[0])
        for c, p in zip(columns, positions):
            if p is not None:
                names[p] = c.name
        variants = _mutations(f.kind, rows[1], names) if len(rows) > 1 else []
        for n, fields in enumerate(rows[1:] + variants, start=1):
            got = fast(fields, n)
            want = general(fields, n)
            compared += 1
            genuine = n < len(rows)
            if got is None:
                general_only += 1 if want and genuine else 0
                continue
            fast_rows += 1 if genuine else 0
            assert got == want, (f.relpath, n, fields)
    # the comparison is not vacuous: the fast path took nearly every delivered row the general path loads
    assert compared > 5000 and fast_rows > 0.98 * (fast_rows + general_only), (fast_rows, general_only)
