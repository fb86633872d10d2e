"""One extract file being written (CSV, gzip, xlsx), with row defects injected on the way."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import random
import re
import zipfile
import zlib
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from ..contract import EXTRACTS
from .common import _FIXED_TIME, _ZIP_TIME
from .defects import _inject
from .hospitals import _Hospital

if TYPE_CHECKING:
    from .city import _City


class _Sink:
    """One extract file being written: defects are injected here, rows streamed to disk."""

    def __init__(self, city: _City, h: _Hospital, day: dt.date, extract: str, hdir: Path, others: list[str],
                 defects: bool = True) -> None:
        self.city = city
        self.h = h
        self.day = day
        self.extract = extract
        self.others = others
        self.path = hdir / f"{extract}{h.fmt.suffix(extract)}"
        self.relpath = self.path.relative_to(city.landing).as_posix()
        self.rows = 0
        self.sha256 = ""
        self.header_bytes = 0
        self.rate = city.defect_rate if defects else 0.0
        self.observe = extract == "claim" and city.fee_on
        self.drng = None
        self.file_defect: str | None = None
        self.file_rng: random.Random | None = None
        if self.rate > 0:
            tag = f"{city.seed}|{h.code}|{day.isoformat()}|{extract}"
            if h.fmt.manifest:  # a file-level defect needs a manifest; it replaces row defects
                self.file_rng = random.Random(f"yibao-file-defects|{tag}")
                if self.file_rng.random() < min(0.25, self.rate * 3):
                    xlsx = h.fmt.suffix(extract) == ".xlsx"
                    self.file_defect = "bad_manifest" if xlsx or self.file_rng.random() < 0.5 else "truncated_file"
            if self.file_defect is None:
                self.drng = random.Random(f"yibao-defects|{tag}")
        header = h.fmt.header(extract)
        self.extra = h.fmt.extra_column is not None
        self._xlsx = None
        if self.path.name.endswith(".xlsx"):
            import openpyxl

            self._wb = openpyxl.Workbook(write_only=True)
            self._wb.properties.creator = "yibao generator"
            self._wb.properties.created = _FIXED_TIME
            self._xlsx = self._wb.create_sheet(extract)
            self._xlsx.append(header)
            self._kinds = [c.kind for c in EXTRACTS[extract].columns]
        else:
            raw = open(self.path, "wb")  # noqa: SIM115 - streamed across emit() calls, closed in close()
            if h.fmt.gzip:
                self._raw = raw
                stream = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
            else:
                self._raw = None
                stream = raw
            self._fh = io.TextIOWrapper(stream, encoding=h.fmt.encoding, newline="")
            self._csv = csv.writer(self._fh, lineterminator=h.fmt.line_end)
            self._plain = extract == "claim"
            self._buffer: list[str] = []
            self._csv.writerow(header)
            if not h.fmt.gzip:
                self._fh.flush()
                self.header_bytes = raw.tell()
            else:
                self.header_bytes = 0

    # -- writing --------------------------------------------------------------------------------

    def _write(self, row: list[str]) -> None:
        self.rows += 1
        if self.extra:
            row = row + [_remark(row[0])]
        if self._xlsx is not None:
            self._xlsx.append(self._typed(row))
        elif self._plain:  # claim fields never need quoting (codes, amounts, dates): skip the csv module
            self._buffer.append(",".join(row))
            if len(self._buffer) >= 2000:
                self._flush_buffer()
        else:
            self._csv.writerow(row)

    def _flush_buffer(self) -> None:
        if self._buffer:
            end = self.h.fmt.line_end
            self._fh.write(end.join(self._buffer) + end)
            self._buffer.clear()

    def _typed(self, row: list[str]) -> list:
        """xlsx cells as a spreadsheet would hold them: numbers, datetimes, text codes."""
        out: list = []
        fmt = self.h.dates
        for value, kind in zip(row, self._kinds + ["text"] * (len(row) - len(self._kinds))):
            if value == "":
                out.append(None)
            elif kind in ("qty", "price", "money"):
                try:
                    out.append(int(value) if kind == "qty" else Decimal(value))
                except (ValueError, ArithmeticError):  # a defect value stays text
                    out.append(value)
            elif kind == "timestamp":
                try:
                    d, t = value.split(" ")
                    out.append(dt.datetime.combine(fmt.parse(d), dt.time.fromisoformat(t)))
                except ValueError:
                    out.append(value)
            elif kind == "date":
                try:
                    out.append(fmt.parse(value))
                except ValueError:
                    out.append(value)
            else:
                out.append(value)
        return out

    def emit(self, row: list[str]) -> None:
        if self.observe:  # the audit's ground truth follows every claim row, and whether it survives loading
            n = len(self.city.defects)
            self._emit(row)
            self.city._observe_claim(row, self.file_defect is not None or len(self.city.defects) > n, self.relpath)
        else:
            self._emit(row)

    def _emit(self, row: list[str]) -> None:
        drng = self.drng
        if drng is not None and drng.random() < self.rate:
            row = list(row)
            cls, column, value = _inject(self, drng, row)
            if cls == "duplicate_key":
                self._write(row)
                self.city._record(self.relpath, self.rows, cls, column, value)
                self.city.duplicates += 1
                also = None
                if self.city.duplicates % 2 == 0:  # the copy is malformed too: still both duplicates
                    row = list(row)
                    also = _inject(self, drng, row, exclude=("duplicate_key",))
                self._write(row)
                self.city._record(self.relpath, self.rows, cls, column, value, also)
                self.city.rows[self.extract] += 2
                return
            self._write(row)
            self.city._record(self.relpath, self.rows, cls, column, value)
        else:
            self._write(row)
        self.city.rows[self.extract] += 1

    def close(self) -> None:
        if self._xlsx is not None:
            buf = io.BytesIO()
            self._wb.save(buf)
            data = _normalise_xlsx(buf.getvalue())
            self.path.write_bytes(data)
        else:
            self._flush_buffer()
            self._fh.close()
            if self._raw is not None:
                self._raw.close()
            data = self.path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.city.files["extract"] += 1
        self.city.bytes += len(data)


def _remark(key: str) -> str:
    """The extra 备注 column of one hospital: mostly empty, a function of the row's key."""
    return ("", "", "", "补录", "", "", "急诊", "", "", "")[zlib.crc32(key.encode()) % 10]


def _normalise_xlsx(data: bytes) -> bytes:
    """Same workbook → same bytes: fixed zip timestamps and document properties."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = re.sub(rb"<dcterms:modified([^>]*)>[^<]*</dcterms:modified>",
                                 rb"<dcterms:modified\1>2020-01-01T00:00:00Z</dcterms:modified>", content)
            zi = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o600 << 16
            dst.writestr(zi, content)
    return out.getvalue()
