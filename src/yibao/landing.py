"""The landing zone: discovering files and reading them as rows of text.

Layout (docs/extract-contract.md)::

    <landing>/<YYYYMMDD>/<hospital_code>/purchase.csv | usage.csv | claim.csv  (.xlsx; .csv may be .gz)
                                         | fee_detail.csv  (optional fourth extract)
    <landing>/<YYYYMMDD>/<hospital_code>/_manifest.json   (optional)
    <landing>/reference/<name>.csv

Reading is streaming: one pass computes the sha256 and detects the encoding (UTF-8 with or without
BOM, else GB18030, which is a superset of GBK), a second pass yields rows. Nothing holds a whole file.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import gzip
import hashlib
import io
import itertools
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from .contract import EXTRACTS, PACKAGED_REFERENCE, REFERENCE

PACKAGE_DATA = Path(__file__).resolve().parent / "data"
PACKAGED_PREFIX = "package:yibao/data/"  # source_file of a packaged reference file in the ledger
DATE_DIR = re.compile(r"^\d{8}$")
SUFFIXES = (".csv", ".csv.gz", ".xlsx")


class FileRejected(Exception):
    """A whole file cannot be loaded. ``reason`` is a stable code, ``detail`` says what was expected."""

    def __init__(self, reason: str, detail: str, sha: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.sha = sha


class LandingFile:
    """One landing file: where it is, what it is, and its stat as seen by :func:`discover`.

    Immutable and compared by value, like a frozen dataclass. ``path`` may be given as a string: it
    becomes a :class:`~pathlib.Path` when first asked for (a year of files is ~10⁵ of them, and a
    night with nothing new never needs their paths).
    """

    __slots__ = ("_path", "relpath", "kind", "hospital_code", "business_date", "size", "mtime_ns")

    def __init__(self, path: Path | str, relpath: str, kind: str, hospital_code: str | None,
                 business_date: dt.date | None, size: int | None = None, mtime_ns: int | None = None):
        init = object.__setattr__
        init(self, "_path", path)
        init(self, "relpath", relpath)
        init(self, "kind", kind)  # purchase | usage | claim | fee_detail | reference:<name>
        init(self, "hospital_code", hospital_code)
        init(self, "business_date", business_date)
        init(self, "size", size)  # st_size and st_mtime_ns as seen by discover() (None: not stat'ed)
        init(self, "mtime_ns", mtime_ns)

    def __setattr__(self, name, value):
        raise AttributeError(f"LandingFile is immutable: cannot set {name}")

    def _key(self) -> tuple:
        return (str(self._path), self.relpath, self.kind, self.hospital_code, self.business_date, self.size,
                self.mtime_ns)

    def __eq__(self, other) -> bool:
        return isinstance(other, LandingFile) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"LandingFile(path={str(self._path)!r}, relpath={self.relpath!r}, kind={self.kind!r}, "
                f"hospital_code={self.hospital_code!r}, business_date={self.business_date!r}, size={self.size!r}, "
                f"mtime_ns={self.mtime_ns!r})")

    @property
    def path(self) -> Path:
        path = self._path
        if not isinstance(path, Path):
            path = Path(path)
            object.__setattr__(self, "_path", path)
        return path

    @property
    def is_reference(self) -> bool:
        return self.kind.startswith("reference:")

    @property
    def name(self) -> str:
        return self.kind.split(":", 1)[-1]

    @property
    def manifest(self) -> Path:
        return self.path.parent / "_manifest.json"

    @property
    def stat_key(self) -> tuple[str, int, int] | None:
        """(relpath, size, mtime_ns): what the ledger remembers to recognise the file without reading it."""
        if self.size is None or self.mtime_ns is None:
            return None
        return (self.relpath, self.size, self.mtime_ns)


def _stem(name: str) -> str | None:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


EXTRACT_NAMES = {f"{kind}{suffix}": kind for kind in EXTRACTS for suffix in SUFFIXES}  # claim.csv.gz → claim


def _entries(path) -> list[os.DirEntry]:
    with os.scandir(path) as it:
        return list(it)  # in no particular order: discover() sorts the files once


def _extract_entries(landing: Path, through: dt.date, since: dt.date | None, warnings: list[str]):
    """The extract files of the business-date folders in [since, through], as (directory entry,
    relpath, kind, hospital, business date), in no particular order; what does not fit the layout
    goes to ``warnings``. One ``scandir`` per folder, the file type from the directory entry."""
    for day_entry in _entries(landing):
        name = day_entry.name
        if not day_entry.is_dir() or name == "reference" or name.startswith(("_", ".")):
            continue
        if not DATE_DIR.match(name):
            warnings.append(f"ignored {name}/: not a YYYYMMDD business-date folder")
            continue
        try:
            day = dt.datetime.strptime(name, "%Y%m%d").date()
        except ValueError:
            warnings.append(f"ignored {name}/: not a real date")
            continue
        if day > through or (since and day < since):
            continue
        for hosp_entry in _entries(day_entry.path):
            if not hosp_entry.is_dir():
                continue
            hosp = hosp_entry.name
            for entry in _entries(hosp_entry.path):
                fname = entry.name
                if fname == "_manifest.json":
                    continue
                stem = EXTRACT_NAMES.get(fname)
                if stem is not None:
                    yield entry, f"{name}/{hosp}/{fname}", stem, hosp, day
                else:
                    warnings.append(
                        f"ignored {name}/{hosp}/{fname}: not purchase/usage/claim/fee_detail .csv/.csv.gz/.xlsx")


def _stat(entry: os.DirEntry, rel: str, warnings: list[str]) -> os.stat_result | None:
    """The entry's stat, or None with a warning when it is gone since its folder was listed (or is
    a link to nothing)."""
    try:
        return entry.stat()
    except FileNotFoundError:
        warnings.append(f"ignored {rel}: gone while the folder was read, or a link to nothing")
        return None


_KIND_ORDER = {"purchase": 0, "usage": 1, "claim": 2, "fee_detail": 3}


def _load_order(files: list[LandingFile]) -> None:
    """Sort in load order: reference first, then by business date, hospital, extract (load ids
    then grow with the date)."""
    order = _KIND_ORDER
    files.sort(
        key=lambda f: (
            f.business_date is not None,  # reference first
            f.business_date or dt.date.min,
            f.hospital_code or "",
            order.get(f.kind, 9),
            f.relpath,
        )
    )


def discover(
    landing: Path, through: dt.date, since: dt.date | None = None, *, reference: bool = True
) -> tuple[list[LandingFile], list[str]]:
    """Landing files with business date in [since, through] plus all reference files (none with
    ``reference=False``).

    Returns (files in load order, warnings about paths that do not fit the layout). Load order is
    reference first, then by business date, hospital, extract: load ids then grow with the date.

    Cheap on a year of history: one ``scandir`` per folder (file type from the directory entry),
    one ``stat`` per file for its size and mtime, no file opened. Folders of business dates outside
    [since, through] are not listed.
    """
    landing = Path(landing)
    if not landing.is_dir():
        raise FileNotFoundError(f"landing directory {landing} does not exist")
    files: list[LandingFile] = []
    warnings: list[str] = []
    ref_dir = landing / "reference"
    if reference and ref_dir.is_dir():
        for entry in _entries(ref_dir):
            stem = _stem(entry.name)
            rel = f"reference/{entry.name}"
            if stem not in REFERENCE or stem in PACKAGED_REFERENCE:
                warnings.append(f"ignored {rel}: not a known reference file")
                continue
            st = _stat(entry, rel, warnings)
            if st is None:
                continue
            files.append(LandingFile(entry.path, rel, f"reference:{stem}", None, None, st.st_size, st.st_mtime_ns))
    # the packaged reference data (the national rule library): every run, like a landing reference
    # file; its ledger row (content hash, then stat) makes it a no-op once loaded
    for name, filename in PACKAGED_REFERENCE.items() if reference else ():
        path = PACKAGE_DATA / filename
        try:
            st = path.stat()
        except FileNotFoundError:
            warnings.append(f"packaged reference {filename} is missing from the installation")
            continue
        files.append(LandingFile(str(path), f"{PACKAGED_PREFIX}{filename}", f"reference:{name}", None, None,
                                 st.st_size, st.st_mtime_ns))
    _load_order(files)
    extracts, _, extract_warnings = discover_unknown(landing, through, since, set())
    return files + extracts, sorted(warnings + extract_warnings)


def discover_unknown(
    landing: Path, through: dt.date, since: dt.date | None, known: set[tuple[str, int, int]]
) -> tuple[list[LandingFile], int, list[str]]:
    """The extract files of business dates in [since, through] whose stat key (relpath, size,
    mtime_ns; :attr:`LandingFile.stat_key`) is not in ``known``: (those files in load order, how
    many were known, warnings). No reference files.

    :func:`discover` then a look-up in ``known``, for a year of files of which all but a handful
    are known: a known file is counted, not made into an object (a year of ~10⁵ files: 0.73 s of
    CPU against 1.3 s, most of it the ``stat`` and the listing).
    """
    landing = Path(landing)
    if not landing.is_dir():
        raise FileNotFoundError(f"landing directory {landing} does not exist")
    files: list[LandingFile] = []
    warnings: list[str] = []
    n_known = 0
    for entry, rel, kind, hosp, day in _extract_entries(landing, through, since, warnings):
        st = _stat(entry, rel, warnings)
        if st is None:
            continue
        if (rel, st.st_size, st.st_mtime_ns) in known:
            n_known += 1
        else:
            files.append(LandingFile(entry.path, rel, kind, hosp, day, st.st_size, st.st_mtime_ns))
    _load_order(files)
    return files, n_known, sorted(warnings)


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def fingerprint(path: Path) -> tuple[str, str | None]:
    """One pass over the delivered bytes: (sha256 of the file as delivered, text encoding).

    The encoding is 'utf-8-sig' when the (decompressed) text decodes as UTF-8, else 'gb18030';
    ``None`` for xlsx. Raises FileRejected('undecodable') when neither decodes.
    """
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    if path.name.endswith(".xlsx"):
        return sha.hexdigest(), None
    for encoding in ("utf-8-sig", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with _open_bytes(path) as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
            return sha.hexdigest(), encoding
        except UnicodeDecodeError:
            continue
        except (OSError, EOFError) as exc:  # corrupt gzip
            raise FileRejected("undecodable", f"cannot decompress: {exc}", sha.hexdigest()) from exc
    raise FileRejected("undecodable", "neither UTF-8 nor GB18030/GBK", sha.hexdigest())


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") if (value.hour or value.minute or value.second) else value.strftime("%Y-%m-%d")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def read_rows(path: Path, encoding: str | None) -> Iterator[list[str]]:
    """Yield the header row, then data rows, as lists of strings (xlsx cells converted to text)."""
    with open_rows(path, encoding) as rows:
        yield from rows


def _csv_rows(text: Iterator[str]) -> Iterator[list[str]]:
    """The rows ``csv.reader(text)`` gives, faster: a line without a quote character is split on commas.

    ``text`` yields lines with their terminator (a text stream opened with ``newline=''``: each line
    ends in one of \n, \r, \r\n). A line holding a quote goes to ``csv.reader`` with the lines after
    it (a quoted field may span lines); the reader stops at the end of that record.
    """
    for line in text:
        if '"' in line:
            yield next(csv.reader(itertools.chain((line,), text)))
        else:
            line = line.rstrip("\r\n")
            yield line.split(",") if line else []


@contextlib.contextmanager
def open_rows(path: Path, encoding: str | None) -> Iterator[Iterator[list[str]]]:
    """Like :func:`read_rows`, as a context manager: ``with open_rows(p, enc) as rows: ...``."""
    if path.name.endswith(".xlsx"):
        rows = _xlsx_rows(path)
        try:
            yield rows
        finally:
            rows.close()
        return
    with _open_bytes(path) as raw:
        text = io.TextIOWrapper(raw, encoding=encoding or "utf-8-sig", newline="")
        yield _csv_rows(text)


def _xlsx_rows(path: Path) -> Iterator[list[str]]:
    """Rows of the first worksheet as text cells (trailing empty cells dropped, empty rows skipped)."""
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to open is a file-level reject
        raise FileRejected("unreadable_xlsx", f"cannot open workbook: {exc}") from exc
    try:
        ws = wb.worksheets[0]
        for row in ws.iter_rows(values_only=True):
            cells = [_cell(v) for v in row]
            while cells and cells[-1] == "":
                cells.pop()
            if cells:
                yield cells
    finally:
        wb.close()


def read_manifest(f: LandingFile) -> dict | None:
    if not f.manifest.exists():
        return None
    try:
        data = json.loads(f.manifest.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FileRejected("manifest_unreadable", f"{f.manifest.name} is not valid JSON: {exc}") from exc
    return data.get(f.kind) if isinstance(data, dict) else None
