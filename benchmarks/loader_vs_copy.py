"""Loader throughput against PostgreSQL's own bulk path, and loader memory against file size.

1. Generates (once) a one-night city of about a million rows (40 hospitals, volume 133).
2. Loads its plain .csv extracts with the loader (all checks, pseudonymisation, ledger, quarantine)
   into a fresh database, and the same files with ``psql \\copy`` into index-free all-text tables on
   the same server; prints rows/s for both, their ratio, and the CPU seconds each side spent (the
   client process: loader or psql; the server: every PostgreSQL process). On a shared machine the
   CPU figures are steadier than wall-clock ones; ``--repeat`` interleaves several rounds and keeps
   each contender's best.
3. Writes the loader's own output for those files (checked, pseudonymised rows) and times ``psql
   \\copy`` of it into the real raw tables: the server's cost of storing rows the loader's way, which
   no client-side speed-up can go below; prints the loader/copy ratio that cost alone allows.
4. Builds one claim file of 100k rows and one of 1M rows, loads each in a child process and prints
   the child's peak RSS (flat memory = the same RSS for both).

Run: ``make bench`` (or ``.venv/bin/python benchmarks/loader_vs_copy.py [--repeat 3] [--skip-rss]``).
Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from yibao import pg
from yibao.config import settings
from yibao.contract import EXTRACTS

NIGHT = dt.date(2025, 3, 3)
BENCH_DB = "yibao_bench"
KEY = b"benchmark-key-0123456789"
TICK = os.sysconf("SC_CLK_TCK")


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


def checkpoint(url: str) -> None:
    """Start each timed phase with no dirty buffers or pending WAL of the previous one."""
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("checkpoint")
    conn.close()


def server_cpu() -> float:
    """CPU seconds used so far by the embedded server: the postmaster, its live children and the
    children it has reaped (backends that have exited; waits a moment so a backend that has just
    ended is reaped and counted)."""
    time.sleep(0.5)
    pid = int((settings().pgdata / "postmaster.pid").read_text().split()[0])

    def stat(p: int) -> list[str]:
        with open(f"/proc/{p}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()

    s = stat(pid)  # fields after the command: state ppid ... utime(12) stime(13) cutime(14) cstime(15)
    total = sum(int(x) for x in s[11:15])
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == pid:
            continue
        try:
            c = stat(int(entry))
        except OSError:
            continue
        if int(c[1]) == pid:
            total += int(c[11]) + int(c[12])
    return total / TICK


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclass
class Run:
    wall: float
    client_cpu: float
    server_cpu: float


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


def run_loader(landing: Path, files, url: str, workers: int) -> tuple[Run, list]:
    """Load the same plain-CSV files through the loader (reference first); times the extracts only.

    Client CPU counts this process and its loader worker processes (``workers`` > 1)."""
    import psycopg2

    from yibao import db
    from yibao.landing import discover
    from yibao.loader import load_files
    from yibao.pseudonym import Pseudonymiser

    conn = psycopg2.connect(url)
    db.bootstrap(conn)
    wanted = {p for p, _ in files}
    all_files, _ = discover(landing, NIGHT, NIGHT)
    pseudo = Pseudonymiser(KEY)
    load_files(conn, [f for f in all_files if f.is_reference], pseudo)
    extracts = [f for f in all_files if f.path in wanted]
    checkpoint(url)
    c0, s0, t0 = self_cpu() + children_cpu(), server_cpu(), time.perf_counter()
    results = load_files(conn, extracts, pseudo, workers=workers, url=url)
    run = Run(time.perf_counter() - t0, self_cpu() + children_cpu() - c0, server_cpu() - s0)
    conn.close()
    return run, results


def fresh_loaded_db(landing: Path) -> str:
    """A fresh bench database with the night's reference data loaded (the catalog the checks need)."""
    import psycopg2

    from yibao import db
    from yibao.landing import discover
    from yibao.loader import load_files
    from yibao.pseudonym import Pseudonymiser

    url = fresh_db(BENCH_DB)
    conn = psycopg2.connect(url)
    db.bootstrap(conn)
    all_files, _ = discover(landing, NIGHT, NIGHT)
    load_files(conn, [f for f in all_files if f.is_reference], Pseudonymiser(KEY))
    conn.close()
    return url


