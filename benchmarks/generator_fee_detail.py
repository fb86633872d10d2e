"""Generator speed with and without fee_detail.csv (the biggest extract by far).

Generates the same city twice into a scratch directory — without fee_detail, then with every hospital
sending it — and prints rows, wall-clock and CPU seconds, and fee lines per CPU second (the extra CPU
the fee lines cost). On a shared machine the CPU figures are steadier than wall-clock ones; the load
average is printed beside them.

Run: ``.venv/bin/python benchmarks/generator_fee_detail.py [--hospitals 6 --days 14 --volume 4.5]``
(about 500k fee lines). Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hospitals", type=int, default=6)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--volume", type=float, default=4.5)
    ap.add_argument("--fee-lines", type=float, default=4.0)
    args = ap.parse_args()
    from yibao.generator import generate_city

    start = dt.date(2025, 3, 3)
    end = start + dt.timedelta(args.days - 1)
    results = {}
    with tempfile.TemporaryDirectory(prefix="yibao-gen-bench-") as tmp:
        for share in (0.0, 1.0):
            out = Path(tmp) / f"city_{share}"
            wall, cpu = time.perf_counter(), time.process_time()
            summary = generate_city(out, seed=5, hospitals=args.hospitals, start=start, end=end, volume=args.volume,
                                    defect_rate=0.0, fee_detail=share, fee_lines=args.fee_lines)
            results[share] = (time.perf_counter() - wall, time.process_time() - cpu, summary.rows)
            shutil.rmtree(out)
            print(f"fee_detail share {share}: {sum(summary.rows.values()):,} rows {summary.rows}, "
                  f"{results[share][0]:.1f}s wall, {results[share][1]:.1f}s CPU, load {os.getloadavg()[0]:.1f}",
                  flush=True)
    lines = results[1.0][2]["fee_detail"]
    extra_cpu = results[1.0][1] - results[0.0][1]
    print(f"{lines:,} fee lines cost {extra_cpu:.1f}s CPU: {lines / extra_cpu:,.0f} fee lines per CPU second; "
          f"whole city with fee_detail {sum(results[1.0][2].values()) / results[1.0][1]:,.0f} rows per CPU second")


if __name__ == "__main__":
    main()
