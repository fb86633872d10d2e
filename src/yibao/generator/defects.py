"""Injected defects: row defects (one per corrupted row, drawn in the writer) and file-level defects
(truncated file, bad manifest, missing file) applied when a hospital's folder is finished."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from .. import codes
from ..contract import EXTRACTS
from .common import CI, PI, UI, _cents
from .formats import _DateFormatter
from .hospitals import _Hospital

if TYPE_CHECKING:
    from .writers import _Sink


ROW_DEFECT_CLASSES = (
    "bad_id_check_char",
    "bad_id_birth_date",
    "bad_uscc_check_char",
    "bad_udi_check_digit",
    "bad_consumable_format",
    "unknown_consumable_code",
    "bad_icd10",
    "unknown_insurance_type",
    "unknown_medical_category",
    "amount_mismatch",
    "claim_parts_mismatch",
    "negotiated_exceeds_fund",
    "bad_date",
    "date_order",
    "missing_required",
    "zero_quantity",
    "hospital_mismatch",
    "duplicate_key",
)
FILE_DEFECT_CLASSES = ("truncated_file", "bad_manifest", "missing_file")
DEFECT_CLASSES = ROW_DEFECT_CLASSES + FILE_DEFECT_CLASSES

# Which row defects apply to which extract (a row drawn for a class that does not fit it, e.g.
# date_order on an outpatient claim, redraws).
_EXTRACT_DEFECTS = {
    "purchase": (
        "bad_uscc_check_char", "bad_udi_check_digit", "bad_consumable_format", "unknown_consumable_code",
        "amount_mismatch", "bad_date", "date_order", "missing_required", "zero_quantity",
        "hospital_mismatch", "duplicate_key",
    ),
    "usage": (
        "bad_id_check_char", "bad_id_birth_date", "bad_udi_check_digit", "bad_consumable_format",
        "unknown_consumable_code", "amount_mismatch", "bad_date", "missing_required", "zero_quantity",
        "hospital_mismatch", "duplicate_key",
    ),
    "claim": (
        "bad_id_check_char", "bad_id_birth_date", "bad_icd10", "unknown_insurance_type",
        "unknown_medical_category", "claim_parts_mismatch", "negotiated_exceeds_fund", "bad_date",
        "date_order", "missing_required", "hospital_mismatch", "duplicate_key",
    ),
}


def _bad_date_text(drng: random.Random, text: str, fmt: _DateFormatter) -> str:
    """A date (or datetime) text that is not a real date in any accepted style."""
    date_part, sep, time_part = text.partition(" ")
    try:
        d = fmt.parse(date_part)
    except ValueError:
        d = dt.date(2025, 1, 1)
    choice = drng.randrange(6)
    if choice == 0:
        bad = f"{d.year}-02-30"
    elif choice == 1:
        bad = f"{d.year}-13-{d.day:02d}"
    elif choice == 2:
        bad = d.strftime("%Y.%m.%d")
    elif choice == 3:
        bad = d.strftime("%d/%m/%Y")
    elif choice == 4:
        bad = f"{d.year}{d.month:02d}{d.day:02d}"[:7] + "O"
    else:
        bad = f"{d.year}/04/31"
    if sep and drng.random() < 0.25:
        return f"{date_part} 25:{drng.randrange(60):02d}:00"  # an impossible time on a real date
    return f"{bad}{sep}{time_part}"


def _shift_date(text: str, fmt: _DateFormatter, days: int) -> str:
    return fmt(fmt.parse(text) + dt.timedelta(days))


def _inject(sink: _Sink, drng: random.Random, row: list[str], exclude: tuple[str, ...] = ()
            ) -> tuple[str, str | None, str | None]:
    """Corrupt one field of row in place (exactly one defect); returns (class, column, new value)."""
    extract = sink.extract
    classes = tuple(c for c in _EXTRACT_DEFECTS[extract] if c not in exclude)
    idx = PI if extract == "purchase" else (UI if extract == "usage" else CI)
    fmt = sink.h.dates
    for _ in range(12):
        cls = classes[drng.randrange(len(classes))]
        if cls == "bad_udi_check_digit":
            if not row[idx["udi_di"]]:
                continue
            udi = row[idx["udi_di"]]
            row[idx["udi_di"]] = udi[:-1] + str((int(udi[-1]) + 1 + drng.randrange(9)) % 10)
            return cls, "udi_di", row[idx["udi_di"]]
        if cls in ("bad_id_check_char", "bad_id_birth_date"):
            pid = row[idx["patient_id_no"]]
            if cls == "bad_id_check_char":
                good = pid[17]
                alts = [c for c in "0123456789X" if c != good]
                row[idx["patient_id_no"]] = pid[:17] + alts[drng.randrange(len(alts))]
            else:
                births = ("19870229", "19911301", "19850431", "20000230", "19790000", "20990615")
                first17 = pid[:6] + births[drng.randrange(len(births))] + pid[14:17]
                row[idx["patient_id_no"]] = first17 + codes.ric_check_char(first17)
            return cls, "patient_id_no", row[idx["patient_id_no"]]
        if cls == "bad_uscc_check_char":
            u = row[idx["supplier_uscc"]]
            alts = [c for c in codes.USCC_ALPHABET if c != u[17]]
            row[idx["supplier_uscc"]] = u[:17] + alts[drng.randrange(len(alts))]
            return cls, "supplier_uscc", row[idx["supplier_uscc"]]
        if cls == "bad_consumable_format":
            c = row[idx["consumable_code"]]
            forms = (c[:-1], c + "00", c[:10] + "O" + c[11:], "0" + c[1:], c[:8] + "-" + c[9:])
            row[idx["consumable_code"]] = forms[drng.randrange(len(forms))]
            return cls, "consumable_code", row[idx["consumable_code"]]
        if cls == "unknown_consumable_code":
            c = row[idx["consumable_code"]]
            row[idx["consumable_code"]] = c[:12] + f"{900 + drng.randrange(100):03d}" + c[15:]
            if row[idx["consumable_code"]] in sink.city.catalog_codes:
                continue
            return cls, "consumable_code", row[idx["consumable_code"]]
        if cls == "bad_icd10":
            d = row[CI["principal_diagnosis"]]
            forms = (d.replace(".", "", 1), d[:5], "1" + d[1:], d[:3] + "-" + d[4:])
            bad = forms[drng.randrange(len(forms))]
            if not codes.validate_icd10(bad):
                continue
            row[CI["principal_diagnosis"]] = bad
            return cls, "principal_diagnosis", bad
        if cls == "unknown_insurance_type":
            row[CI["insurance_type"]] = ("320", "399", "330")[drng.randrange(3)]
            return cls, "insurance_type", row[CI["insurance_type"]]
        if cls == "unknown_medical_category":
            row[CI["medical_category"]] = ("99", "31", "18")[drng.randrange(3)]
            return cls, "medical_category", row[CI["medical_category"]]
        if cls == "amount_mismatch":
            col = "amount" if extract == "purchase" else "charge_amount"
            cents = int(Decimal(row[idx[col]]) * 100) + (100 + drng.randrange(9900)) * (1 if drng.random() < 0.5 else -1)
            row[idx[col]] = _cents(cents)
            return cls, col, row[idx[col]]
        if cls == "claim_parts_mismatch":
            cents = int(Decimal(row[CI["total_amount"]]) * 100) + 50 + drng.randrange(50000)
            row[CI["total_amount"]] = _cents(cents)
            return cls, "total_amount", row[CI["total_amount"]]
        if cls == "negotiated_exceeds_fund":
            fund = int(Decimal(row[CI["fund_paid"]]) * 100)
            delta = 1 + drng.randrange(100000)
            row[CI["negotiated_drug_amount"]] = _cents(fund + delta if fund >= 0 else fund - delta)
            return cls, "negotiated_drug_amount", row[CI["negotiated_drug_amount"]]
        if cls == "bad_date":
            if extract == "purchase":
                cols = ["order_date", "delivery_date"] + (["paid_date"] if row[PI["paid_date"]] else [])
            elif extract == "usage":
                cols = ["used_at"]
            else:
                cols = ["settled_at"] + (["admission_date", "discharge_date"] if row[CI["admission_date"]] else [])
            col = cols[drng.randrange(len(cols))]
            row[idx[col]] = _bad_date_text(drng, row[idx[col]], fmt)
            return cls, col, row[idx[col]]
        if cls == "date_order":
            if extract == "purchase":
                row[PI["order_date"]] = _shift_date(row[PI["delivery_date"]], fmt, 1 + drng.randrange(5))
                return cls, "order_date", row[PI["order_date"]]
            if not row[CI["admission_date"]]:
                continue
            row[CI["discharge_date"]] = _shift_date(row[CI["admission_date"]], fmt, -1 - drng.randrange(3))
            return cls, "discharge_date", row[CI["discharge_date"]]
        if cls == "missing_required":
            key = EXTRACTS[extract].key
            cols = [c.name for c in EXTRACTS[extract].columns
                    if c.required and c.name not in (key, "hospital_code") and row[idx[c.name]] != ""]
            col = cols[drng.randrange(len(cols))]
            row[idx[col]] = ""
            return cls, col, ""
        if cls == "zero_quantity":
            col = "amount" if extract == "purchase" else "charge_amount"
            row[idx["quantity"]] = "0"
            row[idx[col]] = "0.00"
            return cls, "quantity", "0"
        if cls == "hospital_mismatch":
            other = sink.others[drng.randrange(len(sink.others))]
            row[idx["hospital_code"]] = other
            return cls, "hospital_code", other
        if cls == "duplicate_key":
            key = EXTRACTS[extract].key
            return cls, key, row[idx[key]]
    # nothing fitted (very unlikely): a missing required field always does
    col = "product_name" if extract == "purchase" else ("dept_code" if extract == "usage" else "visit_id")
    row[idx[col]] = ""
    return "missing_required", col, ""


class _FolderDefects:
    """Manifest and file-level defects of a finished hospital-day folder (mixed into the city)."""

    def _finish_folder(self, h: _Hospital, day: dt.date, hdir: Path, sinks: dict[str, _Sink]) -> None:
        """Write the manifest (true counts and hashes), then apply the folder's file-level defects."""
        if not h.fmt.manifest:
            return
        manifest = {e: {"rows": s.rows, "sha256": s.sha256} for e, s in sinks.items()}
        for e, s in sinks.items():
            if s.file_defect is None:
                continue
            drng = s.file_rng
            if s.file_defect == "truncated_file" and s.rows >= 2:
                size = s.path.stat().st_size
                cut = s.header_bytes + int((size - s.header_bytes) * (0.3 + 0.5 * drng.random()))
                with open(s.path, "r+b") as fh:
                    fh.truncate(cut)
                self.bytes -= size - cut
                self._record(s.relpath, None, "truncated_file", None, f"{cut} of {size} bytes")
            else:
                if drng.random() < 0.5:
                    manifest[e]["rows"] = s.rows + (1 if drng.random() < 0.5 or s.rows == 0 else -1)
                    column, value = "rows", str(manifest[e]["rows"])
                else:
                    manifest[e]["sha256"] = hashlib.sha256(s.relpath.encode()).hexdigest()
                    column, value = "sha256", manifest[e]["sha256"]
                self._record(s.relpath, None, "bad_manifest", column, value)
        path = hdir / "_manifest.json"
        data = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        path.write_text(data, encoding="utf-8")
        self.files["manifest"] += 1
        self.bytes += len(data.encode())

    def _drop_file(self, hdir: Path, sink: _Sink) -> None:
        """The extract never arrives (missing_file): delete it, its manifest entry and its defects."""
        self.bytes -= sink.path.stat().st_size
        sink.path.unlink()
        self.files["extract"] -= 1
        self.rows[sink.extract] -= sink.rows
        self.defects = [d for d in self.defects if d["file"] != sink.relpath]
        path = hdir / "_manifest.json"
        if path.exists():
            manifest = json.loads(path.read_text(encoding="utf-8"))
            manifest.pop(sink.extract, None)
            data = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
            self.bytes += len(data.encode()) - path.stat().st_size
            path.write_text(data, encoding="utf-8")
        self._record(sink.relpath, None, "missing_file", None, None)

    def _record(self, file: str, row: int | None, cls: str, column: str | None, value: str | None,
                also: tuple[str, str | None, str | None] | None = None) -> None:
        entry = {"file": file, "row": row, "class": cls, "column": column, "value": value}
        if also is not None:
            entry["also"] = {"class": also[0], "column": also[1], "value": also[2]}
        self.defects.append(entry)
