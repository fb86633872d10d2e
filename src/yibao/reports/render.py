"""Render one month: every hospital's statement, the bureau overview and a manifest."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from datetime import date
from pathlib import Path

from .charts import require_cjk_font
from .data import load_month
from .pdf import bureau_pdf, hospital_pdf
from .workbook import bureau_workbook, hospital_workbook

MANIFEST = "manifest.json"
_UNSAFE = re.compile(r'[\\/:*?"<>|\s\x00-\x1f]+')


def safe_name(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("._") or "_"


def hospital_stem(code: str, name: str, month: date) -> str:
    return f"{safe_name(code)}_{safe_name(name)}_{month:%Y-%m}_结算单"


def bureau_stem(month: date) -> str:
    return f"全市_{month:%Y-%m}_结算总览"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def render_month(url: str, month: date, out_dir: Path, schema: str = "marts") -> Path:
    """Write ``<out_dir>/<YYYY-MM>/`` from the marts and return that folder.

    Per hospital with a settlement row for the month: ``<code>_<name>_<YYYY-MM>_结算单.xlsx`` and
    ``.pdf``; for the bureau ``全市_<YYYY-MM>_结算总览.xlsx`` and ``.pdf``; and ``manifest.json``
    (file, sha256, bytes, row counts per sheet, PDF pages). Reads only ``schema``. The folder is
    built aside and swapped in whole, so readers never see half a month and files of hospitals no
    longer reported do not linger; the same marts give byte-identical files.
    """
    require_cjk_font()
    month = month.replace(day=1)
    data = load_month(url, month, schema)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    label = f"{month:%Y-%m}"
    work = Path(tempfile.mkdtemp(prefix=f".{label}.partial-", dir=out_dir))
    try:
        work.chmod(0o755)
        files: list[dict] = []

        def add(path: Path, kind: str, hospital_code: str | None, rows: dict | None = None, pages: int | None = None):
            entry = {"file": path.name, "kind": kind, "hospital_code": hospital_code, "sha256": _sha256(path),
                     "bytes": path.stat().st_size}
            if rows is not None:
                entry["rows"] = rows
            if pages is not None:
                entry["pages"] = pages
            files.append(entry)

        for h in data.hospitals:
            hm = data.for_hospital(h.code)
            stem = hospital_stem(h.code, h.name, month)
            xlsx, pdf = work / f"{stem}.xlsx", work / f"{stem}.pdf"
            add(xlsx, "hospital_statement", h.code, rows=hospital_workbook(hm, xlsx))
            add(pdf, "hospital_statement", h.code, pages=hospital_pdf(hm, pdf))
        stem = bureau_stem(month)
        xlsx, pdf = work / f"{stem}.xlsx", work / f"{stem}.pdf"
        add(xlsx, "bureau_overview", None, rows=bureau_workbook(data, xlsx))
        add(pdf, "bureau_overview", None, pages=bureau_pdf(data, pdf))

        manifest = {
            "month": label,
            "schema": schema,
            "marts_as_of_date": data.marts_as_of.isoformat(),
            "figures_as_of_date": data.cutoff.isoformat(),
            "month_complete": data.is_complete,
            "hospitals": len(data.hospitals),
            "files": files,
        }
        (work / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

        final = out_dir / label
        old = out_dir / f".{label}.old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        work.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        return final
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