def run_copy(files, url: str) -> Run:
    """psql \\copy of the same files into index-free all-text tables (one per extract)."""
    import psycopg2

    widths: dict[str, int] = {}
    script = []
    for path, enc in files:
        kind = path.name.split(".")[0]
        with open(path, encoding=enc, newline="") as fh:
            n = len(next(csv.reader(fh)))
        widths[kind] = max(widths.get(kind, 0), n)
        cols = [c.name for c in EXTRACTS[kind].columns]
        cols += [f"extra{i}" for i in range(1, n - len(cols) + 1)]
        pg_enc = "UTF8" if enc.startswith("utf-8") else "GB18030"
        script.append(f"\\copy public.copy_{kind} ({', '.join(cols[:n])}) from '{path}' "
                      f"with (format csv, header true, encoding '{pg_enc}')")
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        for e in EXTRACTS.values():
            names = [c.name for c in e.columns]
            names += [f"extra{i}" for i in range(1, widths.get(e.name, 0) - len(names) + 1)]
            cols = ", ".join(f'"{c}" text' for c in names)
            cur.execute(f"drop table if exists public.copy_{e.name}; create table public.copy_{e.name} ({cols})")
    conn.close()
    psql = str(pg.bin_dir() / "psql")
    sql = Path(settings().home) / "bench_copy.sql"
    sql.write_text("\n".join(script) + "\n", encoding="utf-8")
    checkpoint(url)
    c0, s0, t0 = children_cpu(), server_cpu(), time.perf_counter()
    subprocess.run([psql, "-q", "-X", "-v", "ON_ERROR_STOP=1", "-f", str(sql), url], check=True)
    return Run(time.perf_counter() - t0, children_cpu() - c0, server_cpu() - s0)


def prepare_write_floor(landing: Path, files, url: str) -> Path:
    """The loader's own output for ``files`` (rows checked and pseudonymised: never an ID number),
    written by its row path under the bench directory, and a psql script that copies it into the
    raw tables (untimed preparation for :func:`run_write_floor`)."""
    import psycopg2

    from yibao.landing import discover
    from yibao.loader import FileLoader, FileResult, _latest_reference
    from yibao.pseudonym import Pseudonymiser

    out = Path(settings().home) / "bench" / "write_floor"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    conn = psycopg2.connect(url)
    catalog, hospitals = _latest_reference(conn)
    loader = FileLoader(conn, Pseudonymiser(KEY), catalog, hospitals, dt.date.today())
    wanted = dict(files)
    script = []
    all_files, _ = discover(landing, NIGHT, NIGHT)
    for i, f in enumerate(x for x in all_files if x.path in wanted):
        columns = EXTRACTS[f.kind].columns
        target = ["load_id", "business_date", "source_file", "source_row"]
        for c in columns:
            target += ["patient_key", "patient_sex", "patient_birth_year"] if c.kind == "id_number" else [c.name]
        target.append("extra")
        path = out / f"{i:04d}_{f.kind}.csv"
        with open(path, "wb") as fh:
            for chunk in loader._rows(f, columns, wanted[f.path], 10_000_000 + i, FileResult(file=f, status="x"), []):
                fh.write(chunk)
        script.append(f"\\copy raw.{f.kind} ({', '.join(target)}) from '{path}' with (format csv)")
    conn.close()
    sql = out / "floor.sql"
    sql.write_text("\n".join(script) + "\n", encoding="utf-8")
    return sql


def run_write_floor(sql: Path, url: str) -> Run:
    """psql \\copy of the loader's checked rows into the real raw tables, in one process: what the
    server alone spends to store a night the loader's way (typed columns, lineage, BRIN index, WAL).
    No client-side speed-up of the checks can make that cheaper."""
    checkpoint(url)
    psql = str(pg.bin_dir() / "psql")
    c0, s0, t0 = children_cpu(), server_cpu(), time.perf_counter()
    subprocess.run([psql, "-q", "-X", "-v", "ON_ERROR_STOP=1", "-f", str(sql), url], check=True)
    return Run(time.perf_counter() - t0, children_cpu() - c0, server_cpu() - s0)


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


def peak_rss_of_load(landing: Path, url: str) -> tuple[float, int, float, float]:
    """(seconds, rows, CPU seconds, peak RSS in MB) of a child process loading ``landing``."""
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
        "t = time.perf_counter(); c = time.process_time()\n"
        f"res = load_files(conn, files, Pseudonymiser({KEY!r}))\n"
        "ru = resource.getrusage(resource.RUSAGE_SELF)\n"
        "print(time.perf_counter() - t, sum(r.rows_read for r in res if not r.file.is_reference),"
        " time.process_time() - c, ru.ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    secs, rows, cpu, rss = out.stdout.strip().splitlines()[-1].split()
    return float(secs), int(rows), float(cpu), int(rss) / 1024


