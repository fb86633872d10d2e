"""Loader throughput of fee_detail (the biggest extract) against claim, per row, on files of N rows each.

Writes (once, under ``$YIBAO_HOME/bench/fee_vs_claim_<N>``) one hospital's claim.csv and fee_detail.csv
of ``--rows`` rows each (clean synthetic rows: a pool of patients, item codes of every item_type,
repeated prices, as real fee lines repeat them), then loads each file with the loader (all checks,
pseudonyms, patient_age_days, ledger) into a fresh database, ``--repeat`` interleaved rounds, and
prints the best rows/s of each and the CPU per row (this process; the server's processes).

Run: ``make bench-fee`` (or ``.venv/bin/python benchmarks/fee_detail_loader.py [--rows 200000] [--repeat 2]``).
Prints figures with the machine's load average; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loader_vs_copy import checkpoint, fresh_db, self_cpu, server_cpu  # noqa: E402

from yibao import pg  # noqa: E402
from yibao.config import settings  # noqa: E402
from yibao.contract import CLAIM, FEE_DETAIL  # noqa: E402

NIGHT = dt.date(2025, 3, 3)
HOSP = "H41070200001"
KEY = b"benchmark-key-0123456789"
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(rng: random.Random) -> str:
    birth = dt.date(1930, 1, 1) + dt.timedelta(days=rng.randrange(0, 34000))
    body = f"410702{birth:%Y%m%d}{rng.randrange(1000):03d}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, WEIGHTS)) % 11]


def item_pool(rng: random.Random) -> list[tuple[str, str, str]]:
    """(item_type, item_code, unit_price) of about 3,000 items: drugs, patent medicines, herbs, services, consumables."""
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    pool = []
    for _ in range(1200):
        pool.append(("11", "X" + "".join(rng.choice(alnum) for _ in range(22)), f"{rng.randrange(50, 50000) / 100:.4f}"))
    for _ in range(600):
        pool.append(("12", "Z" + "".join(rng.choice(alnum) for _ in range(19)), f"{rng.randrange(50, 20000) / 100:.4f}"))
    for i in range(200):
        pool.append(("13", f"饮片{i:04d}", f"{rng.randrange(1, 500) / 100:.4f}"))
    for _ in range(900):
        pool.append(("21", "00" + "".join(rng.choice("0123456789") for _ in range(13)), f"{rng.randrange(100, 100000) / 100:.4f}"))
    for _ in range(100):
        pool.append(("31", "C" + "".join(rng.choice("0123456789") for _ in range(19)), f"{rng.randrange(100, 500000) / 100:.4f}"))
    return pool


def build(root: Path, rows: int) -> Path:
    landing = root / f"fee_vs_claim_{rows}"
    day = landing / NIGHT.strftime("%Y%m%d") / HOSP
    if (day / "fee_detail.csv").exists():
        return landing
    rng = random.Random(11)
    (landing / "reference").mkdir(parents=True, exist_ok=True)
    day.mkdir(parents=True, exist_ok=True)
    with open(landing / "reference" / "hospitals.csv", "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([["hospital_code", "hospital_name", "level", "county_code", "ownership"],
                                  [HOSP, "示例市第一人民医院", "三级", "410702", "public"]])
    with open(landing / "reference" / "consumable_catalog.csv", "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([["consumable_code", "generic_name", "category_code", "is_high_value", "status"],
                                  ["C0202020010100100001", "药物洗脱冠状动脉支架", "C020202", "Y", "active"]])
    patients = [id_number(rng) for _ in range(20_000)]
    items = item_pool(rng)
    with open(day / "claim.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([c.name for c in CLAIM.columns])
        for i in range(rows):
            cash = rng.randrange(0, 300000) / 100
            fund = rng.randrange(0, 900000) / 100
            total = f"{fund + cash + 100:.2f}"
            inpatient = i % 4 == 0
            w.writerow([f"S{i:08d}", HOSP, f"V{i:08d}", patients[i % len(patients)], "310" if i % 3 else "390",
                        "21" if inpatient else "11", "2025-02-25" if inpatient else "", "2025-03-03" if inpatient else "",
                        f"2025-03-03 {8 + i % 12:02d}:{i % 60:02d}:{(i * 7) % 60:02d}", "I25.102", "",
                        total, f"{fund:.2f}", "0.00", "100.00", f"{cash:.2f}", "0.00", ""])
    with open(day / "fee_detail.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([c.name for c in FEE_DETAIL.columns])
        for i in range(rows):
            t, code, price = items[rng.randrange(len(items))]
            qty = rng.choice(("1", "1", "1", "2", "3", "10", "-1"))
            amount = f"{round(float(qty) * float(price) + 1e-9, 2):.2f}"
            visit = i // 25  # tens of lines per visit
            exam = rng.choice(("P", "N")) if t == "21" and i % 5 == 0 else ""
            w.writerow([f"F{i:09d}", HOSP, f"V{visit:08d}", patients[visit % len(patients)], t, code, "项目名称",
                        "XNK", "D410702000001", f"2025-03-0{1 + i % 3} {8 + i % 12:02d}:{i % 60:02d}:00",
                        qty, price, amount, exam])
    return landing


def load_one(landing: Path, kind: str) -> tuple[float, float, float, int, int]:
    """Load the reference, then time the one extract file of ``kind`` in a fresh database."""
    import psycopg2

    from yibao import db
    from yibao.landing import discover
    from yibao.loader import load_files
    from yibao.pseudonym import Pseudonymiser

    url = fresh_db("yibao_bench_fee")
    conn = psycopg2.connect(url)
    db.bootstrap(conn)
    files, _ = discover(landing, NIGHT, NIGHT)
    pseudo = Pseudonymiser(KEY)
    load_files(conn, [f for f in files if f.is_reference], pseudo)
    target = [f for f in files if f.kind == kind]
    checkpoint(url)
    c0, s0, t0 = self_cpu(), server_cpu(), time.perf_counter()
    (result,) = load_files(conn, target, pseudo, workers=1)
    wall = time.perf_counter() - t0
    client, server = self_cpu() - c0, server_cpu() - s0
    conn.close()
    assert result.status == "loaded", result
    return wall, client, server, result.rows_loaded, result.rows_quarantined


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=2, help="interleaved rounds; the best of each is reported")
    args = ap.parse_args()
    pg.start()
    landing = build(settings().home / "bench", args.rows)
    print(f"{args.rows:,} rows per file; load average {os.getloadavg()} on {os.cpu_count()} CPUs")
    best: dict[str, tuple] = {}
    for i in range(args.repeat):
        for kind in ("claim", "fee_detail"):
            run = load_one(landing, kind)
            print(f"  round {i + 1} {kind:<10} {run[0]:6.2f}s  {run[3] / run[0]:9,.0f} rows/s  client CPU {run[1]:5.2f}s"
                  f"  server CPU {run[2]:5.2f}s  loaded {run[3]:,} quarantined {run[4]:,}")
            if kind not in best or run[0] < best[kind][0]:
                best[kind] = run
    for kind, (wall, client, server, loaded, _) in best.items():
        print(f"best {kind:<10} {loaded / wall:9,.0f} rows/s  CPU per row: client {client / loaded * 1e6:5.1f} µs,"
              f" server {server / loaded * 1e6:5.1f} µs")
    ratio = (best["fee_detail"][3] / best["fee_detail"][0]) / (best["claim"][3] / best["claim"][0])
    print(f"fee_detail / claim rows/s: {ratio:.2f} (≥ 1: fee lines load at least as fast per row as claims)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
