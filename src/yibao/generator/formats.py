"""File formats per hospital (encoding, headers, date style, …), stable over time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..contract import EXTRACTS, FEE_DETAIL

# fee_detail is optional and not yet among the contract's EXTRACTS
_EXTRACTS = {**EXTRACTS, FEE_DETAIL.name: FEE_DETAIL}


@dataclass(frozen=True)
class FileFormat:
    encoding: str = "utf-8"  # utf-8 | utf-8-sig | gb18030
    chinese_headers: bool = False
    date_style: str = "iso"  # iso YYYY-MM-DD | compact YYYYMMDD | slash YYYY/MM/DD
    yes: str = "Y"
    no: str = "N"
    line_end: str = "\n"
    gzip: bool = False
    usage_xlsx: bool = False
    extra_column: str | None = None
    padded_headers: bool = False
    manifest: bool = False
    fills_udi: float = 0.85  # share of lines with a UDI-DI

    def suffix(self, extract: str) -> str:
        if extract == "usage" and self.usage_xlsx:
            return ".xlsx"
        return ".csv.gz" if self.gzip else ".csv"

    def header(self, extract: str) -> list[str]:
        cols = _EXTRACTS[extract].columns
        names = [c.zh if self.chinese_headers else c.name for c in cols]
        if self.padded_headers:
            names = [f" {n}" if i % 4 == 1 else (f"{n} " if i % 4 == 3 else n) for i, n in enumerate(names)]
        if self.extra_column:
            names.append(self.extra_column)
        return names


def _format_for(index: int) -> FileFormat:
    fixed = {
        0: FileFormat(manifest=True),
        1: FileFormat(encoding="utf-8-sig", date_style="compact"),
        2: FileFormat(encoding="gb18030", chinese_headers=True, date_style="slash", yes="是", no="否",
                      line_end="\r\n", manifest=True),
        3: FileFormat(usage_xlsx=True, date_style="compact", fills_udi=0.6),
        4: FileFormat(gzip=True, manifest=True, fills_udi=0.0),
        5: FileFormat(extra_column="备注", padded_headers=True, yes="是", no="否"),
    }
    if index in fixed:
        return fixed[index]
    styles = ("iso", "compact", "slash")
    return FileFormat(
        encoding="utf-8-sig" if index % 5 == 2 else "utf-8",
        chinese_headers=index % 7 == 3,
        date_style=styles[index % 3],
        manifest=index % 2 == 0,
    )


class _DateFormatter:
    def __init__(self, style: str) -> None:
        self.pattern = {"iso": "%Y-%m-%d", "compact": "%Y%m%d", "slash": "%Y/%m/%d"}[style]
        self._cache: dict[dt.date, str] = {}

    def __call__(self, d: dt.date) -> str:
        s = self._cache.get(d)
        if s is None:
            s = self._cache[d] = d.strftime(self.pattern)
        return s

    def parse(self, text: str) -> dt.date:
        return dt.datetime.strptime(text, self.pattern).date()
