"""Discovery in O(new files): a file already in the ledger is recognised by its stat, without reading it.

The spies below wrap the real functions (they count, then call through): what is measured is what the
loader really does. Landing files are back-dated an hour before loading, as files delivered earlier in
the evening would be (a file modified within ``loader.RACY_NS`` of being read is not remembered by its
stat; ``test_a_fresh_file_is_hashed_until_its_stat_can_be_trusted`` covers that case).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import pytest

from yibao import db
from yibao.loader import load_landing

THROUGH = dt.date(2025, 1, 2)
HOUR_AGO_NS = time.time_ns() - 3600 * 10**9


def _query(sql: str, params=()) -> list[tuple]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _backdate(path: Path, ns: int = HOUR_AGO_NS) -> None:
    os.utime(path, ns=(ns, ns))


def _landing_files(landing: Path) -> list[Path]:
    return [p for p in landing.rglob("*") if p.is_file() and "_generator" not in p.parts]


@pytest.fixture
def city(tmp_path) -> Path:
    """Two nights of six hospitals (csv, GB18030, gzip, xlsx, manifests, some rejected files), back-dated."""
    from yibao.generator import generate_city

    landing = tmp_path / "landing"
    generate_city(landing, seed=5, hospitals=6, start=dt.date(2025, 1, 1), end=THROUGH, volume=0.2,
                  defect_rate=0.03)
    for p in _landing_files(landing):
        _backdate(p)
    return landing


class Spy:
    """Counts ``loader.fingerprint`` calls and every file opened under the landing directory."""

    _active: Spy | None = None
    _hooked = False

    def __init__(self, monkeypatch, landing: Path):
        from yibao import loader

        self.landing = str(landing)
        self.fingerprinted: list[str] = []
        self.opened: list[str] = []
        real = loader.fingerprint

        def fingerprint(path):
            try:
                self.fingerprinted.append(str(Path(path).relative_to(landing)))
            except ValueError:  # packaged reference data (the national rule library): named as in the ledger
                from yibao.landing import PACKAGED_PREFIX

                self.fingerprinted.append(PACKAGED_PREFIX + Path(path).name)
            return real(path)

        monkeypatch.setattr(loader, "fingerprint", fingerprint)
        if not Spy._hooked:  # audit hooks cannot be removed: one hook, pointed at the active spy
            sys.addaudithook(Spy._audit)
            Spy._hooked = True
        Spy._active = self

    @staticmethod
    def _audit(event: str, args: tuple) -> None:
        spy = Spy._active
        if spy is not None and event == "open" and isinstance(args[0], (str, os.PathLike)):
            path = os.fspath(args[0])
            if path.startswith(spy.landing) and os.path.isfile(path):
                spy.opened.append(path)

    def stop(self) -> None:
        Spy._active = None


@pytest.fixture
def spy(monkeypatch, city):
    def start() -> Spy:
        return Spy(monkeypatch, city)

    yield start
    Spy._active = None


def _load(landing: Path):
    # one process: every file the run looks at is looked at here, where the spies are
    return load_landing(landing, THROUGH, show_progress=False, workers=1)


def _statuses(night) -> dict[str, str]:
    return {f.file.relpath: f.status for f in night.files}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_noop_rerun_reads_no_landing_file(clean_warehouse, city, spy, workers, monkeypatch):
    from yibao import loader

    # with 2, the first load runs in two worker processes: they record the stats too
    monkeypatch.setattr(loader, "PARALLEL_MIN_BYTES", 0)
    first = load_landing(city, THROUGH, show_progress=False, workers=workers)
    statuses = collections.Counter(f.status for f in first.files)
    assert statuses["loaded"] > 20 and statuses["skipped"] == 0
    ledger = _query("select count(*), count(file_mtime_ns) from raw.load_ledger")[0]
    assert ledger == (len(first.files), len(first.files))  # loaded and rejected files alike carry their stat

    s = spy()
    again = _load(city)
    s.stop()
    # the earlier folder's files are counted, not listed (a year is ~10⁵ of them); every file is skipped
    assert {f.status for f in again.files} == {"skipped"}
    assert again.skipped_earlier == sum(1 for f in first.files if f.file.business_date == THROUGH - dt.timedelta(1))
    assert again.files_skipped == len(again.files) + again.skipped_earlier == len(first.files)
    assert f"{len(first.files)} already loaded (skipped)" in again.summary_text()
    assert s.fingerprinted == []
    assert s.opened == []
    assert _query("select count(*) from raw.load_ledger")[0][0] == len(first.files)
    assert again.walk_listed == again.skipped_earlier and again.walk_seconds is not None
    # the load task's answer says what the walk listed (the benchmark prints it)
    from yibao import pipeline

    walk = pipeline.load(city, THROUGH, "walk-answer")["walk"]
    assert walk == {"from": str(THROUGH - dt.timedelta(days=91)), "listed": again.skipped_earlier,
                    "known": again.skipped_earlier, "seconds": walk["seconds"]} and walk["seconds"] > 0


def test_touched_identical_file_is_hashed_once_not_reloaded(clean_warehouse, city, spy):
    _load(city)
    counts = _query("select count(*), (select count(*) from raw.claim) from raw.load_ledger")[0]
    touched = next(p for p in sorted(city.glob("20250102/*/claim.csv*")))
    rel = str(touched.relative_to(city))
    _backdate(touched, HOUR_AGO_NS + 60 * 10**9)  # a minute later: same bytes, new mtime

    s = spy()
    night = _load(city)
    assert s.fingerprinted == [rel]
    assert {os.path.relpath(p, city) for p in s.opened} == {rel}  # (the open spy sees what is read)
    assert _statuses(night)[rel] == "skipped"
    assert _query("select count(*), (select count(*) from raw.claim) from raw.load_ledger")[0] == counts
    # its new stat is recorded: the next run does not read it again
    s = spy()
    _load(city)
    assert s.fingerprinted == [] and s.opened == []


def test_changed_bytes_at_the_same_path_are_a_resend(clean_warehouse, city, spy):
    _load(city)
    def english_utf8(p: Path) -> bool:
        return p.read_bytes().startswith(b"settlement_id,")

    loaded = {r[0] for r in _query("select source_file from raw.load_ledger where status = 'loaded'")}
    path = next(p for p in sorted(city.glob("20250101/*/claim.csv"))
                if english_utf8(p) and str(p.relative_to(city)) in loaded)
    rel = str(path.relative_to(city))
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].rstrip("\r\n").split(",")
    row = lines[1].rstrip("\r\n").split(",")
    sid = header.index("settlement_id")
    old_id = row[sid]
    row[sid] = old_id[:-1] + "X"  # a corrected key: same size, other bytes
    path.write_text(lines[0] + ",".join(row) + lines[1][len(lines[1].rstrip("\r\n")):] + "".join(lines[2:]),
                    encoding="utf-8")
    manifest = path.parent / "_manifest.json"
    if manifest.exists():  # the hospital re-sends the folder's manifest with the file
        import hashlib

        data = json.loads(manifest.read_text(encoding="utf-8"))
        data["claim"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        manifest.write_text(json.dumps(data), encoding="utf-8")
        _backdate(manifest, HOUR_AGO_NS + 60 * 10**9)
    _backdate(path, HOUR_AGO_NS + 60 * 10**9)

    s = spy()
    night = _load(city)
    assert s.fingerprinted == [rel]
    result = next(f for f in night.files if f.file.relpath == rel)
    assert result.status == "loaded"
    versions = _query("select status, sha256 from raw.load_ledger where source_file = %s order by load_id", (rel,))
    assert len(versions) == 2 and versions[0][1] != versions[1][1] and versions[1][0] == "loaded"
    old_key = _query("select load_id from raw.claim where source_file = %s and settlement_id = %s", (rel, old_id))
    assert len(old_key) == 1 and old_key[0][0] < result.load_id  # history kept: the first version stays
    new_key = _query("select load_id from raw.claim where source_file = %s and settlement_id = %s", (rel, row[sid]))
    assert new_key == [(result.load_id,)]


def test_a_late_file_is_caught_up(clean_warehouse, city, spy):
    late = sorted(city.glob("20250101/*/usage.csv"))[0]
    held_back = late.with_name("held_back")
    late.rename(held_back)
    first = _load(city)
    rel = str(late.relative_to(city))
    assert rel not in _statuses(first)

    held_back.rename(late)  # it lands a night late, for the earlier business date
    s = spy()
    night = _load(city)
    assert s.fingerprinted == [rel]
    assert _statuses(night)[rel] == "loaded"
    assert [k for k, v in _statuses(night).items() if v != "skipped"] == [rel]


def test_the_nights_folders_load_while_the_earlier_ones_are_walked(clean_warehouse, city, spy, monkeypatch):
    """The folders from the ledger's newest business date on load first; the earlier folders are
    listed beside that load, and what they hold that is new (a late file) loads after it, in the
    same run: nothing is left for another night."""
    from yibao import loader

    first = _load(city)
    loaded = {r[0] for r in _query("select source_file from raw.load_ledger where status = 'loaded'")}
    late = next(str(p.relative_to(city)) for p in sorted(city.glob("20250101/*/claim.csv*"))
                if str(p.relative_to(city)) in loaded)
    hospitals = sorted({f.file.hospital_code for f in first.files if f.file.business_date == THROUGH})
    tonight = [f.file.relpath for f in first.files
               if f.file.business_date == THROUGH and f.file.hospital_code != hospitals[0]]
    with db.connect() as conn, conn.cursor() as cur:  # as if these had not been delivered yet
        cur.execute("select load_id from raw.load_ledger where source_file = any(%s)", ([late, *tonight],))
        ids = [r[0] for r in cur.fetchall()]
        for table in ("raw.purchase", "raw.usage", "raw.claim", "raw.fee_detail", "raw.quarantine", "raw.load_ledger"):
            cur.execute(f"delete from {table} where load_id = any(%s)", (ids,))
    walks = []
    real = loader._walk_earlier

    def walk(landing, through, since, url):
        walks.append((through, since))
        known, new, warnings, seconds = real(landing, through, since, url)
        assert [f.relpath for f in new] == [late]  # the walk set the known files aside itself
        return known, new, warnings, seconds

    monkeypatch.setattr(loader, "_walk_earlier", walk)
    night = _load(city)
    # the ledger's newest date is still 2025-01-02; the first load was a full walk, so this night
    # lists the late-file window's folders (92 business dates up to the newest)
    assert walks == [(dt.date(2025, 1, 1), THROUGH - dt.timedelta(days=91))]
    assert night.skipped_earlier == sum(1 for f in first.files if f.file.business_date == dt.date(2025, 1, 1)) - 1
    statuses = _statuses(night)
    assert statuses[late] == "loaded"
    assert all(statuses[rel] in ("loaded", "rejected") for rel in tonight)
    assert {k for k, v in statuses.items() if v != "skipped"} == {late, *tonight}
    order = [f.file.relpath for f in night.files if f.status != "skipped"]
    assert order[-1] == late  # the night's files first: the late one was found by the walk beside them
    ids = {f.file.relpath: f.load_id for f in night.files if f.load_id is not None}
    assert ids[late] > max(ids[rel] for rel in tonight)
    assert _query("select count(*) from raw.load_ledger")[0][0] == len(first.files)

    monkeypatch.setattr(loader, "_walk_earlier", lambda *a: (_ for _ in ()).throw(OSError("walk failed")))
    with pytest.raises(OSError, match="walk failed"):  # a walk that fails fails the load step
        _load(city)


def test_a_late_file_older_than_the_window_loads_on_the_next_full_walk(clean_warehouse, city, spy, monkeypatch):
    """An ordinary night lists only the late-file window's folders; every folder is listed when the
    last full walk is YIBAO_FULL_WALK_DAYS old, and a late file outside the window loads then."""
    from yibao import loader

    monkeypatch.setenv("YIBAO_LATE_WINDOW_DAYS", "1")  # the newest date's folders alone
    monkeypatch.setenv("YIBAO_FULL_WALK_DAYS", "7")
    late = sorted(city.glob("20250101/*/usage.csv"))[0]
    rel = str(late.relative_to(city))
    held_back = late.with_name("held_back")
    late.rename(held_back)
    first = _load(city)  # the first load lists every folder: a full walk
    assert first.walked_from is None and rel not in _statuses(first)
    held_back.rename(late)  # it lands late, into its business date's folder

    walks = []
    real = loader._walk_earlier
    monkeypatch.setattr(loader, "_walk_earlier", lambda *a: walks.append(a[1:3]) or real(*a))
    s = spy()
    night = _load(city)  # the next night: the 2025-01-01 folder is outside the window
    s.stop()
    assert walks == [] and s.fingerprinted == [] and s.opened == []
    assert rel not in _statuses(night) and night.skipped_earlier == 0 and night.walk_seconds is None
    assert (night.walked_from, night.full_walk_due) == (THROUGH, THROUGH + dt.timedelta(days=7))
    assert "late files looked for in the folders from 2025-01-02 on; every folder on the night of 2025-01-09" in (
        night.summary_text())

    later = load_landing(city, THROUGH + dt.timedelta(days=7), show_progress=False, workers=1)
    assert later.walked_from is None and walks == [(dt.date(2025, 1, 1), None)]
    assert [k for k, v in _statuses(later).items() if v != "skipped"] == [rel]
    assert _statuses(later)[rel] == "loaded"
    assert _query("select through, walked_from, files_new from raw.landing_walk order by walked_at") == [
        (THROUGH, None, len(first.files)), (THROUGH, THROUGH, 0), (THROUGH + dt.timedelta(days=7), None, 1)]

    walks.clear()  # a past night run again (before the newest date) lists every folder
    assert load_landing(city, THROUGH - dt.timedelta(days=1), show_progress=False, workers=1).walked_from is None
    assert walks == [(dt.date(2025, 1, 1), None)]

    monkeypatch.setenv("YIBAO_FULL_WALK_DAYS", "a week")
    with pytest.raises(ValueError, match="YIBAO_FULL_WALK_DAYS must be a whole number of days"):
        _load(city)


def test_a_full_walk_asked_for_finds_a_late_file_outside_the_window_tonight(clean_warehouse, city, monkeypatch, capsys):
    """`yibao load --full-walk` (and `yibao run --full-walk`, the run's conf ``full_walk``) lists every folder
    on an ordinary night."""
    monkeypatch.setenv("YIBAO_LATE_WINDOW_DAYS", "1")
    late = sorted(city.glob("20250101/*/usage.csv"))[-1]
    rel = str(late.relative_to(city))
    held_back = late.with_name("held_back")
    late.rename(held_back)
    _load(city)
    held_back.rename(late)
    assert rel not in _statuses(_load(city))  # outside the window
    from yibao.cli import main  # `yibao load --full-walk`, as an operator would

    assert main(["load", "--landing", str(city), "--through", str(THROUGH), "--full-walk"]) == 0
    assert "1 files loaded" in capsys.readouterr().out
    assert _query("select status from raw.load_ledger where source_file = %s", (rel,)) == [("loaded",)]
    assert _query("select walked_from from raw.landing_walk order by walked_at") == [(None,), (THROUGH,), (None,)]


def test_discover_unknown_counts_the_known_files_and_returns_the_others_as_discover_would(city, spy):
    """The walk's listing: what :func:`discover` finds, less the files whose stat key is known,
    which are only counted; the same warnings about what does not fit the layout."""
    from yibao.landing import discover, discover_unknown

    hospital = sorted(p for p in (city / "20250101").iterdir() if p.is_dir())[0]
    (hospital / "README.txt").write_text("not an extract", encoding="utf-8")
    (city / "2025-01-01").mkdir()
    broken = next(hospital / n for n in ("fee_detail.csv", "fee_detail.csv.gz", "fee_detail.xlsx")
                  if not (hospital / n).exists())
    broken.symlink_to(hospital / "nowhere.csv")  # a link to nothing: a warning, not a file
    files, warnings = discover(city, THROUGH, reference=False)
    unknown = [f for f in files if f.kind == "claim"][::3]
    known = {f.stat_key for f in files if f not in unknown}
    known.add(("20250102/H0/claim.csv", 1, 1))  # a ledger row of a file no longer there: no harm
    s = spy()
    found, n_known, found_warnings = discover_unknown(city, THROUGH, None, known)
    s.stop()
    assert s.opened == []  # listed and stat'ed, never opened
    assert found == unknown and len(unknown) >= 2  # in load order, as discover lists them
    assert n_known == len(files) - len(unknown)
    assert found_warnings == warnings
    assert any("not a YYYYMMDD" in w for w in warnings) and any("README.txt" in w for w in warnings)
    assert f"ignored {broken.relative_to(city)}: gone while the folder was read, or a link to nothing" in warnings
    assert str(broken.relative_to(city)) not in {f.relpath for f in files}
    # the date range is the folders', as for discover
    found, n_known, _ = discover_unknown(city, THROUGH, THROUGH, known)
    assert found == [f for f in unknown if f.business_date == THROUGH]
    assert n_known == sum(1 for f in files if f.business_date == THROUGH) - len(found)


def test_the_walk_runs_in_a_process_of_its_own_and_reports_its_failure(clean_warehouse, city, free_port):
    """The walk of the earlier folders is a child process (a thread would share the interpreter
    lock with a small night's load); what it finds comes back whole, and its failure, with the
    child's own error, fails the step."""
    from yibao import loader, pg

    _load(city)
    known, new, warnings, seconds = loader._walk_earlier(city, dt.date(2025, 1, 1), None, pg.url())
    assert new == [] and warnings == [] and seconds > 0
    assert known == _query("select count(*) from raw.load_ledger where business_date = '2025-01-01'")[0][0]
    late = sorted(city.glob("20250101/*/claim.csv*"))[0]
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("update raw.load_ledger set file_mtime_ns = file_mtime_ns + 1 where source_file = %s",
                    (str(late.relative_to(city)),))
    known_after, new, _, _ = loader._walk_earlier(city, dt.date(2025, 1, 1), None, pg.url())
    assert [f.relpath for f in new] == [str(late.relative_to(city))] and known_after == known - 1
    assert new[0] == next(f for f in loader.discover(city, THROUGH)[0] if f.path == late)  # the same object

    with pytest.raises(RuntimeError, match=r"(?s)the walk of the folders before 2025-01-02 failed: .*OperationalError"):
        loader._walk_earlier(city, dt.date(2025, 1, 1), None, f"postgresql://nobody@127.0.0.1:{free_port}/none")


def test_a_fresh_file_is_hashed_until_its_stat_can_be_trusted(clean_warehouse, city, spy):
    fresh = sorted(city.glob("20250102/*/purchase.csv*"))[0]
    rel = str(fresh.relative_to(city))
    os.utime(fresh)  # modified just now: another write in the same mtime tick could go unnoticed
    _load(city)
    assert _query("select file_mtime_ns from raw.load_ledger where source_file = %s", (rel,)) == [(None,)]

    s = spy()
    _load(city)
    assert s.fingerprinted == [rel]
    _backdate(fresh, HOUR_AGO_NS + 60 * 10**9)
    s = spy()
    _load(city)
    assert s.fingerprinted == [rel]  # old enough now: hashed once more, and remembered
    s = spy()
    _load(city)
    assert s.fingerprinted == []


def test_bootstrap_upgrades_an_older_ledger_whose_rows_are_hashed_once_more(clean_warehouse, city, spy):
    first = _load(city)
    with db.connect() as conn, conn.cursor() as cur:  # a warehouse from before the stat columns
        cur.execute("alter table raw.load_ledger drop column file_size cascade, drop column file_mtime_ns cascade")
    db.bootstrap()
    db.bootstrap()  # idempotent
    assert _query("select count(*), count(file_size) from raw.load_ledger")[0] == (len(first.files), 0)

    s = spy()
    again = _load(city)
    assert {f.status for f in again.files} == {"skipped"}
    assert sorted(s.fingerprinted) == sorted(f.file.relpath for f in first.files)
    s = spy()
    _load(city)
    assert s.fingerprinted == [] and s.opened == []


def test_a_corrected_manifest_applies_once_the_rejected_row_is_deleted(clean_warehouse, city, spy):
    # a folder whose manifest is wrong about its claim file (the file itself is fine)
    manifest = next(p for p in sorted(city.glob("20250102/*/_manifest.json"))
                    if "claim" in json.loads(p.read_text(encoding="utf-8")))
    claim = next(manifest.parent.glob("claim.csv*"))
    rel = str(claim.relative_to(city))
    data = json.loads(manifest.read_text(encoding="utf-8"))
    right = data["claim"]["sha256"]
    data["claim"]["sha256"] = "0" * 64
    manifest.write_text(json.dumps(data), encoding="utf-8")
    night = _load(city)
    result = next(f for f in night.files if f.file.relpath == rel)
    assert (result.status, result.reject_reason) == ("rejected", "manifest_mismatch")

    # the hospital corrects the manifest: the file's bytes were judged already, so nothing changes
    data["claim"]["sha256"] = right
    manifest.write_text(json.dumps(data), encoding="utf-8")
    s = spy()
    assert _statuses(_load(city))[rel] == "skipped"
    assert s.fingerprinted == []  # the same outcome hashing gives: those bytes are in the ledger
    # the documented repair: delete the rejected row; the next run checks the file again and loads it
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("delete from raw.load_ledger where source_file = %s and status = 'rejected'", (rel,))
    s = spy()
    night = _load(city)
    assert s.fingerprinted == [rel]
    assert _statuses(night)[rel] == "loaded"
