"""The landing zone: discovering files and reading them as rows of text.

Layout (docs/extract-contract.md)::

    <landing>/<YYYYMMDD>/<hospital_code>/purchase.csv | usage.csv | claim.csv  (.xlsx; .csv may be .gz)
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
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .contract import EXTRACTS, REFERENCE

DATE_DIR = re.compile(r"^\d{8}$")
SUFFIXES = (".csv", ".csv.gz", ".xlsx")


class FileRejected(Exception):
    """A whole file cannot be loaded. ``reason`` is a stable code, ``detail`` says what was expected."""

    def __init__(self, reason: str, detail: str, sha: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.sha = sha


@dataclass(frozen=True)
class LandingFile:
    path: Path
    relpath: str
    kind: str  # purchase | usage | claim | reference:<name>
    hospital_code: str | None
    business_date: dt.date | None

    @property
    def is_reference(self) -> bool:
        return self.kind.startswith("reference:")

    @property
    def name(self) -> str:
        return self.kind.split(":", 1)[-1]

    @property
    def manifest(self) -> Path:
        return self.path.parent / "_manifest.json"


def _stem(path: Path) -> str | None:
    for suffix in SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return None


def discover(
    landing: Path, through: dt.date, since: dt.date | None = None
) -> tuple[list[LandingFile], list[str]]:
    """Landing files with business date in [since, through] plus all reference files.

    Returns (files in load order, warnings about paths that do not fit the layout). Load order is
    reference first, then by business date, hospital, extract: load ids then grow with the date.
    """
    landing = Path(landing)
    if not landing.is_dir():
        raise FileNotFoundError(f"landing directory {landing} does not exist")
    files: list[LandingFile] = []
    warnings: list[str] = []
    ref_dir = landing / "reference"
    if ref_dir.is_dir():
        for path in sorted(ref_dir.iterdir()):
            stem = _stem(path)
            if stem in REFERENCE:
                files.append(LandingFile(path, str(path.relative_to(landing)), f"reference:{stem}", None, None))
            else:
                warnings.append(f"ignored {path.relative_to(landing)}: not a known reference file")
    for day_dir in sorted(landing.iterdir()):
        if not day_dir.is_dir() or day_dir.name in ("reference",) or day_dir.name.startswith(("_", ".")):
            continue
        if not DATE_DIR.match(day_dir.name):
            warnings.append(f"ignored {day_dir.name}/: not a YYYYMMDD business-date folder")
            continue
        try:
            day = dt.datetime.strptime(day_dir.name, "%Y%m%d").date()
        except ValueError:
            warnings.append(f"ignored {day_dir.name}/: not a real date")
            continue
        if day > through or (since and day < since):
            continue
        for hosp_dir in sorted(p for p in day_dir.iterdir() if p.is_dir()):
            for path in sorted(hosp_dir.iterdir()):
                if path.name == "_manifest.json":
                    continue
                stem = _stem(path)
                if stem in EXTRACTS:
                    files.append(
                        LandingFile(path, str(path.relative_to(landing)), stem, hosp_dir.name, day)
                    )
                else:
                    warnings.append(f"ignored {path.relative_to(landing)}: not purchase/usage/claim .csv/.csv.gz/.xlsx")
    order = {"purchase": 0, "usage": 1, "claim": 2}
    files.sort(
        key=lambda f: (
            0 if f.is_reference else 1,
            f.business_date or dt.date.min,
            f.hospital_code or "",
            order.get(f.kind, 9),
            f.relpath,
        )
    )
    return files, warnings


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
