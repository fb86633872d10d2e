"""Row-level contract checks: each landing row becomes either a clean tuple for COPY or one reason.

A row carries at most one reason (the first that fails, in the order below), so quarantine counts
are exact per defect class:

1. ``wrong_field_count``, ``missing_required``, ``bad_date`` / ``bad_number`` /
   ``bad_flag`` / ``too_many_decimals`` (``bad_date`` covers datetimes too)
2. ``zero_quantity``, ``nonpositive_price``, ``hospital_mismatch``
3. codes: ``bad_id_format`` / ``bad_id_birth_date`` / ``bad_id_check_char``, ``bad_uscc_format`` /
   ``bad_uscc_check_char``, ``bad_udi_format`` / ``bad_udi_check_digit``, ``bad_consumable_format``,
   ``unknown_consumable_code``, ``bad_doctor_code``, ``bad_icd10``, ``unknown_insurance_type``,
   ``unknown_medical_category``
4. identities: ``amount_mismatch``, ``claim_parts_mismatch``, ``negotiated_exceeds_fund``
5. ``date_order``, ``missing_inpatient_dates``
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from . import codes
from .contract import Column

CENT = Decimal("0.01")
NUMBER = re.compile(r"^[+-]?(\d+)(?:\.(\d+))?$")
TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$")
INT = re.compile(r"^\d{1,9}$")
FLAGS = {"Y": "t", "N": "f", "y": "t", "n": "f", "是": "t", "否": "f", "1": "t", "0": "f", "TRUE": "t", "FALSE": "f"}
DECIMALS = {"money": 2, "price": 4, "qty": 4, "rate": 8}


class RowRejected(Exception):
    __slots__ = ("reason", "column", "value", "detail")

    def __init__(self, reason: str, column: str | None = None, value: str | None = None, detail: str | None = None):
        self.reason = reason
        self.column = column
        self.value = value
        self.detail = detail


_date_cache: dict[str, str | None] = {}


def parse_date(value: str) -> str | None:
    """'YYYY-MM-DD', 'YYYYMMDD' or 'YYYY/MM/DD' → ISO text; None when not a real date."""
    hit = _date_cache.get(value, False)
    if hit is not False:
        return hit
    iso = None
    v = value
    if len(v) == 8 and v.isdigit():
        v = f"{v[:4]}-{v[4:6]}-{v[6:]}"
    elif len(v) == 10 and v[4] == "/" and v[7] == "/":
        v = v.replace("/", "-")
    if len(v) == 10 and v[4] == "-" and v[7] == "-":
        try:
            iso = dt.date(int(v[:4]), int(v[5:7]), int(v[8:])).isoformat()
        except ValueError:
            iso = None
    if len(_date_cache) < 100_000:
        _date_cache[value] = iso
    return iso


def parse_datetime(value: str) -> str | None:
    date_part, _, time_part = value.partition(" ")
    if not time_part and "T" in value:
        date_part, _, time_part = value.partition("T")
    d = parse_date(date_part)
    if d is None:
        return None
    time_part = time_part.strip()
    if not time_part:
        return f"{d} 00:00:00"
    if not TIME.match(time_part):
        return None
    return f"{d} {time_part}" if len(time_part) == 8 else f"{d} {time_part}:00"


@dataclass
class ColumnSlot:
    column: Column
    index: int | None  # position in the file's header; None when the (optional) column is absent


def convert(slot_kind: str, name: str, value: str) -> str | None:
    """Convert one field to its COPY text; raises RowRejected. Empty → None (caller checks required)."""
    if slot_kind == "text":
        return value
    if slot_kind == "date":
        iso = parse_date(value)
        if iso is None:
            raise RowRejected("bad_date", name, value, "expected YYYY-MM-DD, YYYYMMDD or YYYY/MM/DD")
        return iso
    if slot_kind == "timestamp":
        iso = parse_datetime(value)
        if iso is None:
            raise RowRejected("bad_date", name, value, "expected a date then HH:MM:SS")
        return iso
    if slot_kind in DECIMALS:
        m = NUMBER.match(value.replace(",", "") if "," in value else value)
        if m is None:
            raise RowRejected("bad_number", name, value, "expected a decimal number")
        frac = m.group(2)
        if frac and len(frac) > DECIMALS[slot_kind] and len(frac.rstrip("0")) > DECIMALS[slot_kind]:
            raise RowRejected("too_many_decimals", name, value, f"at most {DECIMALS[slot_kind]} decimals")
        return m.group(0)
    if slot_kind == "flag":
        flag = FLAGS.get(value)
        if flag is None:
            raise RowRejected("bad_flag", name, value, "expected Y/N or 是/否")
        return flag
    if slot_kind == "int":
        if not INT.match(value):
            raise RowRejected("bad_number", name, value, "expected an integer")
        return value
    raise ValueError(slot_kind)


def money(value: str | None) -> Decimal:
    return Decimal(value) if value else Decimal(0)


def check_line_amount(q: str, p: str, amount: str, column: str) -> None:
    expected = (Decimal(q) * Decimal(p)).quantize(CENT, ROUND_HALF_UP)
    if abs(expected - Decimal(amount)) > CENT:
        raise RowRejected("amount_mismatch", column, amount, f"expected round(quantity × price, 2) = {expected} ± 0.01")


def check_consumable(values: dict, catalog: dict[str, str] | None) -> None:
    code = values["consumable_code"]
    if codes.validate_consumable_code(code):
        raise RowRejected("bad_consumable_format", "consumable_code", code, "C + 19 digits (20) or C + 26 digits (27)")
    if catalog is not None and code not in catalog and (len(code) != 27 or code[:20] not in catalog):
        raise RowRejected("unknown_consumable_code", "consumable_code", code, "not in the consumable catalog")
    udi = values.get("udi_di")
    if udi:
        reason = codes.validate_udi_di(udi)
        if reason:
            raise RowRejected(
                "bad_udi_format" if reason == "format" else "bad_udi_check_digit", "udi_di", udi, "GTIN-14 with GS1 mod-10 check digit"
            )


def check_purchase(v: dict, catalog) -> None:
    if Decimal(v["unit_price"]) <= 0:
        raise RowRejected("nonpositive_price", "unit_price", v["unit_price"], "unit_price > 0")
    reason = codes.validate_uscc(v["supplier_uscc"])
    if reason:
        raise RowRejected(
            "bad_uscc_format" if reason == "format" else "bad_uscc_check_char",
            "supplier_uscc", v["supplier_uscc"], "18-char 统一社会信用代码 with GB 32100 check character",
        )
    check_consumable(v, catalog)
    check_line_amount(v["quantity"], v["unit_price"], v["amount"], "amount")
    if v["delivery_date"] < v["order_date"]:
        raise RowRejected("date_order", "delivery_date", v["delivery_date"], f"delivery_date ≥ order_date {v['order_date']}")


def check_usage(v: dict, catalog, doctor_pattern: re.Pattern) -> None:
    if Decimal(v["charge_unit_price"]) <= 0:
        raise RowRejected("nonpositive_price", "charge_unit_price", v["charge_unit_price"], "charge_unit_price > 0")
    if not doctor_pattern.match(v["doctor_code"]):
        raise RowRejected("bad_doctor_code", "doctor_code", v["doctor_code"], f"doctor code matching {doctor_pattern.pattern}")
    check_consumable(v, catalog)
    check_line_amount(v["quantity"], v["charge_unit_price"], v["charge_amount"], "charge_amount")


def check_claim(v: dict) -> None:
    diag = v["principal_diagnosis"]
    if codes.validate_icd10(diag):
        raise RowRejected("bad_icd10", "principal_diagnosis", diag, "ICD-10 医保版 code such as A00.000 or I10.x00x002")
    if v["insurance_type"] not in codes.INSURANCE_TYPES:
        raise RowRejected("unknown_insurance_type", "insurance_type", v["insurance_type"], "310 or 390")
    if v["medical_category"] not in codes.MEDICAL_CATEGORIES:
        raise RowRejected("unknown_medical_category", "medical_category", v["medical_category"], "a 医疗类别 code")
    total = Decimal(v["total_amount"])
    fund = Decimal(v["fund_paid"])
    parts = fund + money(v["other_fund_paid"]) + money(v["account_paid"]) + money(v["cash_paid"])
    if abs(total - parts) > CENT:
        raise RowRejected(
            "claim_parts_mismatch", "total_amount", v["total_amount"],
            f"total_amount = fund + other fund + account + cash = {parts} ± 0.01",
        )
    nego = money(v["negotiated_drug_amount"])
    if (fund >= 0 and not (0 <= nego <= fund)) or (fund < 0 and not (fund <= nego <= 0)):
        raise RowRejected(
            "negotiated_exceeds_fund", "negotiated_drug_amount", v["negotiated_drug_amount"],
            f"0 ≤ negotiated_drug_amount ≤ fund_paid {fund}",
        )
    if v["medical_category"] in codes.INPATIENT_CATEGORIES and not (v["admission_date"] and v["discharge_date"]):
        raise RowRejected("missing_inpatient_dates", "admission_date", v["admission_date"], "inpatient claims need admission and discharge dates")
    if v["admission_date"] and v["discharge_date"] and v["discharge_date"] < v["admission_date"]:
        raise RowRejected("date_order", "discharge_date", v["discharge_date"], f"discharge_date ≥ admission_date {v['admission_date']}")
