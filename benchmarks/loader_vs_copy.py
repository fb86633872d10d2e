"""Loader throughput against PostgreSQL's own bulk path, and loader memory against file size.

1. Generates (once) a one-night city of about a million rows (40 hospitals, volume 95).
2. Loads its plain .csv extracts with the loader (all checks, pseudonymisation, ledger, quarantine)
   into a fresh database, and the same files with ``psql \\copy`` into index-free all-text tables on
   the same server; prints rows/s for both and their ratio.
3. Builds one claim file of 100k rows and one of 1M rows, loads each in a child process and prints
   the child's peak RSS (flat memory = the same RSS for both).

Run: ``make bench`` (or ``.venv/bin/python benchmarks/loader_vs_copy.py [--rows-scale 95]``).
Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from yibao import pg
from yibao.config import settings
from yibao.contract import EXTRACTS

NIGHT = dt.date(2025, 3, 3)
BENCH_DB = "yibao_bench"


def ensure_city(root: Path, volume: float, hospitals: int) -> Path:
    landing = root / f"city_h{hospitals}_v{volume:g}"
    if not (landing / "reference").exists():
        from yibao.generator import generate_city

        t = time.perf_counter()
        print(generate_city(landing, seed=7, hospitals=hospitals, start=NIGHT, end=NIGHT, volume=volume, defect_rate=0.001))
        print(f"generated in {time.perf_counter() - t:.1f}s")
    return landing


def fresh_db(name: str) -> str:
    import psycopg2

    admin = psycopg2.connect(pg.url(database="postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'drop database if exists "{name}"')
        cur.execute(f'create database "{name}"')
    admin.close()
    return pg.url(database=name)


def plain_csv_files(landing: Path) -> list[tuple[Path, str]]:
    """(path, encoding) of the night's uncompressed CSV extracts: both contenders load exactly these."""
    from yibao.landing import discover, fingerprint

    files, _ = discover(landing, NIGHT, NIGHT)
    out = []
    for f in files:
        if f.is_reference or not f.path.name.endswith(".csv"):
            continue
        try:
            _, enc = fingerprint(f.path)
        except Exception:  # noqa: BLE001 - corrupt files are not part of a throughput figure
            continue
        out.append((f.path, enc))
    return out


def count_rows(files) -> int:
    n = 0
    for path, enc in files:
        with open(path, encoding=enc, newline="") as fh:
            n += sum(1 for _ in csv.reader(fh)) - 1
    return n


def run_loader(landing: Path, files, url: str) -> float:
    """Load the same plain-CSV files through the loader (reference first); returns seconds for extracts."""
    import psycopg2

    from yibao import db
    from yibao.landing import discover
    from yibao.loader import load_files
    from yibao.pseudonym import Pseudonymiser

    conn = psycopg2.connect(url)
    db.bootstrap(conn)
    wanted = {p for p, _ in files}
    all_files, _ = discover(landing, NIGHT, NIGHT)
    pseudo = Pseudonymiser(b"benchmark-key-0123456789")
    load_files(conn, [f for f in all_files if f.is_reference], pseudo)
    extracts = [f for f in all_files if f.path in wanted]
    t = time.perf_counter()
    load_files(conn, extracts, pseudo)
    secs = time.perf_counter() - t
    conn.close()
    return secs


def run_copy(files, url: str) -> float:
    """psql \\copy of the same files into index-free all-text tables (one per extract)."""
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        for e in EXTRACTS.values():
            cols = ", ".join(f'"{c.name}" text' for c in e.columns)
            cur.execute(f"drop table if exists public.copy_{e.name}; create table public.copy_{e.name} ({cols})")
    conn.close()
    psql = str(pg.bin_dir() / "psql")
    script = []
    for path, enc in files:
        kind = path.name.split(".")[0]
        pg_enc = "UTF8" if enc.startswith("utf-8") else "GB18030"
        script.append(f"\\copy public.copy_{kind} from '{path}' with (format csv, header true, encoding '{pg_enc}')")
    sql = Path(settings().home) / "bench_copy.sql"
    sql.write_text("\n".join(script) + "\n", encoding="utf-8")
    t = time.perf_counter()
    subprocess.run([psql, "-q", "-X", "-v", "ON_ERROR_STOP=1", "-f", str(sql), url], check=True)
    return time.perf_counter() - t


