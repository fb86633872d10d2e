"""The loader: landing files → raw tables, each file in one transaction, through a content-hash ledger.

- Streaming: rows are checked in Python and streamed into ``COPY … FROM STDIN`` while PostgreSQL
  ingests them; memory stays flat whatever the file size.
- Idempotent: ``raw.load_ledger`` is unique on (kind, hospital, business date, sha256): the same
  bytes load once; a corrected re-send (new bytes) loads as a newer version, history kept. A file
  whose (path, size, mtime) is on its ledger row is recognised without being read (``known_stats``):
  a night with nothing new costs a directory walk and one query. The night's folders (from the
  ledger's newest business date on) load first, while a thread walks the earlier ones; their late
  or changed files load after (``load_landing``).
- Atomic: ledger row, raw rows and quarantine rows of a file commit together; a load killed half way
  leaves nothing and is redone by the next run.
- Bad rows go to ``raw.quarantine`` with a reason code (see :mod:`yibao.rowcheck`); bad files are
  recorded in the ledger as ``rejected`` with a reason, and the night goes on.
- ``patient_id_no`` is validated and replaced by an HMAC pseudonym before anything is written.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import logging
import re
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from . import codes, rowcheck
from .contract import EXTRACTS, REFERENCE, REFERENCE_KEYS, REFERENCE_TABLES, Column
from .landing import FileRejected, LandingFile, discover, discover_unknown, fingerprint, open_rows, read_manifest
from .pseudonym import Pseudonymiser
from .rowcheck import RowRejected

log = logging.getLogger("yibao.loader")

DOCTOR_PATTERN = re.compile(r"^D\d{12}$")


@dataclass
class FileResult:
    file: LandingFile
    status: str  # loaded | rejected | skipped
    load_id: int | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_held: int | None = 0  # data rows of a rejected file (None: could not be read far enough to count)
    reasons: dict[str, int] = field(default_factory=dict)
    reject_reason: str | None = None
    reject_detail: str | None = None
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0


@dataclass
class NightResult:
    through: dt.date
    files: list[FileResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # files of business dates before the night's folders that the walk recognised by their stat:
    # skipped like the ``skipped`` results in ``files``, but counted, not listed (a year is ~10⁵)
    skipped_earlier: int = 0
    # the earliest business-date folder the walk for late and changed files listed: None when it
    # listed every folder (a full walk; :func:`walk_window`), else the start of the late-file window
    walked_from: dt.date | None = None
    full_walk_due: dt.date | None = None  # with ``walked_from``: the night whose walk lists every folder
    walk_listed: int = 0  # files the walk of the earlier folders listed (known and new)
    walk_seconds: float | None = None  # how long that walk took beside the night's load; None: no walk

    @property
    def files_skipped(self) -> int:
        """Files already loaded (or rejected) as they are: the listed ``skipped`` and the counted earlier ones."""
        return sum(1 for f in self.files if f.status == "skipped") + self.skipped_earlier

    @property
    def load_ids(self) -> list[int]:
        """Ledger ids of this run's files, loaded and rejected (the night's batch for validation)."""
        return [f.load_id for f in self.files if f.status in ("loaded", "rejected") and f.load_id is not None]

    def summary_text(self) -> str:
        loaded = [f for f in self.files if f.status == "loaded"]
        rejected = [f for f in self.files if f.status == "rejected"]
        rows = sum(f.rows_read for f in loaded)
        held = sum(f.rows_held or 0 for f in rejected)
        secs = sum(f.seconds for f in self.files)
        lines = [
            f"Load through {self.through}: {len(loaded)} files loaded, {len(rejected)} rejected, "
            f"{self.files_skipped} already loaded (skipped)",
            f"  rows read {rows + held:,}  loaded {sum(f.rows_loaded for f in loaded):,}  "
            f"quarantined {sum(f.rows_quarantined for f in loaded):,}  "
            f"held back in rejected files {held:,}  in {secs:,.1f}s"
            + (f" ({rows / secs:,.0f} rows/s)" if secs else ""),
        ]
        if self.walked_from is not None:
            lines.append(f"  late files looked for in the folders from {self.walked_from} on; every folder "
                         f"on the night of {self.full_walk_due} (YIBAO_LATE_WINDOW_DAYS, YIBAO_FULL_WALK_DAYS)")
        reasons: dict[str, int] = {}
        for f in loaded:
            for r, n in f.reasons.items():
                reasons[r] = reasons.get(r, 0) + n
        if reasons:
            lines.append("  quarantined by reason: " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())))
        for f in rejected:
            n = "rows not countable" if f.rows_held is None else f"{f.rows_held:,} rows held back"
            lines.append(f"  REJECTED {f.file.relpath}: {f.reject_reason} ({f.reject_detail}); {n}")
        for w in self.warnings:
            lines.append(f"  note: {w}")
        return "\n".join(lines)


class _CopyStream(io.RawIOBase):
    """A read()-able byte stream over an iterator of byte chunks, for ``copy_expert``.

    Each read() hands over one whole chunk (psycopg2 sends whatever read() returns), so no bytes
    are copied between chunk and socket.
    """

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self.error: BaseException | None = None  # raised by the row iterator; psycopg2 would hide it

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return next(self._chunks)
        except StopIteration:
            return b""
        except BaseException as exc:
            self.error = exc
            raise


def natural_key(f: LandingFile) -> str | None:
    """The column that identifies a row of the file (with its hospital), or None (most reference files)."""
    return REFERENCE_KEYS.get(f.name) if f.is_reference else EXTRACTS[f.kind].key


def raw_table(f: LandingFile) -> str:
    """The raw table a file loads into (both rule libraries share raw.ref_audit_rules)."""
    return f"raw.ref_{REFERENCE_TABLES.get(f.name, f.name)}" if f.is_reference else f"raw.{f.kind}"


BATCH_ROWS = 2000  # rows per COPY chunk (about half a megabyte)
KEY_TRACK_LIMIT = 100_000  # natural keys held per file to rule out duplicates without asking the database


def _header_map(header: list[str], columns: tuple[Column, ...], f: LandingFile) -> tuple[list[int | None], list[tuple[int, str]]]:
    """Map contract columns to positions in the file header (canonical or Chinese names)."""
    names = [h.strip().lstrip("\ufeff").strip() for h in header]
    by_name: dict[str, int] = {}
    for i, name in enumerate(names):
        by_name.setdefault(name, i)
        by_name.setdefault(name.lower(), i)
    positions: list[int | None] = []
    used: set[int] = set()
    missing = []
    for col in columns:
        pos = by_name.get(col.name, by_name.get(col.zh))
        if pos is None:
            if col.required:
                missing.append(f"{col.name} ({col.zh})")
        else:
            used.add(pos)
        positions.append(pos)
    if missing:
        raise FileRejected("missing_column", f"required column(s) missing from the header: {', '.join(missing)}")
    extras = [(i, names[i]) for i in range(len(names)) if i not in used and names[i]]
    return positions, extras


class FileLoader:
    """Loads one landing file inside the caller's transaction.

    ``context`` (optional) carries the memo tables of the fast row path; :func:`load_files` shares
    one between the files of a night.
    """

    def __init__(self, conn, pseudonymise: Pseudonymiser, catalog: dict[str, str] | None,
                 hospitals: set[str] | None, today: dt.date, *, context: rowcheck.FastContext | None = None):
        self.conn = conn
        self.pseudonymise = pseudonymise
        self.catalog = catalog
        self.hospitals = hospitals
        self.today = today
        if context is None or context.catalog is not catalog:
            context = rowcheck.FastContext(pseudonymise, catalog, today, DOCTOR_PATTERN)
        self.context = context

    # -- rows ---------------------------------------------------------------------------------
    def _rows(self, f: LandingFile, columns: tuple[Column, ...], encoding: str | None, load_id: int,
              result: FileResult, quarantine: list[tuple], state: dict | None = None) -> Iterator[bytes]:
        """COPY data of the file in chunks; quarantined rows are appended to ``quarantine``.

        Each row goes through the file's compiled fast path (:meth:`rowcheck.FastContext.row_function`);
        a row it does not accept is checked by the general path (:meth:`_general_row`), which writes
        the clean row or finds the reason. ``state['maybe_duplicates']`` ends False when the natural
        keys of the rows loaded were seen to be distinct (counted while the file has at most
        ``KEY_TRACK_LIMIT`` rows, so memory stays flat), True when the database must look.
        """
        state = {} if state is None else state
        state["mismatched_hosp"] = 0
        state["maybe_duplicates"] = True
        with open_rows(f.path, encoding) as rows:
            try:
                header = next(rows)
            except StopIteration:
                raise FileRejected("empty_file", "no header row") from None
            positions, extras = _header_map(header, columns, f)
            ncols = len(header)
            is_ref = f.is_reference
            folder_hosp = f.hospital_code
            bdate = f.business_date.isoformat() if f.business_date else None
            keys: set[str] | None = set() if natural_key(f) else None
            general = self._general_row(f, columns, positions, extras, ncols, load_id, result, quarantine, state, keys)
            fast = None
            if not is_ref:
                fast = self.context.row_function(f.kind, columns, positions, ncols, extras, folder_hosp,
                                                 f"{load_id},{bdate},{f.relpath},", keys)
            numbered = enumerate(rows, start=1)
            islice = itertools.islice
            overflow = False
            while True:
                batch = list(islice(numbered, BATCH_ROWS))
                if not batch:
                    break
                lines = [fast(r, n) for n, r in batch] if fast is not None else [None] * len(batch)
                read = len(batch)
                if not all(lines):
                    for i, line in enumerate(lines):
                        if not line:
                            n, r = batch[i]
                            line = general(r, n)
                            if line is None:  # a blank line: not a row
                                read -= 1
                                line = ""
                            lines[i] = line
                result.rows_read += read
                result.rows_loaded = result.rows_read - result.rows_quarantined
                if keys is not None and (overflow or len(keys) > KEY_TRACK_LIMIT):
                    overflow = True
                    keys.clear()
                chunk = "".join(lines)
                if chunk:  # an empty read() would end the COPY
                    yield chunk.encode("utf-8")
        if keys is not None and not overflow and len(keys) == result.rows_loaded:
            state["maybe_duplicates"] = False
        state["loaded_keys"] = keys if keys is not None and not overflow else None
        if not is_ref and state["mismatched_hosp"] >= 2 and state["mismatched_hosp"] * 2 > result.rows_read:
            raise FileRejected(
                "wrong_hospital_folder",
                f"{state['mismatched_hosp']} of {result.rows_read} rows name another hospital than the folder's {folder_hosp}",
            )

    def _general_row(self, f: LandingFile, columns: tuple[Column, ...], positions: list[int | None],
                     extras: list[tuple[int, str]], ncols: int, load_id: int, result: FileResult,
                     quarantine: list[tuple], state: dict, keys: set[str] | None = None,
                     ) -> Callable[[list[str], int], str | None]:
        """The general row path: ``row(fields, n)`` → the COPY line, '' when quarantined, None for a blank line.

        Every contract check in order; the first that fails is the row's reason (:mod:`yibao.rowcheck`).
        """
        is_ref = f.is_reference
        extract = None if is_ref else f.kind
        key_col = natural_key(f)
        rules = is_ref and f.name in REFERENCE_KEYS  # an audit_rules file: each rule row is validated
        age_on = rowcheck.AGE_ON.get(extract)
        folder_hosp = f.hospital_code
        bdate = f.business_date.isoformat() if f.business_date else None
        plan = [(c.name, c.kind, c.required, p) for c, p in zip(columns, positions)]
        catalog = self.catalog
        pseudo = self.pseudonymise
        xlsx = f.path.name.endswith(".xlsx")
        buf = io.StringIO()
        write = csv.writer(buf, lineterminator="\n").writerow

        def row(fields: list[str], n: int) -> str | None:
            values: dict[str, str | None] = {}
            try:
                if len(fields) != ncols and not (len(fields) < ncols and xlsx):
                    if not any(x.strip() for x in fields):
                        return None
                    raise RowRejected("wrong_field_count", None, None, f"{len(fields)} fields, header has {ncols}")
                for name, kind, required, pos in plan:
                    raw = fields[pos].strip() if pos is not None and pos < len(fields) else ""
                    if raw == "":
                        if required:
                            raise RowRejected("missing_required", name, "", "required field is empty")
                        values[name] = None
                        continue
                    if kind == "id_number":
                        values[name] = raw
                        continue
                    values[name] = rowcheck.convert(kind, name, raw)
                sex = birth_year = age = None
                if rules:
                    rowcheck.check_audit_rule(values)
                elif not is_ref:
                    if values.get("quantity") is not None and Decimal(values["quantity"]) == 0:
                        raise RowRejected("zero_quantity", "quantity", values["quantity"], "quantity ≠ 0")
                    if values["hospital_code"] != folder_hosp:
                        state["mismatched_hosp"] += 1
                        raise RowRejected("hospital_mismatch", "hospital_code", values["hospital_code"], f"must equal the folder's hospital {folder_hosp}")
                    pid = values.get("patient_id_no")
                    if pid is not None:
                        reason = codes.validate_id_number(pid, self.today)
                        if reason:
                            values["patient_id_no"] = "hmac:" + pseudo(pid)
                            raise RowRejected(f"bad_id_{reason}", "patient_id_no", values["patient_id_no"], "18-char 身份证号, real birth date, GB 11643 check character")
                        sex, birth_year = codes.id_number_sex_birth_year(pid)
                        values["patient_id_no"] = pseudo(pid)
                    if extract == "purchase":
                        rowcheck.check_purchase(values, catalog)
                    elif extract == "usage":
                        rowcheck.check_usage(values, catalog, DOCTOR_PATTERN)
                    elif extract == "fee_detail":
                        age = rowcheck.check_fee_detail(values, pid[6:14] if pid is not None else None)
                    else:
                        rowcheck.check_claim(values)
                out = [load_id, bdate, f.relpath, n] if not is_ref else [load_id, n]
                for name, kind, _, _ in plan:
                    if kind == "id_number":
                        out += [values[name], sex, birth_year]
                        if age_on:
                            out.append(age)
                    else:
                        out.append(values[name])
                if extras:
                    out.append(json.dumps({h: fields[i] for i, h in extras if i < len(fields) and fields[i] != ""}, ensure_ascii=False))
                else:
                    out.append(None)
                buf.seek(0)
                buf.truncate()
                write(out)
                if keys is not None:
                    keys.add(values[key_col])
                return buf.getvalue()
            except RowRejected as rej:
                result.rows_quarantined += 1
                result.reasons[rej.reason] = result.reasons.get(rej.reason, 0) + 1
                row_data = {}
                for name, kind, _, pos in plan:
                    raw = fields[pos].strip() if pos is not None and pos < len(fields) else None
                    if kind == "id_number" and raw:
                        raw = pseudo(raw)
                    row_data[name] = raw
                value = rej.value
                if rej.column == "patient_id_no" and value and not value.startswith("hmac:") and len(value) != 64:
                    value = pseudo(value)
                natural_key = row_data.get(key_col) if key_col else None
                quarantine.append((load_id, f.kind, folder_hosp, bdate, f.relpath, n, natural_key, rej.column,
                                   value, rej.reason, rej.detail, json.dumps(row_data, ensure_ascii=False)))
                return ""

        return row

    # -- file -----------------------------------------------------------------------------------
    def load(self, f: LandingFile, sha: str, encoding: str | None) -> FileResult:
        result = FileResult(file=f, status="loaded")
        started = time.perf_counter()
        if not f.is_reference and self.hospitals is not None and f.hospital_code not in self.hospitals:
            raise FileRejected("unknown_hospital", f"{f.hospital_code} is not in reference/hospitals.csv")
        if not f.is_reference and codes.validate_hospital_code(f.hospital_code or ""):
            raise FileRejected("unknown_hospital", f"folder {f.hospital_code} is not a hospital code (H + 11 digits)")
        manifest = read_manifest(f) if not f.is_reference else None
        if manifest and manifest.get("sha256") and manifest["sha256"] != sha:
            raise FileRejected("manifest_mismatch", f"sha256 {sha[:12]}… differs from the manifest's {str(manifest['sha256'])[:12]}… (incomplete or altered file)")
        cur = self.conn.cursor()
        cur.execute(
            "insert into raw.load_ledger (file_kind, hospital_code, business_date, source_file, sha256, status)"
            " values (%s, %s, %s, %s, %s, 'loaded') returning load_id",
            (f.kind, f.hospital_code, f.business_date, f.relpath, sha),
        )
        load_id = cur.fetchone()[0]
        result.load_id = load_id
        table = raw_table(f)
        if f.is_reference:
            columns = REFERENCE[f.name]
            target = ["load_id", "source_row", *[c.name for c in columns], "extra"]
        else:
            columns = EXTRACTS[f.kind].columns
            target = ["load_id", "business_date", "source_file", "source_row"]
            for c in columns:
                target += ["patient_key", "patient_sex", "patient_birth_year"] if c.kind == "id_number" else [c.name]
                if c.kind == "id_number" and f.kind in rowcheck.AGE_ON:
                    target.append("patient_age_days")
            target.append("extra")
        quarantine: list[tuple] = []
        state: dict = {}
        stream = _CopyStream(self._rows(f, columns, encoding, load_id, result, quarantine, state))
        try:
            cur.copy_expert(f"copy {table} ({', '.join(target)}) from stdin with (format csv)", stream)
        except Exception:
            if stream.error is not None:
                raise stream.error from None
            raise
        if manifest and manifest.get("rows") is not None and int(manifest["rows"]) != result.rows_read:
            raise FileRejected("manifest_mismatch", f"{result.rows_read} data rows, the manifest says {manifest['rows']}")
        if not f.is_reference:
            # BRIN ranges written by COPY stay unsummarized (and so match every query) until summarised:
            # without this, every "where load_id = …" below would scan the whole table.
            cur.execute("select brin_summarize_new_values(%s::regclass)", (f"raw.{f.kind}_load_brin",))
        if natural_key(f):
            twins = self._quarantined_twins(cur, f, load_id, result, quarantine, state.get("loaded_keys"))
            if twins or state.get("maybe_duplicates", True):
                self._quarantine_duplicates(cur, f, load_id, result, twins, state.get("maybe_duplicates", True))
        if quarantine:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(quarantine)
            buf.seek(0)
            cur.copy_expert(
                "copy raw.quarantine (load_id, file_kind, hospital_code, business_date, source_file, source_row,"
                " natural_key, column_name, raw_value, reason_code, reason_detail, row_data) from stdin with (format csv)",
                buf,
            )
        result.seconds = time.perf_counter() - started
        cur.execute(
            "update raw.load_ledger set rows_read = %s, rows_loaded = %s, rows_quarantined = %s, seconds = %s"
            " where load_id = %s",
            (result.rows_read, result.rows_loaded, result.rows_quarantined, round(result.seconds, 3), load_id),
        )
        return result

    def _quarantined_twins(self, cur, f: LandingFile, load_id: int, result: FileResult, quarantine: list[tuple],
                           loaded_keys: set[str] | None) -> list[str]:
        """Duplicate detection over the file's refused rows too (DOMAIN §2): a natural key twice in one
        file quarantines every row holding it, valid or not, as ``duplicate_key`` (it takes precedence
        over a row's other defect, which its detail keeps).

        A refused row's natural key is its key field as the loader reads a valid row's key (trimmed),
        within the file's hospital, i.e. the folder's: a twin that names another hospital (itself a
        defect) is still the same line of this file. A row whose key field is empty has no key.
        Rewrites the refused rows in ``quarantine`` in place; returns the keys of those rows that
        also have a loaded twin (to be moved out of raw).
        """
        key_col = natural_key(f)
        counts: dict[str, int] = {}
        for t in quarantine:
            if t[6]:
                counts[t[6]] = counts.get(t[6], 0) + 1
        if not counts:
            return []
        if loaded_keys is not None:
            twins = [k for k in counts if k in loaded_keys]
        else:
            cur.execute(f"select distinct {key_col} from {raw_table(f)} where load_id = %s and {key_col} = any(%s)",
                        (load_id, list(counts)))
            twins = [r[0] for r in cur.fetchall()]
        dup = {k for k, n in counts.items() if n > 1} | set(twins)
        if not dup:
            return []
        for i, t in enumerate(quarantine):
            if t[6] in dup and t[9] != "duplicate_key":
                old_reason, old_column = t[9], t[7]
                detail = f"natural key appears more than once in this file (this row also: {old_reason}" + (
                    f" in {old_column})" if old_column else ")")
                quarantine[i] = t[:7] + (key_col, t[6], "duplicate_key", detail) + t[11:]
                result.reasons[old_reason] -= 1
                if not result.reasons[old_reason]:
                    del result.reasons[old_reason]
                result.reasons["duplicate_key"] = result.reasons.get("duplicate_key", 0) + 1
        return twins

    def _quarantine_duplicates(self, cur, f: LandingFile, load_id: int, result: FileResult,
                               twins: list[str] = (), among_loaded: bool = True) -> None:
        """A natural key twice in one file: the file cannot say which is right, so both rows go.

        ``twins``: keys of loaded rows whose twin was refused for another defect (they go too);
        ``among_loaded``: whether the loaded rows may hold a key twice (False when the loader saw
        every loaded key once).
        """
        key = natural_key(f)
        table = raw_table(f)
        # Two statements on purpose: fresh rows have no statistics, and a join of the aggregate with the
        # table would be planned as a nested loop that re-aggregates for every row. Both read the
        # file's rows through the BRIN index on load_id: without statistics the planner may prefer a
        # sequential scan of the table's whole history.
        cur.execute("select current_setting('enable_seqscan')")
        seqscan = cur.fetchone()[0]
        cur.execute("set local enable_seqscan = off")
        try:
            self._move_duplicates(cur, f, key, table, load_id, result, list(twins), among_loaded)
        finally:
            cur.execute("select set_config('enable_seqscan', %s, true)", (seqscan,))

    def _move_duplicates(self, cur, f: LandingFile, key: str, table: str, load_id: int, result: FileResult,
                         twins: list[str], among_loaded: bool) -> None:
        dups = list(twins)
        ref = f.is_reference  # a reference table: no hospital, business date nor source file of its own
        if among_loaded:
            cur.execute(
                f"select {key} from {table} where load_id = %s group by {'' if ref else 'hospital_code, '}{key}"
                " having count(*) > 1",
                (load_id,),
            )
            seen = set(twins)
            dups += [r[0] for r in cur.fetchall() if r[0] not in seen]
        if not dups:
            return
        cur.execute(
            f"""
            with moved as (
                delete from {table} t
                where t.load_id = %(load_id)s and t.{key} = any(%(dups)s)
                returning t.*
            )
            insert into raw.quarantine (load_id, file_kind, hospital_code, business_date, source_file, source_row,
                                        natural_key, column_name, raw_value, reason_code, reason_detail, row_data)
            select load_id, %(kind)s, {'null' if ref else 'hospital_code'}, {'null::date' if ref else 'business_date'},
                   {'%(relpath)s' if ref else 'source_file'}, source_row, {key}, %(key)s, {key},
                   'duplicate_key', 'natural key appears more than once in this file',
                   to_jsonb(moved) - 'load_id' - 'loaded_at'
            from moved
            """,
            {"load_id": load_id, "kind": f.kind, "key": key, "dups": dups, "relpath": f.relpath},
        )
        moved = cur.rowcount
        if moved > 0:
            result.rows_loaded -= moved
            result.rows_quarantined += moved
            result.reasons["duplicate_key"] = result.reasons.get("duplicate_key", 0) + moved


def _latest_reference(conn) -> tuple[dict[str, str] | None, set[str] | None]:
    with conn.cursor() as cur:
        cur.execute(
            "select consumable_code, status from raw.ref_consumable_catalog"
            " where load_id = (select max(load_id) from raw.ref_consumable_catalog)"
        )
        rows = cur.fetchall()
        catalog = {code: status for code, status in rows} if rows else None
        cur.execute(
            "select hospital_code from raw.ref_hospitals where load_id = (select max(load_id) from raw.ref_hospitals)"
        )
        hrows = cur.fetchall()
        hospitals = {h for (h,) in hrows} if hrows else None
    return catalog, hospitals


def _safe_manifest(f: LandingFile) -> dict | None:
    try:
        return read_manifest(f)
    except FileRejected:
        return None


def _already_loaded(conn, f: LandingFile, sha: str) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            "select 1 from raw.load_ledger where file_kind = %s and coalesce(hospital_code, '') = coalesce(%s, '')"
            " and coalesce(business_date, date '0001-01-01') = coalesce(%s::date, date '0001-01-01') and sha256 = %s",
            (f.kind, f.hospital_code, f.business_date, sha),
        )
        return cur.fetchone() is not None


def count_data_rows(f: LandingFile, encoding: str | None) -> int | None:
    """Data rows a file holds, counted as the loader reads rows (a blank line is not a row), for a
    file rejected whole: they are held back, neither loaded nor quarantined. Text that does not
    decode is read with replacement characters, a truncated file up to where it breaks. None when
    the file cannot be read at all (e.g. a workbook that does not open)."""
    from .landing import _csv_rows, _open_bytes

    def count(rows: Iterator[list[str]]) -> int:
        n = 0
        try:
            header = next(rows, None)
            if header is None:
                return 0
            for r in rows:
                if len(r) == len(header) or any(x.strip() for x in r):
                    n += 1
        except (OSError, EOFError, UnicodeDecodeError, csv.Error, zlib.error):
            pass  # truncated or corrupt: the rows read so far
        return n

    try:
        if f.path.name.endswith(".xlsx"):
            with open_rows(f.path, None) as rows:
                return count(rows)
        with _open_bytes(f.path) as raw:
            text = io.TextIOWrapper(raw, encoding=encoding or "utf-8-sig", errors="replace", newline="")
            return count(_csv_rows(text))
    except (FileRejected, OSError, EOFError, zlib.error):
        return None
    except Exception:  # noqa: BLE001 - a workbook library error: not countable
        if f.path.name.endswith(".xlsx"):
            return None
        raise


def _record_reject(conn, f: LandingFile, sha: str, rej: FileRejected, result: FileResult,
                   encoding: str | None = None) -> None:
    result.rows_held = count_data_rows(f, encoding)
    result.rows_read = result.rows_held or 0
    result.rows_loaded = result.rows_quarantined = 0
    with conn.cursor() as cur:
        cur.execute(
            "insert into raw.load_ledger (file_kind, hospital_code, business_date, source_file, sha256, status,"
            " reject_reason, reject_detail, rows_read, rows_held, seconds)"
            " values (%s, %s, %s, %s, %s, 'rejected', %s, %s, %s, %s, %s) returning load_id",
            (f.kind, f.hospital_code, f.business_date, f.relpath, sha, rej.reason, rej.detail, result.rows_read,
             result.rows_held, round(result.seconds, 3)),
        )
        result.load_id = cur.fetchone()[0]
    conn.commit()


def _load_one(conn, f: LandingFile, pseudonymise, catalog, hospitals, today: dt.date,
              context: rowcheck.FastContext | None) -> tuple[FileResult, rowcheck.FastContext | None]:
    """One file: fingerprint, ledger look-up, load in its own transaction (or record the rejection)."""
    started = time.perf_counter()
    stat = _stat_for_ledger(f.path)  # before the bytes are read: a later change shows as another stat
    try:
        sha, encoding = fingerprint(f.path)
    except FileRejected as rej:
        sha = rej.sha
        manifest = None if f.is_reference else _safe_manifest(f)
        if manifest and manifest.get("sha256") and manifest["sha256"] != sha:
            rej = FileRejected("manifest_mismatch", f"sha256 {sha[:12]}… differs from the manifest's "
                               f"{str(manifest['sha256'])[:12]}… (incomplete or altered file; {rej.detail})", sha)
        result = FileResult(file=f, status="rejected", reject_reason=rej.reason, reject_detail=rej.detail)
        if not _already_loaded(conn, f, sha):
            _record_reject(conn, f, sha, rej, result, "gb18030")
        else:
            result.status = "skipped"
        _remember_stat(conn, f, sha, stat)
        return result, context
    if _already_loaded(conn, f, sha):
        _remember_stat(conn, f, sha, stat)  # e.g. touched, same bytes: recognised by its stat next time
        return FileResult(file=f, status="skipped"), context
    loader = FileLoader(conn, pseudonymise, catalog, hospitals, today, context=context)
    try:
        result = loader.load(f, sha, encoding)
        _remember_stat(conn, f, sha, stat, commit=False)  # in the file's transaction
        conn.commit()
    except FileRejected as rej:
        conn.rollback()
        result = FileResult(file=f, status="rejected", reject_reason=rej.reason, reject_detail=rej.detail,
                            seconds=time.perf_counter() - started)
        _record_reject(conn, f, sha, rej, result, encoding)
        _remember_stat(conn, f, sha, stat)
    except BaseException:
        conn.rollback()
        raise
    return result, loader.context


# --- recognising known files by their stat ------------------------------------------------------------

RACY_NS = 2_000_000_000
"""A file modified less than this before it was stat'ed is not remembered by its stat: a write in the
same mtime tick (coarse on some file systems, or a clock a little apart on a network share) could
change its bytes and keep size and mtime. It is hashed again next run, when it is old enough."""


def _stat_for_ledger(path: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of the file as it is now, or None when it is too fresh to be trusted (RACY_NS)."""
    import os

    now = time.time_ns()
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_mtime_ns > now - RACY_NS:
        return None
    return st.st_size, st.st_mtime_ns


def _remember_stat(conn, f: LandingFile, sha: str | None, stat: tuple[int, int] | None, *, commit: bool = True) -> None:
    """Record the stat the file had before it was read on its ledger row (identity + sha256).

    Nothing is recorded when the stat was not trustworthy or the file changed while it was read (the
    next run then hashes it again), so a stat in the ledger always belongs to the bytes of its row.
    """
    if stat is None or sha is None or _stat_for_ledger(f.path) != stat:
        return
    with conn.cursor() as cur:
        cur.execute(
            "update raw.load_ledger set file_size = %s, file_mtime_ns = %s"
            " where file_kind = %s and coalesce(hospital_code, '') = coalesce(%s, '')"
            " and coalesce(business_date, date '0001-01-01') = coalesce(%s::date, date '0001-01-01') and sha256 = %s"
            " and source_file = %s",
            (*stat, f.kind, f.hospital_code, f.business_date, sha, f.relpath),
        )
    if commit:
        conn.commit()


def known_stats(conn, files: list[LandingFile]) -> set[tuple[str, int, int]]:
    """(source_file, size, mtime_ns) of every ledger row (loaded or rejected) in the files' date range: one query."""
    days = [f.business_date for f in files if f.business_date is not None]
    return known_stats_between(conn, min(days, default=None), max(days, default=None))


def known_stats_between(conn, first: dt.date | None, last: dt.date | None) -> set[tuple[str, int, int]]:
    """(source_file, size, mtime_ns) of every ledger row (loaded or rejected) of a reference file or
    of a business date in [first, last] (either end open when None; both None: reference rows only,
    as for a list of reference files alone): one query."""
    dated = "false" if first is None and last is None else (
        "business_date >= coalesce(%(first)s, '-infinity'::date) and business_date <= coalesce(%(last)s, 'infinity'::date)")
    with conn.cursor() as cur:
        cur.execute(
            "select source_file, file_size, file_mtime_ns from raw.load_ledger where file_mtime_ns is not null"
            f" and (business_date is null or ({dated}))",
            {"first": first, "last": last},
        )
        return set(cur.fetchall())


def load_files(
    conn,
    files: Iterable[LandingFile],
    pseudonymise: Pseudonymiser,
    *,
    today: dt.date | None = None,
    progress: Callable[[FileResult], None] | None = None,
    workers: int = 1,
    url: str | None = None,
) -> list[FileResult]:
    """Load files in order, after setting aside the files the ledger already knows by their stat.

    A file whose (path, size, mtime) is on a ledger row (loaded or rejected) is ``skipped`` without
    being opened: the known stats come in one query. Any other file is hashed; its bytes decide, as
    before (see :func:`_load_one`). Results come back in the order of ``files``.
    """
    files = list(files)
    known = known_stats(conn, files)
    results: list[FileResult | None] = [None] * len(files)
    todo: list[int] = []
    for i, f in enumerate(files):
        if f.stat_key in known:  # (a file without a stat has no key: never known)
            results[i] = FileResult(file=f, status="skipped")
            if progress:
                progress(results[i])
        else:
            todo.append(i)
    if todo:
        done = _load_in_order(conn, [files[i] for i in todo], pseudonymise, today=today, progress=progress,
                              workers=workers, url=url)
        for i, result in zip(todo, done):
            results[i] = result
    return results  # type: ignore[return-value]


def _load_in_order(
    conn,
    files: list[LandingFile],
    pseudonymise: Pseudonymiser,
    *,
    today: dt.date | None = None,
    progress: Callable[[FileResult], None] | None = None,
    workers: int = 1,
    url: str | None = None,
) -> list[FileResult]:
    """Load files in order; reference data first so extracts are checked against the latest catalog.

    With ``workers`` > 1 and the database ``url`` (and a :class:`Pseudonymiser`), a run of extract
    files big enough to pay for it (``PARALLEL_MIN_BYTES``) is loaded by that many worker processes,
    each with its own connection: one hospital's files stay in one worker, in order, so a hospital's
    load ids still grow with the business date. Results come back in the order of ``files``.
    """
    today = today or dt.date.today()
    files = list(files)
    results: list[FileResult | None] = [None] * len(files)
    catalog = hospitals = None
    reference_checked = False
    context: rowcheck.FastContext | None = None
    parallel = workers > 1 and url is not None and isinstance(getattr(pseudonymise, "_key", None), bytes)
    i = 0
    while i < len(files):
        f = files[i]
        if not f.is_reference and not reference_checked:
            catalog, hospitals = _latest_reference(conn)
            if catalog is None or hospitals is None:
                raise RuntimeError(
                    "reference data missing: load <landing>/reference/hospitals.csv and consumable_catalog.csv "
                    "before any extract (the loader checks hospitals and consumable codes against them)"
                )
            reference_checked = True
        if parallel and not f.is_reference:
            run = i
            while run < len(files) and not files[run].is_reference:
                run += 1
            batch = list(range(i, run))
            if len({files[j].hospital_code for j in batch}) > 1 and _size(files[j] for j in batch) >= PARALLEL_MIN_BYTES:
                conn.commit()  # end the reference read: this connection waits while the workers load
                _load_parallel(files, batch, results, pseudonymise, catalog, hospitals, today, url, workers, progress)
                i = run
                continue
        result, context = _load_one(conn, f, pseudonymise, catalog, hospitals, today, context)
        if f.is_reference and result.status == "loaded":
            reference_checked = False  # re-read the catalog after a new reference version
        results[i] = result
        if progress:
            progress(result)
        i += 1
    return results  # type: ignore[return-value]


# --- parallel loading -------------------------------------------------------------------------------

PARALLEL_MIN_BYTES = 16 << 20  # below this a night loads faster in one process than starting workers


def default_workers() -> int:
    """Worker processes for :func:`load_landing`: ``YIBAO_LOAD_WORKERS``, else the CPU count (at most 8)."""
    import os

    env = os.environ.get("YIBAO_LOAD_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, min(os.cpu_count() or 1, 8))


LATE_WINDOW_DAYS = 92  # the late-file window of an ordinary night: a quarter of business dates
FULL_WALK_DAYS = 7  # a night lists every folder when the last full walk is this many nights old


def _days_setting(name: str, default: int) -> int:
    import os

    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        days = int(value)
    except ValueError:
        days = -1
    if days < 0:
        raise ValueError(f"{name} must be a whole number of days ≥ 0, not {value!r}")
    return days


def walk_window(conn, through: dt.date, newest: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """Which business-date folders before ``newest`` tonight's walk for late and changed files lists:
    (the first folder's date, the night a full walk is due), or (None, None) for every folder.

    A year of a city's landing zone is ~10⁵ files, and listing them costs ~0.8 s of CPU a year of
    history (5.7-6.7 s for five years, docs/loader-performance.md): a night that listed every folder
    would cost more every year. So an ordinary night lists the folders of the last
    ``YIBAO_LATE_WINDOW_DAYS`` (92) business dates, counting the newest date the ledger holds, and a
    night lists every folder when the last such full walk (``raw.landing_walk``) is
    ``YIBAO_FULL_WALK_DAYS`` (7) or more business dates before it, or there has been none: a file
    delivered late into a folder older than the window loads on that night instead. A night before
    the newest date (a past night run again) lists every folder. Either setting at 0 lists every
    folder every night."""
    window = _days_setting("YIBAO_LATE_WINDOW_DAYS", LATE_WINDOW_DAYS)
    every = _days_setting("YIBAO_FULL_WALK_DAYS", FULL_WALK_DAYS)
    if window == 0 or every == 0:
        return None, None
    with conn.cursor() as cur:
        cur.execute("select max(through) from raw.landing_walk where walked_from is null")
        last_full = cur.fetchone()[0]
    if last_full is None or (through - last_full).days >= every or through < newest:
        return None, None  # (a night before the newest is a re-run by hand: it looks everywhere)
    return newest - dt.timedelta(days=window - 1), last_full + dt.timedelta(days=every)


def record_walk(conn, night: NightResult, walked_from: dt.date | None, seconds: float) -> None:
    """One row in ``raw.landing_walk`` for a load step whose walk finished (``walked_from`` None: every
    folder up to the night was listed, which :func:`walk_window` counts as a full walk)."""
    with conn.cursor() as cur:
        cur.execute(
            "insert into raw.landing_walk (through, walked_from, files_known, files_new, seconds)"
            " values (%s, %s, %s, %s, %s)",
            (night.through, walked_from, night.files_skipped,
             sum(1 for f in night.files if f.status != "skipped"), round(seconds, 3)),
        )
    conn.commit()


def _size(files: Iterable[LandingFile]) -> int:
    total = 0
    for f in files:
        if f.size is not None:
            total += f.size
            continue
        try:
            total += f.path.stat().st_size
        except OSError:
            pass
    return total


def _child_env() -> dict[str, str]:
    """The environment of the loader's child processes: this one's, with this package importable
    (first on ``PYTHONPATH``) whether or not it is installed."""
    import os

    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _load_parallel(files: list[LandingFile], batch: list[int], results: list, pseudonymise, catalog, hospitals,
                   today: dt.date, url: str, workers: int, progress) -> None:
    """Load ``files[j] for j in batch`` (extracts only) with worker processes; fill ``results[j]``."""
    import queue
    import subprocess
    import threading

    groups: dict[str, list[int]] = {}
    for j in batch:
        groups.setdefault(files[j].hospital_code or "", []).append(j)
    # biggest hospitals first, so that the last jobs to start are short ones
    jobs = sorted(groups.values(), key=lambda g: -_size(files[j] for j in g))
    n = min(workers, len(jobs))
    env = _child_env()
    init = {
        "url": url,
        "key": pseudonymise._key.hex(),
        "today": today.isoformat(),
        "catalog": catalog,
        "hospitals": sorted(hospitals) if hospitals is not None else None,
    }
    inbox: queue.Queue = queue.Queue()
    procs: list[subprocess.Popen] = []

    def pump(w: int, stream) -> None:
        for line in stream:
            inbox.put((w, json.loads(line)))
        inbox.put((w, None))

    def send(w: int, message: dict) -> None:
        procs[w].stdin.write(json.dumps(message, ensure_ascii=False) + "\n")
        procs[w].stdin.flush()

    failure: str | None = None
    try:
        for w in range(n):
            procs.append(subprocess.Popen(
                [sys.executable, "-c", "from yibao.loader import _worker_main; _worker_main()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, encoding="utf-8",
            ))
            threading.Thread(target=pump, args=(w, procs[w].stdout), daemon=True).start()
            send(w, init)
        running = n
        while running:
            w, msg = inbox.get()
            if msg is None:
                running -= 1
                if failure is None and procs[w].wait() != 0:
                    failure = f"loader worker {w} ended unexpectedly (exit code {procs[w].returncode})"
                continue
            if "result" in msg:
                r = msg["result"]
                j = r.pop("index")
                result = FileResult(file=files[j], **r)
                results[j] = result
                if progress:
                    progress(result)
            elif "error" in msg:
                failure = failure or msg["error"]
            if "ready" in msg or "done" in msg:
                if jobs and failure is None:
                    send(w, {"job": [[j, str(files[j].path), files[j].relpath, files[j].kind, files[j].hospital_code,
                                      files[j].business_date.isoformat()] for j in jobs.pop(0)]})
                else:
                    send(w, {"stop": True})
            if failure is not None:
                for p in procs:  # stop the others: their current file rolls back, the next run redoes it
                    if p.poll() is None:
                        p.terminate()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    if failure is not None:
        raise RuntimeError(f"parallel load failed: {failure}")


def _worker_main() -> None:
    """A loader worker process: jobs (one hospital's files) in on stdin, results out on stdout.

    It ends itself when its parent goes away (stdin closes without a 'stop'), so a killed load never
    leaves a worker committing files behind it.
    """
    import os
    import queue
    import threading
    import traceback

    import psycopg2

    from .pseudonym import Pseudonymiser as _P

    out = sys.stdout
    inbox: queue.Queue = queue.Queue()

    def watch() -> None:
        for line in sys.stdin:
            msg = json.loads(line)
            inbox.put(msg)
            if msg.get("stop"):
                return
        os._exit(3)  # the parent is gone: drop the connection, the open transaction rolls back

    threading.Thread(target=watch, daemon=True).start()

    def say(message: dict) -> None:
        out.write(json.dumps(message, ensure_ascii=False) + "\n")
        out.flush()

    try:
        init = inbox.get()
        conn = psycopg2.connect(init["url"])
        pseudonymise = _P(bytes.fromhex(init["key"]))
        today = dt.date.fromisoformat(init["today"])
        catalog = init["catalog"]
        hospitals = set(init["hospitals"]) if init["hospitals"] is not None else None
        context = None
        say({"ready": True})
        while True:
            msg = inbox.get()
            if msg.get("stop"):
                break
            for j, path, relpath, kind, hosp, bdate in msg["job"]:
                f = LandingFile(Path(path), relpath, kind, hosp, dt.date.fromisoformat(bdate))
                result, context = _load_one(conn, f, pseudonymise, catalog, hospitals, today, context)
                say({"result": {"index": j, "status": result.status, "load_id": result.load_id,
                                "rows_read": result.rows_read, "rows_loaded": result.rows_loaded,
                                "rows_quarantined": result.rows_quarantined, "rows_held": result.rows_held,
                                "reasons": result.reasons,
                                "reject_reason": result.reject_reason, "reject_detail": result.reject_detail,
                                "seconds": result.seconds}})
            say({"done": True})
        conn.close()
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        say({"error": traceback.format_exc()})
        sys.exit(1)


def load_landing(
    landing: Path,
    through: dt.date,
    *,
    since: dt.date | None = None,
    url: str | None = None,
    pseudonymise: Pseudonymiser | None = None,
    show_progress: bool | None = None,
    workers: int | None = None,
    full_walk: bool = False,
) -> NightResult:
    """Load every not-yet-loaded landing file with business date ≤ ``through`` (≥ ``since``).

    ``workers``: processes for a big night's extracts (default :func:`default_workers`; 1 = this
    process only). Small nights always load in this process.

    The night's folders first, the walk of the others beside them: the folders dated from the
    newest business date in the ledger on (and the reference files) are listed and loaded at once,
    while a process of its own (waited on by a thread) lists the earlier folders (a year of them is
    ~10⁵ files, one ``stat`` each: ~0.75 s of CPU) and counts the files the ledger knows by their stat
    (``NightResult.skipped_earlier``: not listed in ``files``); their late or changed files load
    after the night's. Without ``since``, an ordinary night lists only the folders of the late-file
    window and every few nights one lists them all (:func:`walk_window`; ``full_walk`` tonight), so
    the walk does not grow with the years of history; each step's walk is a row of
    ``raw.landing_walk``. The order of loading does not decide which version of a record wins
    (business date first, then load id; see ``macros/latest_version.sql``), so a late file loads
    the same either way.
    """
    from concurrent.futures import ThreadPoolExecutor

    from . import db, pg
    from .pseudonym import load_key

    pseudonymise = pseudonymise or Pseudonymiser(load_key())
    if not Path(landing).is_dir():
        raise FileNotFoundError(f"landing directory {landing} does not exist")
    night = NightResult(through=through)
    conn = db.connect() if url is None else __import__("psycopg2").connect(url)
    bar = None
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="walk")
    earlier = None

    def progress(r: FileResult) -> None:
        if bar is not None:
            bar.update(1)
            if r.status != "skipped":
                bar.set_postfix_str(f"{r.file.relpath} {r.status}")
        if r.status == "loaded":
            log.info("loaded %s: %d rows (%d quarantined) in %.2fs, %.0f rows/s", r.file.relpath, r.rows_read,
                     r.rows_quarantined, r.seconds, r.rows_per_second)
        elif r.status == "rejected":
            log.warning("rejected %s: %s (%s)", r.file.relpath, r.reject_reason, r.reject_detail)

    started = time.perf_counter()
    try:
        newest = newest_ledger_date(conn)
        split = newest is not None and (since is None or since < newest)
        recent = newest if split else since
        walked_from = since
        if split and since is None and not full_walk:
            walked_from, night.full_walk_due = walk_window(conn, through, newest)
            night.walked_from = walked_from
        conn.commit()
        if split and walked_from is not None and walked_from >= newest:  # a window of the newest date alone
            split = False
        if split:  # the folders before the newest loaded date: walked beside the load
            earlier = pool.submit(_walk_earlier, landing, min(through, newest - dt.timedelta(days=1)), walked_from,
                                  url or pg.url())
        files, warnings = discover(landing, through, recent)
        if show_progress:
            from tqdm import tqdm

            bar = tqdm(total=len(files), unit="file", desc="loading", file=sys.stderr)
        n_workers = default_workers() if workers is None else workers
        night.files = load_files(conn, files, pseudonymise, progress=progress, workers=n_workers, url=url or pg.url())
        if earlier is not None:
            known, more, more_warnings, seconds = earlier.result()
            span = (f"the folders from {walked_from} to {newest - dt.timedelta(days=1)}" if walked_from
                    else f"every folder before {newest}")
            log.info("listed %d files in %s in %.2f s, beside the night's load: %d known to the ledger by their stat",
                     known + len(more), span, seconds, known)
            if bar is not None:
                bar.total += known + len(more)
                bar.update(known)
            night.skipped_earlier, night.walk_listed, night.walk_seconds = known, known + len(more), seconds
            if more:  # (the walk has already set the known files aside: no second look-up for none)
                night.files += load_files(conn, more, pseudonymise, progress=progress, workers=n_workers,
                                          url=url or pg.url())
            warnings += more_warnings
        night.warnings = sorted(set(warnings))  # the landing root's own notes come from both walks
        record_walk(conn, night, walked_from, time.perf_counter() - started)
    finally:
        pool.shutdown(wait=True)  # a failed night's walk ends before the step does
        conn.close()
        if bar is not None:
            bar.close()
    return night


def newest_ledger_date(conn) -> dt.date | None:
    """The newest business date of any extract file in the ledger (loaded or rejected)."""
    with conn.cursor() as cur:
        cur.execute("select max(business_date) from raw.load_ledger")
        return cur.fetchone()[0]


def _walk_earlier(landing: Path, through: dt.date, since: dt.date | None, url: str):
    """The walk beside the night's load, in a process of its own (:func:`_walk_main`): the ledger's
    stats of the earlier folders' dates (its own connection), then those folders' files, of which
    the known ones are only counted (:func:`~yibao.landing.discover_unknown`), so that the load step
    is left with only what is new among them. Returns (how many were known, the other files in load
    order, warnings, seconds). The night's load writes ledger rows of later business dates only, so
    it cannot change what this finds known.

    A process, not a thread: a small night (under ``PARALLEL_MIN_BYTES``) loads in this process,
    and a thread would share its interpreter lock with that load. On the 30 M-claim year the walk
    took 2.3-2.9 s as a thread beside the night's load (0.74 s of CPU alone) and 0.9 s as a
    process; the load step then costs what it costs without a walk (docs/loader-performance.md).
    """
    import subprocess

    started = time.perf_counter()
    request = {"landing": str(landing), "through": through.isoformat(),
               "since": since.isoformat() if since else None, "url": url}
    proc = subprocess.run(  # the URL on stdin, not in the arguments a process listing shows
        [sys.executable, "-c", "from yibao.loader import _walk_main; _walk_main()"],
        input=json.dumps(request), capture_output=True, env=_child_env(), text=True, encoding="utf-8",
    )
    try:
        answer = json.loads(proc.stdout or "{}")
    except ValueError:
        answer = {}
    if proc.returncode != 0 or "known" not in answer:
        detail = answer.get("error") or proc.stderr.strip() or f"exit code {proc.returncode}"
        raise RuntimeError(f"the walk of the folders before {through + dt.timedelta(days=1)} failed: {detail}")
    new = [LandingFile(path, rel, kind, hosp, dt.date.fromisoformat(day), size, mtime)
           for path, rel, kind, hosp, day, size, mtime in answer["new"]]
    return answer["known"], new, answer["warnings"], time.perf_counter() - started


def _walk_main() -> None:
    """The walk's process: a request on stdin, one answer on stdout (the known files' count, the
    other files, the warnings), or an error and exit code 1. It only lists and reads the ledger."""
    import traceback

    import psycopg2

    try:
        request = json.loads(sys.stdin.read())
        through = dt.date.fromisoformat(request["through"])
        since = dt.date.fromisoformat(request["since"]) if request["since"] else None
        conn = psycopg2.connect(request["url"])
        try:
            known = known_stats_between(conn, since, through)
        finally:
            conn.close()
        new, n_known, warnings = discover_unknown(Path(request["landing"]), through, since, known)
        answer = {"known": n_known, "warnings": warnings,
                  "new": [[str(f.path), f.relpath, f.kind, f.hospital_code, f.business_date.isoformat(), f.size,
                           f.mtime_ns] for f in new]}
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        sys.stdout.write(json.dumps({"error": traceback.format_exc()}))
        sys.exit(1)
    sys.stdout.write(json.dumps(answer))  # ASCII: a file name that is not UTF-8 stays escaped