def _line(name: str, r: Run, rows: int, note: str) -> str:
    return (f"{name:<12}: {r.wall:7.2f}s {rows / r.wall:>10,.0f} rows/s | CPU client {r.client_cpu:6.2f}s"
            f" server {r.server_cpu:6.2f}s  ({note})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--volume", type=float, default=133.0)
    ap.add_argument("--hospitals", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=1, help="interleaved rounds; best of each is reported")
    ap.add_argument("--workers", type=int, default=None, help="loader worker processes (default: as load_landing)")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    from yibao.loader import default_workers

    workers = args.workers or default_workers()
    pg.start()
    root = settings().home / "bench"
    landing = ensure_city(root, args.volume, args.hospitals)
    if not args.skip_throughput:
        files = plain_csv_files(landing)
        rows = count_rows(files)
        print(f"\nnight {NIGHT}: {len(files)} plain CSV extract files, {rows:,} data rows; loader workers {workers} "
              f"(machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        loads: list[Run] = []
        copies: list[Run] = []
        floors: list[Run] = []
        floor_sql = prepare_write_floor(landing, files, fresh_loaded_db(landing))
        for i in range(args.repeat):
            url = fresh_db(BENCH_DB)
            copies.append(run_copy(files, url))
            run, results = run_loader(landing, files, url, workers)
            loads.append(run)
            floors.append(run_write_floor(floor_sql, url))
            loaded = [r for r in results if r.status == "loaded"]
            if args.repeat > 1:
                print(f"  round {i + 1}: loader {run.wall:6.2f}s (client CPU {run.client_cpu:5.2f}s, server "
                      f"{run.server_cpu:5.2f}s), \\copy {copies[-1].wall:6.2f}s (server {copies[-1].server_cpu:5.2f}s),"
                      f" raw write {floors[-1].wall:6.2f}s (server {floors[-1].server_cpu:5.2f}s)")
        shutil.rmtree(floor_sql.parent, ignore_errors=True)
        best_load = min(loads, key=lambda r: r.wall)
        best_copy = min(copies, key=lambda r: r.wall)
        print(_line("loader", best_load, rows, "checks, pseudonyms, ledger, quarantine"))
        print(_line("psql \\copy", best_copy, rows, "index-free all-text tables"))
        print(f"loaded {sum(r.rows_loaded for r in loaded):,} rows, quarantined "
              f"{sum(r.rows_quarantined for r in loaded):,}, {len(loaded)} of {len(results)} files")
        print(f"ratio loader/copy: {best_copy.wall / best_load.wall:.2f}  (target ≥ 0.70)")
        floor = min(floors, key=lambda r: r.server_cpu)
        cpus = os.cpu_count() or 1
        print(_line("raw write", floor, rows, "psql \\copy of the loader's checked rows into the raw tables"))
        print(f"  storing the rows the loader's way costs the server {floor.server_cpu / rows * 1e6:.2f} µs of CPU per row"
              f" (\\copy into text: {best_copy.server_cpu / rows * 1e6:.2f} µs): even with free checks, {cpus} CPUs store"
              f" at most {rows / (floor.server_cpu / cpus):,.0f} rows/s, a ratio of at most"
              f" {best_copy.wall / (floor.server_cpu / cpus):.2f}")
        lc = best_load.client_cpu + best_load.server_cpu
        cc = best_copy.client_cpu + best_copy.server_cpu
        print(f"CPU per row: loader {lc / rows * 1e6:.2f} µs (client {best_load.client_cpu / rows * 1e6:.2f} + server "
              f"{best_load.server_cpu / rows * 1e6:.2f}), \\copy {cc / rows * 1e6:.2f} µs (client "
              f"{best_copy.client_cpu / rows * 1e6:.2f} + server {best_copy.server_cpu / rows * 1e6:.2f})")

    if not args.skip_rss:
        print("\npeak RSS of a child process loading one claim file (flat memory = similar RSS):")
        for n in (100_000, 1_000_000):
            single = build_single_file(landing, root / f"single_{n}", n)
            u = fresh_db(f"{BENCH_DB}_rss")
            secs, loaded, cpu, rss = peak_rss_of_load(single, u)
            print(f"  {loaded:>9,} rows: {secs:6.1f}s  CPU {cpu:6.1f}s  peak RSS {rss:7.1f} MB")


if __name__ == "__main__":
    os.environ.setdefault("YIBAO_HOME", str(settings().home))
    main()