def build_single_file(landing: Path, out: Path, rows: int) -> Path:
    """One hospital's claim file of ``rows`` rows, made from the night's claim rows (ids kept unique)."""
    from yibao.landing import discover, fingerprint

    hosp = "H41070200001"
    target = out / NIGHT.strftime("%Y%m%d") / hosp / "claim.csv"
    if target.exists():
        return out
    target.parent.mkdir(parents=True, exist_ok=True)
    (out / "reference").mkdir(parents=True, exist_ok=True)
    for ref in (landing / "reference").iterdir():
        (out / "reference" / ref.name).write_bytes(ref.read_bytes())
    header = [c.name for c in EXTRACTS["claim"].columns]
    files, _ = discover(landing, NIGHT, NIGHT)
    written = 0
    rnd = 0
    with open(target, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        while written < rows:
            rnd += 1
            for f in files:
                if f.kind != "claim" or not f.path.name.endswith(".csv"):
                    continue
                _, enc = fingerprint(f.path)
                with open(f.path, encoding=enc, newline="") as src:
                    r = csv.reader(src)
                    head = next(r)
                    if head != header:
                        continue
                    for row in r:
                        row[0] = f"R{rnd}-{f.hospital_code}-{row[0]}"
                        row[1] = hosp
                        w.writerow(row)
                        written += 1
                        if written >= rows:
                            return out
    return out


def peak_rss_of_load(landing: Path, url: str) -> tuple[float, int, float]:
    code = (
        "import datetime as dt, resource, sys, time\n"
        "from pathlib import Path\n"
        "import psycopg2\n"
        "from yibao import db\n"
        "from yibao.landing import discover\n"
        "from yibao.loader import load_files\n"
        "from yibao.pseudonym import Pseudonymiser\n"
        f"conn = psycopg2.connect({url!r}); db.bootstrap(conn)\n"
        f"files, _ = discover(Path({str(landing)!r}), dt.date({NIGHT.year}, {NIGHT.month}, {NIGHT.day}))\n"
        "t = time.perf_counter()\n"
        "res = load_files(conn, files, Pseudonymiser(b'benchmark-key-0123456789'))\n"
        "print(time.perf_counter() - t, sum(r.rows_read for r in res if not r.file.is_reference))\n"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    secs, rows = out.stdout.strip().splitlines()[-1].split()
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return float(secs), int(rows), max(rss, before) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--volume", type=float, default=133.0)
    ap.add_argument("--hospitals", type=int, default=40)
    ap.add_argument("--skip-rss", action="store_true")
    args = ap.parse_args()
    pg.start()
    root = settings().home / "bench"
    landing = ensure_city(root, args.volume, args.hospitals)
    files = plain_csv_files(landing)
    rows = count_rows(files)
    print(f"\nnight {NIGHT}: {len(files)} plain CSV extract files, {rows:,} data rows")

    url = fresh_db(BENCH_DB)
    loader_s = run_loader(landing, files, url)
    copy_s = run_copy(files, url)
    print(f"loader      : {loader_s:7.2f}s  {rows / loader_s:>10,.0f} rows/s  (checks, pseudonyms, ledger, quarantine)")
    print(f"psql \\copy  : {copy_s:7.2f}s  {rows / copy_s:>10,.0f} rows/s  (index-free all-text tables)")
    print(f"ratio loader/copy: {copy_s / loader_s:.2f}  (target ≥ 0.70)")

    if not args.skip_rss:
        print("\npeak RSS of a child process loading one claim file (flat memory = similar RSS):")
        # the child's RSS is measured alone: RUSAGE_CHILDREN keeps the max over all children so far,
        # so the small file is measured first
        for n in (100_000, 1_000_000):
            single = build_single_file(landing, root / f"single_{n}", n)
            u = fresh_db(f"{BENCH_DB}_rss")
            secs, loaded, rss = peak_rss_of_load(single, u)
            print(f"  {loaded:>9,} rows: {secs:6.1f}s  peak RSS {rss:7.1f} MB")


if __name__ == "__main__":
    os.environ.setdefault("YIBAO_HOME", str(settings().home))
    main()
