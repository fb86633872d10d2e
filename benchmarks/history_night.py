"""A city's year, then one ordinary night: does the night cost the same on top of the year as on nothing?

``make bench-history`` (or ``.venv/bin/python benchmarks/history_night.py [flags]``):

1. **Generate** a clean synthetic city (``yibao.generator``): ``--hospitals`` hospitals, ``--days``
   business dates from ``--start`` (the history), sized so that the history holds about
   ``--claims-total`` claim rows (plus usage and purchase lines), and the next working day after it
   (the night, at the same daily volume: about 100k claims for 100 hospitals and 30M claims a year).
   The landing zone is kept under ``--data-dir`` and reused when the same flags run again.
2. **The year**: a database gets the whole history in one catch-up night through the same pipeline
   steps as the nightly DAG (``yibao.pipeline``: load → GX raw → dbt build → GX marts → publish);
   the steps are timed and printed too (a bureau's first load of a year). The database is then
   vacuumed, as autovacuum would before the nightly runs resume (not timed), and its last day is run
   as an ordinary night of its own, so that the year ends in the nightly DAG's steady state
   (``marts_build``, the night's dbt target, holds the marts published the night before last; after
   a single catch-up it would not exist and the night would build every mart from scratch; and the
   free space the vacuum found at the ends of the catch-up's pages, which the first night after it
   fills one row a page, is taken by that night, not by the timed one). The
   database is kept as a template (``bench_year_<tag>``) and reused by a re-run with the same
   flags; ``--build-year-only`` builds it and stops (the slow part, to run outside a benchmark
   lock before the timed nights). ``--chunk-days N`` builds the year in catch-ups of N days
   instead of one, each published; a build that was interrupted (or stopped at the end of a
   working session) resumes after the last catch-up it published.
3. **The night on top of the year**: a copy of that database (``create database … template``)
   loads, validates, builds, validates and publishes the night; every step timed. A copy doubles
   the disk (the 30M-claim year measured 34 GB, so 34 GB more); ``--in-place`` runs the night in
   the year's database itself instead, which a later run then builds again.
4. **The same night on top of nothing**: a fresh database holding only the reference data runs the
   same night (same landing files, same steps). That night is the warehouse's first build: every
   incremental model is created with ``create table as``, none of an incremental night's work.
   ``--empty-warehouse`` also times the same night **on an empty warehouse**: a fresh database
   whose reference data first ran the two nights before it (not timed; every model built empty and
   published, as after a deployment that has seen no extract; two, so that the marts too are
   built incrementally), so that the night takes the incremental path on empty tables, as the
   night on the year does on full ones. Its ratio to the night on the year is what the history
   adds; its ratio to the first build is what the incremental path costs by itself.

Printed: one table with the seconds of each step (load, GX raw, dbt, GX marts, publish, total) for
the year's catch-up, the night on the year and the night on nothing, the ratio year/empty of each
step, and dbt's three slowest models of each run (over every dbt invocation of the step: an
upgrade's refreshes of stale models included), the eight models whose seconds grew most from the
night on nothing to the night on the year (and the tests summed), the load step's walk of the
earlier folders (a NOTE: files listed, from which date, seconds), plus the row counts and the
load average. A
second table gives the server's I/O in each step of both nights (``pg_stat_io``, ``pg_stat_wal``):
the pages read from outside shared buffers and the seconds spent waiting for them (the benchmark
sets ``track_io_timing`` on its databases), the WAL written and its full-page images; then the six
tables that read the most pages in each night, and the tables read by sequential scans for 10,000
rows or more (``pg_stat_all_tables.seq_tup_read``). It shows how much of the night on the year is
reading a history that does not fit in memory, which table it reads, and any plan that scans the
history where it should probe it.
``--repeat N`` times the two nights N times in turn (a fresh copy of the year and a fresh empty
database each time) and prints each pair's table, every ratio and their median, and the ratio of
the fastest night on the year to the fastest night on nothing (the least disturbed run of each
side): on this 2-core machine two runs of the same code differ by 0.2-0.4 in one pair's ratio. It takes long at full
size (30M claims: hours); it is a benchmark, not a test. A small run: ``--hospitals 5 --days 20 --claims-total 20000``.

Nothing is stubbed: the real loader, GX, dbt and PostgreSQL (the embedded server unless
``YIBAO_DATABASE_URL`` is set; the databases are created beside the warehouse database).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from yibao import pg
from yibao.config import PROJECT_ROOT, settings

# dbt's target directory (DBT_TARGET_PATH, e.g. to keep a benchmark's dbt runs apart from tests running beside it)
RUN_RESULTS = Path(os.environ.get("DBT_TARGET_PATH") or PROJECT_ROOT / "dbt_project" / "target") / "run_results.json"
STEPS = ("load", "gx_raw", "dbt", "gx_marts", "publish")


@dataclass
class NightTiming:
    label: str
    seconds: dict[str, float] = field(default_factory=dict)
    slowest_models: list[tuple[str, float]] = field(default_factory=list)
    # every model's seconds in the dbt step, and the tests' summed under "(tests)"
    model_seconds: dict[str, float] = field(default_factory=dict)
    rows_loaded: int = 0
    files_loaded: int = 0
    notes: list[str] = field(default_factory=list)
    # per step: the server's page reads and writes, their milliseconds, and its WAL (IO_COUNTERS)
    io: dict[str, dict[str, float]] = field(default_factory=dict)
    # the tables that read the most pages from outside shared buffers in the night: (table, heap, index)
    relation_reads: list[tuple[str, int, int]] = field(default_factory=list)
    # the tables read by sequential scans for SEQ_ROWS_LISTED rows or more in the night: (table, rows)
    seq_scans: list[tuple[str, int]] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(self.seconds.get(s, 0.0) for s in STEPS)


# The server's I/O, read before and after each step: pages read into shared buffers from outside them
# (the kernel's page cache or the disk) and the milliseconds spent waiting for them; pages written by
# the backends, the background writer and the checkpointer, and their milliseconds; the WAL written and
# the full-page images in it (a page's first change after a checkpoint logs the whole 8 kB page). The
# times need track_io_timing, which the benchmark sets on its databases (_instrument). Cluster-wide
# counters: they include autovacuum, and a backend reports its counts when it is idle or exits, so up to
# about a second of a step can show in the next one.
# the server's settings a night's figures depend on most, printed with them
SERVER_SETTINGS = ("shared_buffers", "wal_buffers", "max_wal_size", "synchronous_commit")
SERVER_SETTINGS_SQL = "select " + ", ".join(f"current_setting('{name}')" for name in SERVER_SETTINGS)
IO_COUNTERS = ("reads", "read_ms", "writes", "write_ms", "wal_bytes", "wal_fpi")
IO_SQL = """
    select coalesce(sum(io.reads), 0), coalesce(sum(io.read_time), 0),
           coalesce(sum(io.writes), 0), coalesce(sum(io.write_time), 0),
           (select wal_bytes from pg_stat_wal), (select wal_fpi from pg_stat_wal)
    from pg_stat_io as io
"""


# ------------------------------------------------------------------------------------- data


def _workday(day: dt.date) -> bool:
    from yibao.workdays import CalendarCoverageError, is_workday

    try:
        return is_workday(day)
    except CalendarCoverageError:
        return day.weekday() < 5


def plan(args) -> tuple[list[dt.date], dt.date, float]:
    """History dates, the night (next working day after the history) and the generator volume."""
    from yibao.generator import REST_FACTOR, estimate_rows_per_day

    history = [args.start + dt.timedelta(days=i) for i in range(args.days)]
    night = history[-1] + dt.timedelta(days=1)
    while not _workday(night):
        night += dt.timedelta(days=1)
    # the rest days between the history and the night belong to the history, so that the night on
    # the year loads the same files as the night on nothing (the night's folder only)
    history += [history[-1] + dt.timedelta(days=i) for i in range(1, (night - history[-1]).days)]
    work = sum(1 for d in history if _workday(d))
    rest = len(history) - work
    rest_factor = (REST_FACTOR["outpatient"] + REST_FACTOR["inpatient"]) / 2
    claims_per_workday_v1 = estimate_rows_per_day(args.hospitals, 1.0)["claim"]
    volume = args.claims_total / (claims_per_workday_v1 * (work + rest * rest_factor))
    return history, night, volume


def generate(args, landing: Path, start: dt.date, night: dt.date, volume: float) -> dict:
    """The landing zone (history and night), reused when it was written with the same flags."""
    from yibao.generator import generate_city

    params = {"seed": args.seed, "hospitals": args.hospitals, "start": start.isoformat(),
              "end": night.isoformat(), "volume": round(volume, 6)}
    marker = landing / "_generator" / "bench_params.json"
    if marker.exists() and json.loads(marker.read_text(encoding="utf-8")).get("params") == params:
        saved = json.loads(marker.read_text(encoding="utf-8"))
        print(f"reusing generated landing zone {landing} ({saved['summary'].splitlines()[0]})")
        return saved
    if landing.exists():
        shutil.rmtree(landing)
    t = time.perf_counter()
    summary = generate_city(landing, seed=args.seed, hospitals=args.hospitals, start=start, end=night,
                            volume=volume, defect_rate=0.0)
    seconds = time.perf_counter() - t
    print(f"generated in {seconds:.0f} s:\n{summary}")
    saved = {"params": params, "summary": str(summary), "rows": summary.rows, "generate_seconds": round(seconds, 1)}
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(saved, indent=1), encoding="utf-8")
    return saved


def night_only_landing(landing: Path, night: dt.date, target: Path) -> Path:
    """A landing zone with the reference files and the night's folder only (hard links where possible)."""
    if target.exists():
        shutil.rmtree(target)
    for sub in ("reference", night.strftime("%Y%m%d")):
        shutil.copytree(landing / sub, target / sub, copy_function=_link_or_copy)
    return target


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# ------------------------------------------------------------------------------------- databases


def _admin(statement: str) -> None:
    import psycopg2

    conn = psycopg2.connect(pg.url(database="postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(statement)
    conn.close()


def _exists(name: str) -> bool:
    import psycopg2

    conn = psycopg2.connect(pg.url(database="postgres"))
    with conn.cursor() as cur:
        cur.execute("select 1 from pg_database where datname = %s", (name,))
        found = cur.fetchone() is not None
    conn.close()
    return found


def _fresh(name: str, template: str | None = None) -> str:
    _admin(f'drop database if exists "{name}" with (force)')
    if template:
        # pooled sessions this process left open on the template (GX's engine, dbt's adapter)
        _admin(f"select pg_terminate_backend(pid) from pg_stat_activity where datname = '{template}'"
               " and pid <> pg_backend_pid()")
        _admin(f'create database "{name}" template "{template}" strategy file_copy')
    else:
        _admin(f'create database "{name}"')
    _instrument(name)
    return pg.url(database=name)


def _instrument(name: str) -> None:
    """Time the page reads and writes of every session on database ``name`` (the I/O table)."""
    _admin(f'alter database "{name}" set track_io_timing = on')


RELATION_READS_SQL = """
    select io.relid, io.schemaname || '.' || io.relname,
           coalesce(io.heap_blks_read, 0) + coalesce(io.toast_blks_read, 0),
           coalesce(io.idx_blks_read, 0) + coalesce(io.tidx_blks_read, 0),
           coalesce(scans.seq_tup_read, 0)
    from pg_statio_all_tables as io
    join pg_stat_all_tables as scans on scans.relid = io.relid
    where io.schemaname not in ('pg_catalog', 'information_schema', 'pg_toast')
      and io.schemaname not like 'pg_temp%'
"""

# a table read by sequential scans for at least this many rows in a night is listed: on the year, a
# night's read of the history (a plan that scans what it should probe)
SEQ_ROWS_LISTED = 10_000


def _relation_reads() -> dict[int, tuple[str, int, int, int]]:
    """(name, table pages, index pages read from outside shared buffers, rows read by sequential
    scans) per table of the database in use, so far, by the table's oid: the publish step swaps
    marts_build and marts, so that a name names another table after the night than before it."""
    return {relid: (name, heap, idx, seq) for relid, name, heap, idx, seq in _rows(pg.url(), RELATION_READS_SQL)}


def _io_counters() -> dict[str, float]:
    return dict(zip(IO_COUNTERS, (float(v) for v in _rows(pg.url(database="postgres"), IO_SQL)[0])))


def _use(url: str | None) -> None:
    """Point yibao.pipeline (db.connect, pg.url) at ``url`` (None: back to the default)."""
    if url is None:
        os.environ.pop("YIBAO_DATABASE_URL", None)
    else:
        os.environ["YIBAO_DATABASE_URL"] = url


def _published_through(url: str) -> dt.date | None:
    """The last night published in a database (None: no database, or nothing published)."""
    import psycopg2

    try:
        conn = psycopg2.connect(url)
    except psycopg2.Error:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("select to_regclass('audit.publish_log') is not null")
            if not cur.fetchone()[0]:
                return None
            cur.execute("select max(as_of_date) from audit.publish_log")
            return cur.fetchone()[0]
    finally:
        conn.close()


def year_chunks(history: list[dt.date], chunk_days: int) -> list[dt.date]:
    """The through-dates of the year's catch-ups: all but the last day in one catch-up (or in
    catch-ups of ``chunk_days`` days), then the last day as an ordinary night of its own."""
    body = history[:-1]
    if chunk_days <= 0:
        return [body[-1], history[-1]]
    return [*body[chunk_days - 1::chunk_days], *([body[-1]] if len(body) % chunk_days else []), history[-1]]


def _rows(url: str, sql: str) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def _scalar(url: str, sql: str):
    return _rows(url, sql)[0][0]


# ------------------------------------------------------------------------------------- the pipeline


def run_night(label: str, landing: Path, through: dt.date, run_id: str) -> NightTiming:
    """The nightly DAG's steps (yibao.pipeline), each timed; a failed quality gate is reported, not hidden."""
    from yibao import pipeline
    from yibao.quality import QualityGateFailed

    timing = NightTiming(label)
    # dbt's partial-parse state for this database, as the warehouse's previous night leaves it: the
    # night's build then re-parses nothing. Without it, a night whose database differs from the
    # last parsed one (a copy of the year, a fresh empty database) parsed the project in full
    # (~2.3 s) inside its timed dbt step, and a night run right after another on the same database
    # did not: a quarter's night (2025-03-31) had been timed without it, the same night on nothing
    # with it (2026-12-06).
    from yibao import transform

    t = time.perf_counter()
    transform.run_dbt(["parse"], marts_schema=pipeline.BUILD_SCHEMA)
    print(f"  [{label}] dbt's parse state for this database written in {time.perf_counter() - t:.1f} s"
          " (not timed: the previous night's, in production)", flush=True)
    # the setup's writes (the reference load, the night before) on disk before the clock starts
    print(f"  [{label}] setup's writes flushed to disk in {pg.flush_writes():.1f} s (not timed)", flush=True)
    before = _relation_reads()

    def step(name: str, fn):
        io = _io_counters()
        t = time.perf_counter()
        try:
            return fn()
        except QualityGateFailed as exc:
            first = str(exc).splitlines()
            timing.notes.append(f"{name}: GATE FAILED — {first[0]}" + (f" ({first[1]})" if len(first) > 1 else ""))
            return None
        finally:
            timing.seconds[name] = time.perf_counter() - t
            timing.io[name] = {k: v - io[k] for k, v in _io_counters().items()}
            print(f"  [{label}] {name:<9} {timing.seconds[name]:9.1f} s", flush=True)

    loaded = step("load", lambda: pipeline.load(landing, through, run_id))
    timing.rows_loaded, timing.files_loaded = loaded["rows_loaded"], loaded["files_loaded"]
    walk = loaded.get("walk")
    if walk:  # the earlier folders, listed beside the night's load
        timing.notes.append(f"the load step's walk listed {walk['listed']:,} files of "
                            f"{'the folders from ' + walk['from'] if walk['from'] else 'every earlier folder'}"
                            f" in {walk['seconds']:.2f} s ({walk['known']:,} known to the ledger)")
    step("gx_raw", lambda: pipeline.validate_raw(through, loaded["load_ids"], run_id))
    RUN_RESULTS.unlink(missing_ok=True)
    dbt_run = step("dbt", lambda: pipeline.transform(through, run_id))
    if dbt_run is not None:  # every dbt invocation of the step: an upgrade's refreshes of stale models too
        timing.model_seconds = dbt_run.model_seconds()
        timing.slowest_models = sorted(timing.model_seconds.items(), key=lambda m: -m[1])[:3]
        timing.model_seconds["(tests)"] = sum(n.seconds for run in (*dbt_run.refresh_runs, dbt_run)
                                              for n in run.nodes if n.resource_type == "test")
    if RUN_RESULTS.exists():  # every model's time (of the step's last dbt invocation), kept beside the landing zone
        shutil.copyfile(RUN_RESULTS, landing.parent / f"run_results_{label.replace(' ', '_')}.json")
    step("gx_marts", lambda: pipeline.validate_marts(through, run_id))
    step("publish", lambda: pipeline.publish(through, run_id, loaded["files_loaded"]))
    after = _relation_reads()
    reads, scans = [], []
    for relid, (name, heap, idx, seq) in after.items():
        # named as during the night when it existed before it (a published mart: marts_build.* then)
        name, heap_before, idx_before, seq_before = before.get(relid, (name, 0, 0, 0))
        reads.append((name, heap - heap_before, idx - idx_before))
        scans.append((name, seq - seq_before))
    timing.relation_reads = sorted((r for r in reads if r[1] + r[2] > 0), key=lambda r: -(r[1] + r[2]))[:6]
    timing.seq_scans = sorted((r for r in scans if r[1] >= SEQ_ROWS_LISTED), key=lambda r: -r[1])
    return timing


def warm_up() -> None:
    """Import what the steps import (GX, dbt, the loader) before any step is timed. Without it the
    first timed night of a process pays these imports alone (tens of seconds on a loaded machine):
    the night on a reused year, not the night on nothing that follows it. A dbt parse too: the
    first full parse of a process is ~2 s slower than the next (measured 7.4 s vs 5.3 s on an idle
    machine). Each timed night then parses once more, untimed, against its own database
    (run_night), so that its build finds dbt's partial-parse state valid, as a warehouse's nightly
    build does."""
    import great_expectations  # noqa: F401
    from dbt.cli.main import dbtRunner  # noqa: F401

    from yibao import loader, pipeline, quality, transform  # noqa: F401

    transform.run_dbt(["parse"])


def vacuum_after_catch_up(url: str) -> float:
    """VACUUM (ANALYZE) the year's database after its catch-up, as autovacuum does on a bureau's
    server before its nightly runs resume (the benchmark no longer depends on whether autovacuum got
    there before the night). The vacuum records each page's free space in the free space map: the
    catch-up's full builds leave a few hundred bytes at the end of most pages, and the first night
    after it puts one row on each of the ~1 % of pages where its rows fit (12,664 single-row
    inserts into int_claims_with_deductions on the 30 M year: as many page reads and full-page WAL
    images), a one-time cost that drains that map. The previous night then pays it, as the first
    nightly run after a bureau's catch-up would, and the timed night is an ordinary one
    (docs/scale-out.md §6, "The first night after the catch-up")."""
    import psycopg2

    started = time.perf_counter()
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("vacuum (analyze)")
    finally:
        conn.close()
    seconds = time.perf_counter() - started
    print(f"  [year] vacuumed after the catch-up in {seconds:.1f} s (not timed: autovacuum's work)", flush=True)
    return seconds


def year_timing(saved: dict, last: dt.date) -> NightTiming:
    """The year's figures from year_timing.json: its catch-ups summed ("year"), the last day's
    ordinary night in a note. Older files hold one catch-up's NightTiming fields."""
    if "chunks" not in saved:
        saved = {**saved, "label": "year", "slowest_models": [tuple(m) for m in saved.get("slowest_models", [])]}
        return NightTiming(**saved)
    year = NightTiming("year")
    for part in saved["chunks"]:
        if part["through"] == last.isoformat():
            year.notes.append(f"then the night {last} before the night: "
                              + ", ".join(f"{k} {v:.1f} s" for k, v in part["seconds"].items()))
            year.notes += part["notes"]
            continue
        for k, v in part["seconds"].items():
            year.seconds[k] = year.seconds.get(k, 0.0) + v
        year.rows_loaded += part["rows_loaded"]
        year.files_loaded += part["files_loaded"]
        slowest = dict(year.slowest_models)
        for model, seconds in part["slowest_models"]:
            slowest[model] = max(seconds, slowest.get(model, 0.0))
        year.slowest_models = sorted(slowest.items(), key=lambda m: -m[1])[:3]
        year.notes += part["notes"]
    catch_ups = len(saved["chunks"]) - 1
    if catch_ups > 1:
        year.notes.append(f"{catch_ups} catch-ups summed (slowest models: the slowest of any of them)")
    return year


# ------------------------------------------------------------------------------------- report


def report(runs: list[NightTiming], year_rows: dict, night_claims: int, args, load_avg: tuple) -> str:
    year = next((r for r in runs if r.label == "year"), None)
    on_year = next(r for r in runs if r.label == "night on year")
    on_empty = next(r for r in runs if r.label == "night on empty")
    built = next((r for r in runs if r.label == "night on empty warehouse"), None)
    lines = [
        "",
        f"history_night: {args.hospitals} hospitals, {args.days} days from {args.start}, history "
        + ", ".join(f"{k} {v:,}" for k, v in year_rows.items())
        + f"; the night: {night_claims:,} claims, {on_empty.rows_loaded:,} rows in {on_empty.files_loaded} files",
        f"load average before / after: {load_avg[0]} / {load_avg[1]} (cores: {os.cpu_count()}); server: "
        + ", ".join(f"{name} {value}" for name, value in zip(SERVER_SETTINGS, _rows(pg.url(), SERVER_SETTINGS_SQL)[0])),
        "",
        f"{'step':<10}" + (f"{'year catch-up s':>17}" if year else "")
        + f"{'night on year s':>17}{'night on empty s':>18}{'ratio':>8}"
        + (f"{'on empty warehouse s':>22}{'ratio':>8}" if built else ""),
    ]
    nights = [r for r in (on_year, on_empty, built) if r is not None]
    for s in (*STEPS, "total"):
        a = on_year.total if s == "total" else on_year.seconds.get(s, 0.0)
        b = on_empty.total if s == "total" else on_empty.seconds.get(s, 0.0)
        y = (year.total if s == "total" else year.seconds.get(s, 0.0)) if year else None
        ratio = f"{a / b:8.2f}" if b > 0 else f"{'-':>8}"
        line = f"{s:<10}" + (f"{y:17.1f}" if year else "") + f"{a:17.1f}{b:18.1f}{ratio}"
        if built:
            w = built.total if s == "total" else built.seconds.get(s, 0.0)
            line += f"{w:22.1f}" + (f"{a / w:8.2f}" if w > 0 else f"{'-':>8}")
        lines.append(line)
    lines += ["", "I/O of the server during each step (pg_stat_io, pg_stat_wal): pages read from outside shared"
              " buffers and the seconds waited for them, WAL written and its full-page images",
              f"{'step':<10}" + "".join(f"{r.label:>46}" for r in nights)]
    for s in (*STEPS, "total"):
        cells = []
        for r in nights:
            io = {k: sum(r.io.get(x, {}).get(k, 0.0) for x in STEPS) for k in IO_COUNTERS} if s == "total" \
                else r.io.get(s, dict.fromkeys(IO_COUNTERS, 0.0))
            cells.append(f"{io['reads']:>10,.0f} pg {io['read_ms'] / 1000:5.1f} s"
                         f"{io['wal_bytes'] / 2**20:7,.0f} MB {io['wal_fpi']:>7,.0f} fpi")
        lines.append(f"{s:<10}" + "".join(f"{c:>46}" for c in cells))
    for r in nights:
        lines.append(f"pages read, {r.label} (table + its indexes): "
                     + (", ".join(f"{n} {h:,} + {i:,}" for n, h, i in r.relation_reads) or "none"))
    for r in nights:
        lines.append(f"rows read by sequential scans, {r.label} (tables over {SEQ_ROWS_LISTED:,}): "
                     + (", ".join(f"{n} {k:,}" for n, k in r.seq_scans) or "none"))
    lines.append("")
    for r in runs:
        models = ", ".join(f"{m} {t:.1f} s" for m, t in r.slowest_models) or "n/a"
        lines.append(f"dbt slowest models, {r.label}: {models}")
    if on_year.model_seconds and on_empty.model_seconds:
        # where dbt's extra goes: each model's seconds on the year less on nothing (two threads run
        # the models, so the step's extra is about half the sum)
        a, b = on_year.model_seconds, on_empty.model_seconds
        extra = {m: a.get(m, 0.0) - b.get(m, 0.0) for m in a.keys() | b.keys()}
        top = sorted(extra, key=lambda m: -extra[m])[:8]
        lines.append(f"dbt's extra by model, night on year − night on empty (the sum {sum(extra.values()):+.1f} s"
                     " over two threads): " + ", ".join(f"{m} {a.get(m, 0.0):.2f} − {b.get(m, 0.0):.2f} = {extra[m]:+.2f} s"
                                                       for m in top)
                     + f"; the other {len(extra) - len(top)} {sum(v for m, v in extra.items() if m not in top):+.2f} s")
    for r in runs:
        for note in r.notes:
            lines.append(f"NOTE {r.label}: {note}")
    lines.append(f"\nnight on year / night on empty: {on_year.total / on_empty.total:.2f}×"
                 if on_empty.total else "")
    if built and built.total:
        lines.append(f"night on year / night on an empty warehouse: {on_year.total / built.total:.2f}×;"
                     f" night on an empty warehouse / first build: {built.total / on_empty.total:.2f}×")
    return "\n".join(lines)


def night_on_year(args, year_db: str, night_db: str, year_url: str, landing: Path, night: dt.date):
    """The night on top of the year: on a copy of it, or in it (--in-place: no copy on disk)."""
    from yibao import db

    if args.in_place:
        night_db = year_db
        _instrument(year_db)
        _use(year_url)
    else:
        _use(_fresh(night_db, template=year_db))
    db.bootstrap()  # not timed: a year kept from an earlier version of the code gets this one's SQL
    print(f"the night {night} on top of the year ({night_db}) …")
    timing = run_night("night on year", landing, night, f"bench-night-on-year-{night}")
    night_claims = _scalar(pg.url(database=night_db),
                           f"select count(*) from raw.claim where business_date = '{night}'")
    _use(None)
    return timing, night_claims


def night_on_empty(empty_db: str, landing: Path, base: Path, night: dt.date,
                   warehouse: bool = False) -> NightTiming:
    """The same night on top of nothing: reference data loaded first (not timed), then the night.

    With ``warehouse``, the two days before the night first run as nights of their own on the
    reference data alone (not timed): every model is built, empty, and published, as after a
    deployment that has seen no extract yet. Two, like the year's catch-up and its last day's
    night: after the first, ``marts_build`` (the night's dbt target) does not exist yet; after the
    second it holds the marts published the night before last, the nightly DAG's steady state. So
    the timed night takes the incremental path in every model, like the night on the year. Without
    it the timed night is the warehouse's first build (``create table as`` for every model)."""
    from yibao import db
    from yibao.loader import load_landing

    only = night_only_landing(landing, night, base / "night_only")
    _use(_fresh(empty_db))
    db.bootstrap()
    load_landing(only, night - dt.timedelta(days=1), show_progress=False)
    label = "night on empty warehouse" if warehouse else "night on empty"
    for days in ((2, 1) if warehouse else ()):
        before = night - dt.timedelta(days=days)
        print(f"the night {before} on the reference data alone ({empty_db}; not timed) …")
        run_night(f"empty night {days} before", only, before, f"bench-empty-night-{days}-before-{night}")
    print(f"the night {night} on top of an empty {'warehouse' if warehouse else 'history'} ({empty_db}) …")
    timing = run_night(label, only, night, f"bench-{label.replace(' ', '-')}-{night}")
    _use(None)
    return timing


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hospitals", type=int, default=100)
    ap.add_argument("--days", type=int, default=364, help="business dates of history (default: 2025-01-01 … 12-30), extended by the rest days before the night")
    ap.add_argument("--claims-total", type=int, default=30_000_000, help="claim rows of the whole history, about")
    ap.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2025, 1, 1))
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="where the landing zones are kept (default: $YIBAO_HOME/bench/history)")
    ap.add_argument("--rebuild-year", action="store_true", help="load and build the year again even if its database exists")
    ap.add_argument("--build-year-only", action="store_true",
                    help="build (or check) the year's database and stop: the slow part, to run outside a benchmark lock")
    ap.add_argument("--skip-empty", action="store_true", help="do not run the night on an empty history")
    ap.add_argument("--empty-warehouse", action="store_true",
                    help="also time the night on an empty warehouse: the reference data's own two nights"
                         " run first (not timed), so that the night takes the incremental path on empty"
                         " tables, as the night on the year does on full ones (the night on nothing is"
                         " otherwise the first build)")
    ap.add_argument("--keep", action="store_true", help="keep the night's databases (to inspect or profile them)")
    ap.add_argument("--chunk-days", type=int, default=0,
                    help="build the year in catch-ups of this many days, each published (default: one"
                         " catch-up); an interrupted build resumes after the last published one")
    ap.add_argument("--in-place", action="store_true",
                    help="run the night on the year in the year's database itself instead of a copy (half"
                         " the disk; the year is built again by the next run)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="time the pair (night on the year, night on nothing) this many times in turn and"
                         " print every ratio and their median (runs on a quiet machine still differ by"
                         " ±0.1 in the ratio); not with --in-place or --skip-empty")
    args = ap.parse_args()
    if args.empty_warehouse and args.skip_empty:
        ap.error("--empty-warehouse times a night on an empty history: not with --skip-empty")
    if args.repeat < 1 or (args.repeat > 1 and (args.in_place or args.skip_empty)):
        ap.error("--repeat must be at least 1, and 1 with --in-place or --skip-empty")
    if args.days < 2 or args.hospitals < 1 or args.claims_total < 1 or args.chunk_days < 0:
        ap.error("--days must be at least 2, --hospitals and --claims-total positive, --chunk-days not negative")

    load_before = os.getloadavg()
    # synthetic patients only: a fixed benchmark key unless one is configured
    os.environ.setdefault("YIBAO_PSEUDONYM_KEY", "benchmark-key-0123456789")
    pg.start()
    history, night, volume = plan(args)
    tag = f"h{args.hospitals}_d{args.days}_c{args.claims_total}_s{args.seed}"
    base = (args.data_dir or settings().home / "bench" / "history") / tag
    landing = base / "landing"
    print(f"history {history[0]} … {history[-1]} ({len(history)} days), night {night}, volume {volume:.3f}")
    gen = generate(args, landing, history[0], night, volume)

    from yibao import db

    warm_up()
    runs: list[NightTiming] = []
    year_db, night_db, empty_db = f"bench_year_{tag}", f"bench_night_{tag}", f"bench_empty_{tag}"
    try:
        # the year (kept as the template of the night's database, unless --in-place)
        chunks = year_chunks(history, args.chunk_days)
        timing_file = base / "year_timing.json"
        done = None if args.rebuild_year or not _exists(year_db) else _published_through(pg.url(database=year_db))
        if done is not None and done > history[-1]:
            print(f"{year_db} holds a night after the year (an --in-place night ran on it): building it again")
            done = None
        if done is not None and done < history[-1] and args.chunk_days <= 0:
            done = None  # a single catch-up that did not finish: start again (--chunk-days resumes)
        if done != history[-1]:
            parts = [part for part in json.loads(timing_file.read_text(encoding="utf-8")).get("chunks", [])
                     if part["through"] <= done.isoformat()] if done is not None and timing_file.exists() else []
            if done is None:
                _use(_fresh(year_db))
                parts = []
            else:
                _use(pg.url(database=year_db))
                print(f"resuming the year in {year_db} after {done}")
            db.bootstrap()
            # the last day runs as an ordinary night of its own: the steady state of the nightly
            # DAG, where marts_build (the night's dbt target) holds the marts published the night
            # before last, so that the night's incremental marts catch up two nights (after one
            # catch-up only, marts_build would not exist and every mart would be built from
            # scratch in the night on the year)
            print(f"loading and building the year into {year_db} in {len(chunks)} run(s) …")
            for through in chunks:
                if done is not None and through <= done:
                    continue
                label = "year" if through != history[-1] else "previous night"
                notes = []
                if through == history[-1]:
                    vacuumed = vacuum_after_catch_up(pg.url(database=year_db))
                    notes.append(f"the catch-up's tables vacuumed before it in {vacuumed:.1f} s")
                part = run_night(label, landing, through, f"bench-year-{through}")
                part.notes += notes
                parts.append({"through": through.isoformat(), **part.__dict__})
                timing_file.write_text(json.dumps({"chunks": parts}, indent=1), encoding="utf-8")
            _use(None)
        else:
            print(f"reusing the year already built in database {year_db}")
        if timing_file.exists():  # the catch-ups' figures (from the run that built the year)
            runs.append(year_timing(json.loads(timing_file.read_text(encoding="utf-8")), history[-1]))
        year_url = pg.url(database=year_db)
        if args.build_year_only:
            print(f"the year is built in database {year_db} (--build-year-only: no night timed)")
            for r in runs:
                print(r.label, {k: round(v, 1) for k, v in r.seconds.items()}, r.slowest_models, r.notes)
            return
        year_rows = {t: _scalar(year_url, f"select count(*) from raw.{t}") for t in ("claim", "usage", "purchase")}

        pairs: list[tuple[NightTiming, NightTiming | None, NightTiming | None]] = []
        for attempt in range(args.repeat):
            if args.repeat > 1:
                print(f"pair {attempt + 1} of {args.repeat}")
            on_year, night_claims = night_on_year(args, year_db, night_db, year_url, landing, night)
            on_empty = None if args.skip_empty else night_on_empty(empty_db, landing, base, night)
            built = night_on_empty(empty_db, landing, base, night, warehouse=True) if args.empty_warehouse else None
            pairs.append((on_year, on_empty, built))
    finally:
        _use(None)
    if args.skip_empty:
        print("\n(--skip-empty: no comparison)")
        for r in [*runs, *(pair[0] for pair in pairs)]:
            print(r.label, {k: round(v, 1) for k, v in r.seconds.items()}, r.slowest_models, r.notes)
        return
    load_after = os.getloadavg()
    for on_year, on_empty, built in pairs:
        print(report([*runs, on_year, on_empty, *([built] if built else [])], year_rows or gen.get("rows", {}), night_claims, args,
                     (f"{load_before[0]:.2f}", f"{load_after[0]:.2f}")))
    if len(pairs) > 1:
        whole = [y.total / e.total for y, e, _ in pairs]
        dbt = [y.seconds["dbt"] / e.seconds["dbt"] for y, e, _ in pairs]
        print(f"\n{len(pairs)} pairs: night on year / night on empty "
              + ", ".join(f"{r:.2f}" for r in whole) + f"; median {median(whole):.2f}×"
              + "; dbt step " + ", ".join(f"{r:.2f}" for r in dbt) + f"; median {median(dbt):.2f}×")
        # the fastest run of each side: what the code costs with the least interference from the
        # machine (a slow run is slow for a reason outside the code; a fast one cannot be fast by luck)
        fast_year, fast_empty = min(y.total for y, _, _ in pairs), min(e.total for _, e, _ in pairs)
        print(f"fastest night on year {fast_year:.1f} s, fastest on empty {fast_empty:.1f} s:"
              f" ratio of the fastest {fast_year / fast_empty:.2f}×")
        if args.empty_warehouse:
            warehouse = [y.total / w.total for y, _, w in pairs]
            fast_built = min(w.total for _, _, w in pairs)
            print("night on year / night on an empty warehouse " + ", ".join(f"{r:.2f}" for r in warehouse)
                  + f"; median {median(warehouse):.2f}×; fastest on an empty warehouse {fast_built:.1f} s,"
                  f" ratio of the fastest {fast_year / fast_built:.2f}×")
    if not args.keep and not args.in_place:
        _admin(f'drop database if exists "{night_db}" with (force)')


if __name__ == "__main__":
    sys.exit(main())
