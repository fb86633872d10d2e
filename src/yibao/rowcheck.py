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
   fee_detail: ``bad_item_type``, ``bad_item_code`` (format for its item_type)
4. identities: ``amount_mismatch``, ``claim_parts_mismatch``, ``negotiated_exceeds_fund``;
   fee_detail: ``bad_exam_result`` (P, N or empty)
5. ``date_order``, ``missing_inpatient_dates``; fee_detail: ``charge_before_birth`` (the charge
   date precedes the birth date in the ID number, so no age in days exists)

Reference ``audit_rules`` rows (:func:`check_audit_rule`): ``unknown_rule_type``,
``missing_rule_parameter`` (a parameter its rule_type needs is missing or out of range, or one it must not have is set), ``bad_item_prefix``, ``effective_dates_reversed``,
``bad_severity``; ``duplicate_key`` for a rule_id twice in one file.

``duplicate_key`` (a natural key twice in one file) is decided per file, after the rows, by the
loader: it looks at every row of the file, valid or not, and takes precedence over the reasons above
(a refused twin's detail keeps its other defect). See ``FileLoader._quarantined_twins``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from . import codes
from .contract import AUDIT_RULE_TYPES as _RULE_TYPES
from .contract import Column

CENT = Decimal("0.01")
# ASCII digits only: PostgreSQL's numeric and time input read nothing else, so a full-width or
# Arabic-Indic digit is a bad value of the row (quarantined), not a COPY error that stops the night.
NUMBER = re.compile(r"^[+-]?(\d+)(?:\.(\d+))?$", re.ASCII)
TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$", re.ASCII)
INT = re.compile(r"^\d{1,9}$", re.ASCII)
FLAGS = {"Y": "t", "N": "f", "y": "t", "n": "f", "是": "t", "否": "f", "1": "t", "0": "f", "TRUE": "t", "FALSE": "f"}
DECIMALS = {"money": 2, "price": 4, "qty": 4, "rate": 8}
# digits before the decimal point that the raw column holds (numeric(18,2), (18,4), (18,4), (12,8)):
# more is a bad value of the row, not a COPY overflow that would stop the night
INT_DIGITS = {"money": 16, "price": 14, "qty": 14, "rate": 4}


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
        if len(m.group(1).lstrip("0")) > INT_DIGITS[slot_kind]:
            raise RowRejected("bad_number", name, value, f"at most {INT_DIGITS[slot_kind]} digits before the decimal point")
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


# item_code format per fee_detail item_type (CODES.md); 31 (医用耗材) is the consumable code format
ITEM_CODE_PATTERNS = {
    "11": re.compile(r"X[A-Z0-9]{22}\Z", re.ASCII),  # 西药: X + 5 class + 4 name + 4 form + 4 spec + 5 maker
    "12": re.compile(r"Z[A-Z0-9]{19}\Z", re.ASCII),  # 中成药: Z + 5 class + 5 name + 4 spec + 5 maker
    "21": re.compile(r"[0-9]{15}\Z", re.ASCII),  # 医疗服务项目: 00 + 9 price-norm + 2 sub-item + 2 surcharge
}
ITEM_CODE_RULES = {
    "11": "西药 code: X + 22 upper-case letters/digits (23 chars)",
    "12": "中成药 code: Z + 19 upper-case letters/digits (20 chars)",
    "13": "中药饮片 code: non-empty text of at most 50 characters",
    "21": "医疗服务项目 code: 15 digits",
    "31": "医用耗材 code: C + 19 digits (20) or C + 26 digits (27)",
}
EXAM_RESULTS = ("", "P", "N")


def item_code_ok(item_type: str, code: str) -> bool:
    """Whether ``code`` has the format of ``item_type``'s item codes (False for an unknown type)."""
    pattern = ITEM_CODE_PATTERNS.get(item_type)
    if pattern is not None:
        return pattern.match(code) is not None
    if item_type == "13":
        return 0 < len(code) <= 50
    if item_type == "31":
        return not codes.validate_consumable_code(code)
    return False


def age_days(birth8: str, charge_iso: str) -> int:
    """Completed days of age on the charge date: charge date − birth date ('YYYYMMDD', 'YYYY-MM-DD…')."""
    born = dt.date(int(birth8[:4]), int(birth8[4:6]), int(birth8[6:8]))
    return (dt.date(int(charge_iso[:4]), int(charge_iso[5:7]), int(charge_iso[8:10])) - born).days


def check_fee_detail(v: dict, birth8: str | None) -> int | None:
    """fee_detail's own checks (stages 2-5); returns patient_age_days (None without an ID number)."""
    if Decimal(v["unit_price"]) <= 0:
        raise RowRejected("nonpositive_price", "unit_price", v["unit_price"], "unit_price > 0")
    item_type = v["item_type"]
    if item_type not in ITEM_CODE_RULES:
        raise RowRejected("bad_item_type", "item_type", item_type, "11 西药, 12 中成药, 13 中药饮片, 21 医疗服务项目 or 31 医用耗材")
    if not item_code_ok(item_type, v["item_code"]):
        raise RowRejected("bad_item_code", "item_code", v["item_code"], ITEM_CODE_RULES[item_type])
    check_line_amount(v["quantity"], v["unit_price"], v["amount"], "amount")
    if (v["exam_result"] or "") not in EXAM_RESULTS:
        raise RowRejected("bad_exam_result", "exam_result", v["exam_result"], "P (阳性), N (阴性) or empty")
    if birth8 is None:
        return None
    days = age_days(birth8, v["charged_at"])
    if days < 0:
        raise RowRejected("charge_before_birth", "charged_at", v["charged_at"],
                          "the charge date precedes the birth date in the ID number")
    return days


# --- audit_rules (reference) -----------------------------------------------------------------------

RULE_SEVERITIES = ("violation", "suspicious")
HOSPITAL_LEVELS = ("基层", "一级", "二级", "三级")
ITEM_PREFIX = re.compile(r"[A-Z0-9]{1,27}\Z", re.ASCII)
# an ICD-10 prefix: a letter, then digits / '.' / 'x' as a code of the 医保版 list begins
DIAGNOSIS_PREFIX = re.compile(r"[A-Z](?:[0-9](?:[0-9](?:\.(?:[0-9x](?:[0-9x](?:[0-9x](?:x(?:[0-9]{1,3})?)?)?)?)?)?)?)?\Z",
                              re.ASCII)
# rule_type → the parameters it needs (besides item_prefix, which every type but readmission needs)
_RULE_NEEDS = {
    "sex": "allowed_sex M or F",
    "age": "min_age_days or max_age_days",
    "hospital_level": "min_hospital_level (基层/一级/二级/三级)",
    "daily_quantity": "max_quantity > 0",
    "min_interval_days": "days > 0",
    "course_days": "days > 0",
    "repeat_exam": "days > 0",
    "readmission": "days > 0",
    "included_in": "main_item_prefix",
    "indication": "diagnosis_prefixes",
    "positive_rate": "exam_class and threshold in [0, 1]",
}


def check_audit_rule(v: dict) -> None:
    """One rule row of an audit_rules file (DOMAIN §3): raises RowRejected with the first defect."""
    rule_type = v["rule_type"]
    if rule_type not in _RULE_TYPES:
        raise RowRejected("unknown_rule_type", "rule_type", rule_type, "one of " + ", ".join(_RULE_TYPES))
    if v["severity"] not in RULE_SEVERITIES:
        raise RowRejected("bad_severity", "severity", v["severity"], "violation or suspicious")
    prefix = v["item_prefix"]
    if rule_type == "readmission":
        if prefix:
            raise RowRejected("missing_rule_parameter", "item_prefix", prefix, "a readmission rule has no item_prefix")
    elif not prefix:
        raise RowRejected("missing_rule_parameter", "item_prefix", "", f"a {rule_type} rule needs item_prefix")
    elif not ITEM_PREFIX.match(prefix):
        raise RowRejected("bad_item_prefix", "item_prefix", prefix, "upper-case letters and digits, at most 27 characters")

    def need(column: str, ok: bool, bad: bool = False) -> None:
        if not ok:
            value = v[column]
            raise RowRejected("missing_rule_parameter", column, value or "",
                              f"a {rule_type} rule needs {_RULE_NEEDS[rule_type]}" + (" (out of range)" if bad else ""))

    if rule_type == "sex":
        need("allowed_sex", bool(v["allowed_sex"]))
        need("allowed_sex", v["allowed_sex"] in ("M", "F"), bad=True)
    elif rule_type == "age":
        need("min_age_days", bool(v["min_age_days"] or v["max_age_days"]))
        if v["min_age_days"] and v["max_age_days"]:
            need("max_age_days", int(v["max_age_days"]) >= int(v["min_age_days"]), bad=True)
    elif rule_type == "hospital_level":
        need("min_hospital_level", bool(v["min_hospital_level"]))
        need("min_hospital_level", v["min_hospital_level"] in HOSPITAL_LEVELS, bad=True)
    elif rule_type == "daily_quantity":
        need("max_quantity", bool(v["max_quantity"]))
        need("max_quantity", Decimal(v["max_quantity"]) > 0, bad=True)
    elif rule_type in ("min_interval_days", "course_days", "repeat_exam", "readmission"):
        need("days", bool(v["days"]))
        need("days", int(v["days"]) > 0, bad=True)
    elif rule_type == "included_in":
        main = v["main_item_prefix"]
        need("main_item_prefix", bool(main))
        if not ITEM_PREFIX.match(main):
            raise RowRejected("bad_item_prefix", "main_item_prefix", main, "upper-case letters and digits, at most 27 characters")
        if v["days"] and int(v["days"]) != 0:
            raise RowRejected("missing_rule_parameter", "days", v["days"], "an included_in rule has days empty (one visit) or 0 (one day)")
    elif rule_type == "indication":
        prefixes = v["diagnosis_prefixes"]
        need("diagnosis_prefixes", bool(prefixes))
        need("diagnosis_prefixes", all(DIAGNOSIS_PREFIX.match(p) for p in prefixes.split("|")), bad=True)
    elif rule_type == "positive_rate":
        need("exam_class", bool(v["exam_class"]))
        need("threshold", v["threshold"] is not None)
        need("threshold", 0 <= Decimal(v["threshold"]) <= 1, bad=True)
    if v["effective_to"] and v["effective_to"] < v["effective_from"]:
        raise RowRejected("effective_dates_reversed", "effective_to", v["effective_to"],
                          f"effective_to ≥ effective_from {v['effective_from']}")


# --- the fast path ------------------------------------------------------------------------------
#
# Nearly every delivered row is clean. For those, the loader runs a function compiled once per file
# layout (straight-line code for the file's column positions, memo tables for values that repeat:
# dates, times, amounts, codes) that either returns the row's COPY line or gives up. It gives up on
# anything that is not plainly valid, and the row is then checked again by the general path above
# (:func:`convert`, :func:`check_purchase` / :func:`check_usage` / :func:`check_claim`), which
# decides the reason. So the fast path never decides a reason: it must only accept nothing that the
# general path refuses, and write what the general path writes (tests/test_loader.py compares the
# two on every row of generated cities with defects).


class _Memo(dict):
    """value → fn(value), computed once per distinct value; emptied (but for ``seed``) at ``limit`` entries."""

    __slots__ = ("fn", "limit", "seed")

    def __init__(self, fn, limit: int = 100_000, seed: dict | None = None):
        super().__init__(seed or {})
        self.fn = fn
        self.limit = limit
        self.seed = dict(seed or {})

    def __missing__(self, key):
        value = self.fn(key)
        if len(self) >= self.limit:
            self.clear()
            self.update(self.seed)
        self[key] = value
        return value


# a time that parse_datetime writes unchanged, 'HH:MM:SS', is one key of each (anything else: KeyError)
_FAST_HH_MM = {f"{h:02d}:{m:02d}": True for h in range(24) for m in range(60)}
_FAST_SS = {f":{s:02d}": True for s in range(60)}


_FAST_NUMBER = {  # plain numbers within the decimals allowed (the general path also strips ',')
    kind: re.compile(rf"[+-]?[0-9]{{1,{INT_DIGITS[kind]}}}(?:\.[0-9]{{1,{n}}})?\Z").match for kind, n in DECIMALS.items()
}
_FAST_INT = re.compile(r"[0-9]{1,9}\Z").match


def _cents(value: str) -> int | None:
    """A money amount (at most 2 decimals, no thousands separators) in integer cents; None otherwise."""
    if _FAST_NUMBER["money"](value) is None:
        return None
    whole, _, frac = value.partition(".")
    cents = abs(int(whole)) * 100 + int(frac.ljust(2, "0"))
    return -cents if value[0] == "-" else cents


def _sha256_class():
    """CPython's built-in SHA-256 (cheaper per short message than OpenSSL's), else hashlib's."""
    import hashlib

    for module in ("_sha256", "_sha2"):
        try:
            return __import__(module).sha256
        except (ImportError, AttributeError):
            continue
    return hashlib.sha256


def fast_hmac(key: bytes):
    """``value → HMAC-SHA256(key, value).hexdigest()`` from precomputed inner and outer states."""
    import hashlib

    sha256 = _sha256_class()
    block = (key if len(key) <= 64 else hashlib.sha256(key).digest()).ljust(64, b"\0")
    icopy = sha256(bytes(b ^ 0x36 for b in block)).copy
    ocopy = sha256(bytes(b ^ 0x5C for b in block)).copy

    def digest(value: str) -> str:
        h = icopy()
        h.update(value.encode())
        o = ocopy()
        o.update(h.digest())
        return o.hexdigest()

    return digest


# the free-text columns of each extract: everything else the fast path writes has been checked
# against a pattern or a code list, so only these can hold a character that needs CSV quoting
_FREE_TEXT = {
    "purchase": ("purchase_line_id", "product_name", "spec", "manufacturer", "invoice_no"),
    "usage": ("usage_id", "visit_id", "dept_code", "surgery_id", "batch_no"),
    "claim": ("settlement_id", "visit_id", "drg_code", "reversal_of"),
    # item_code: a 中药饮片 code (item_type 13) is free text
    "fee_detail": ("fee_line_id", "visit_id", "item_code", "item_name", "dept_code", "doctor_code"),
}
EXTRACT_KEYS = {"purchase": "purchase_line_id", "usage": "usage_id", "claim": "settlement_id",
                "fee_detail": "fee_line_id"}
# extracts that store patient_age_days (after the pseudonym columns): the timestamp column whose date it is on
AGE_ON = {"fee_detail": "charged_at"}


class FastContext:
    """Memo tables shared by the fast row functions of one load (bounded, so memory stays flat).

    ``pseudonymise`` maps an ID number to its pseudonym; when it carries its key (``_key``), the
    HMAC is computed by :func:`fast_hmac` (exactly HMAC-SHA256, checked against ``pseudonymise``
    here) without ``hmac.new``'s per-call set-up.
    """

    def __init__(self, pseudonymise, catalog: dict[str, str] | None, today: dt.date, doctor_pattern: re.Pattern):
        self.catalog = catalog
        self.dates = _Memo(parse_date, 20_000, {"": ""})  # '' stays '' (an optional date left empty)
        self.cents = _Memo(_cents, 50_000, {"": 0})  # '' is 0, as money(None) in check_claim
        self.numbers = {
            kind: _Memo(lambda v, m=m: m(v) is not None, 20_000, {"": True}) for kind, m in _FAST_NUMBER.items()
        }
        self.ints = _Memo(lambda v: _FAST_INT(v) is not None, 20_000, {"": True})
        self.flags = dict(FLAGS, **{"": ""})

        def birth_year(b: str) -> str | None:
            """Birth year text of birth date 'YYYYMMDD' when validate_id_number accepts it, else None."""
            if codes.validate_id_number(f"110101{b}0000", today) == "birth_date":
                return None
            return str(int(b[:4]))

        self.births = _Memo(birth_year, 50_000)
        self.pseudonym = pseudonymise
        key = getattr(pseudonymise, "_key", None)
        if isinstance(key, bytes):
            digest = fast_hmac(key)
            if all(digest(p) == pseudonymise(p) for p in ("sample-0123456789", "x", "身份证" * 30)):
                self.pseudonym = digest
        self.icd = _Memo(lambda v: not codes.validate_icd10(v), 20_000)
        self.uscc = _Memo(lambda v: not codes.validate_uscc(v), 20_000)
        self.udi = _Memo(lambda v: not codes.validate_udi_di(v), 20_000, {"": True})
        self.doctor = _Memo(lambda v: doctor_pattern.match(v) is not None, 20_000)

        def consumable_ok(code: str) -> bool:
            if codes.validate_consumable_code(code):
                return False
            return catalog is None or code in catalog or (len(code) == 27 and code[:20] in catalog)

        self.consumable = _Memo(consumable_ok, 20_000)
        self.item_codes = _Memo(lambda tc: item_code_ok(*tc), 50_000)  # (item_type, item_code) → ok

        def birth_ordinal(b: str) -> int:  # 'YYYYMMDD' (already validated) → proleptic ordinal
            return dt.date(int(b[:4]), int(b[4:6]), int(b[6:])).toordinal()

        self.birth_ordinals = _Memo(birth_ordinal, 50_000)
        self.date_ordinals = _Memo(lambda d: dt.date.fromisoformat(d).toordinal(), 20_000)
        self.amounts = _Memo(lambda qpa: _amount_ok(*qpa), 50_000)  # (quantity, price, amount) → identity holds
        self._compiled: dict[str, object] = {}

    def row_function(self, extract: str, columns: tuple[Column, ...], positions: list[int | None], ncols: int,
                     extras: list[tuple[int, str]], folder_hosp: str, prefix: str, keys: set | None = None):
        """``fast_row(fields, n)`` → the COPY line (str) or None (use the general path), for one file.

        ``keys``: a set that receives the natural key of every row accepted. Returns None instead of
        a function when the layout is not one the fast path handles.
        """
        used = [p for p in positions if p is not None]
        lineage = prefix + folder_hosp  # 'load_id,business_date,source_file,' and the hospital code
        if (extract not in _FREE_TEXT or len(used) != len(set(used)) or lineage.count(",") != 3
                or any(c in lineage for c in '"\r\n')):
            return None
        src = _fast_source(extract, columns, positions, ncols, extras, keys is not None)
        code = self._compiled.get(src)
        if code is None:
            code = self._compiled[src] = compile(src, f"<fast row: {extract}>", "exec")
        env = {
            "HOSP": folder_hosp,
            "PREFIX": prefix,
            "STRIP": str.strip,
            "DATES": self.dates,
            "HH_MM": _FAST_HH_MM,
            "SS": _FAST_SS,
            "CENTS": self.cents,
            "NUMBER": self.numbers,
            "INTS": self.ints,
            "FLAGS": self.flags,
            "RIC": codes._RIC_RE.match,
            "RIC_CHECK": codes._RIC_CHECK,
            "BIRTH": self.births,
            "SEX": {d: ",M," if int(d) % 2 else ",F," for d in "0123456789"},
            "PSEUDONYM": self.pseudonym,
            "ICD": self.icd,
            "USCC": self.uscc,
            "UDI": self.udi,
            "DOCTOR": self.doctor,
            "CONSUMABLE": self.consumable,
            "ITEM": self.item_codes,
            "BORD": self.birth_ordinals,
            "DORD": self.date_ordinals,
            "AMOUNTS": self.amounts,
            "EXAM": dict.fromkeys(EXAM_RESULTS, True),
            "INS": codes.INSURANCE_TYPES,
            "MED": codes.MEDICAL_CATEGORIES,
            "INPATIENT": codes.INPATIENT_CATEGORIES,
            "amount_ok": _amount_ok,
            "json_extra": _json_extra,
            "KEYS_ADD": keys.add if keys is not None else None,
        }
        exec(code, env)  # noqa: S102 - source generated by _fast_source from the contract's columns
        return env["fast_row"]


def _amount_ok(q: str, p: str, amount: str) -> bool:
    """:func:`check_line_amount` without raising (False when the general path would refuse or fail)."""
    try:
        expected = (Decimal(q) * Decimal(p)).quantize(CENT, ROUND_HALF_UP)
        return not abs(expected - Decimal(amount)) > CENT
    except ArithmeticError:
        return False


def _json_extra(pairs) -> str:
    """The ``extra`` column as CSV text (the general path's JSON, quoted as csv.writer quotes it)."""
    import json

    text = json.dumps({h: v for h, v in pairs if v != ""}, ensure_ascii=False)
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _fast_source(extract: str, columns: tuple[Column, ...], positions: list[int | None], ncols: int,
                 extras: list[tuple[int, str]], track_keys: bool) -> str:
    """Python source of ``fast_row(r, n)`` for one extract file layout (see the section comment).

    Any exception inside means "not plainly valid" (e.g. a memo gave None for a bad date and the
    concatenation failed): the row goes to the general path.
    """
    var: dict[str, str] = {}  # column name → local variable holding its text ('' = NULL)
    kinds: dict[str, str] = {}
    for col, pos in zip(columns, positions):
        var[col.name] = "''" if pos is None else f"f{pos}"
        kinds[col.name] = col.kind
    V = var.__getitem__
    claim = extract == "claim"
    age_on = AGE_ON.get(extract)
    B: list[str] = [  # body, inside try
        f"{', '.join(f'f{i}' for i in range(ncols))}{',' if ncols == 1 else ''} = map(STRIP, r)",
    ]
    required = [V(c.name) for c, p in zip(columns, positions) if c.required and p is not None]
    if required:
        B += [f"if not ({' and '.join(required)}):", "    return None"]
    maybe_none: list[str] = []  # values a memo may have turned into None
    out: list[str] = []
    for col, pos in zip(columns, positions):
        v = V(col.name)
        k = col.kind
        if pos is None:
            out.append("',,'" if k == "id_number" else "''")
            continue
        if k == "id_number":  # codes.validate_id_number, then pseudonym, sex and birth year
            b = [
                f"RIC({v}).end",  # AttributeError on None: not 17 digits and a check character
                f"if RIC_CHECK[2 * int({v}[:17], 13) % 11] != {v}[17]:",
                "    return None",
                *([f"born = {v}[6:14]"] if age_on else []),
                f"{v} = PSEUDONYM({v}) + SEX[{v}[16]] + BIRTH[{v}[6:14]]",  # TypeError: bad birth date
            ]
            if col.required:
                B += b
            else:
                B += [f"if {v}:"] + ["    " + x for x in b] + ["else:", f"    {v} = ',,'"]
                if age_on:
                    B.append("    born = ''")
            if age_on:  # patient_age_days, computed once the charge date is known
                out.append(v)
                out.append("age")
                continue
        elif k == "date":
            B.append(f"{v} = DATES[{v}]")
            maybe_none.append(v)
        elif k == "timestamp":
            B += [
                f"d, s, t = {v}.partition(' ')",
                "HH_MM[t[:5]], SS[t[5:]]",  # KeyError: not HH:MM:SS
                f"{v} = DATES[d] + ' ' + t",  # TypeError: not a date
            ]
        elif k in DECIMALS:
            if not (claim and k == "money"):  # a claim's amounts are checked together below
                B += [f"if not NUMBER[{k!r}][{v}]:", "    return None"]
        elif k == "flag":
            B.append(f"{v} = FLAGS[{v}]")  # KeyError: not a flag
        elif k == "int":
            B += [f"if not INTS[{v}]:", "    return None"]
        elif k != "text":
            raise ValueError(k)
        out.append(v)
    if claim:  # the amounts in integer cents (None when not a plain amount: TypeError below)
        for name in ("total_amount", "fund_paid", "other_fund_paid", "account_paid", "cash_paid",
                     "negotiated_drug_amount"):
            B.append(f"c_{name} = CENTS[{var[name]}]")
    if maybe_none:
        B += [f"if {' or '.join(f'{x} is None' for x in maybe_none)}:", "    return None"]
    # stage 2: zero quantity, the folder's hospital
    if "quantity" in var:
        B += [f"if not {V('quantity')}.strip('+-0.'):", "    return None"]
    B += [f"if {V('hospital_code')} != HOSP:", "    return None"]
    # stages 3-5 per extract (any failure: the general path finds the reason)
    if extract == "purchase":
        B += [
            f"if {V('unit_price')}[0] == '-' or not {V('unit_price')}.lstrip('+').strip('0.'):",
            "    return None",
            f"if not (USCC[{V('supplier_uscc')}] and CONSUMABLE[{V('consumable_code')}] and UDI[{V('udi_di')}]):",
            "    return None",
            f"if not amount_ok({V('quantity')}, {V('unit_price')}, {V('amount')}):",
            "    return None",
            f"if {V('delivery_date')} < {V('order_date')}:",
            "    return None",
        ]
    elif extract == "usage":
        B += [
            f"if {V('charge_unit_price')}[0] == '-' or not {V('charge_unit_price')}.lstrip('+').strip('0.'):",
            "    return None",
            f"if not (DOCTOR[{V('doctor_code')}] and CONSUMABLE[{V('consumable_code')}] and UDI[{V('udi_di')}]):",
            "    return None",
            f"if not amount_ok({V('quantity')}, {V('charge_unit_price')}, {V('charge_amount')}):",
            "    return None",
        ]
    elif extract == "fee_detail":
        B += [
            f"if {V('unit_price')}[0] == '-' or not {V('unit_price')}.lstrip('+').strip('0.'):",
            "    return None",
            f"if not ITEM[{V('item_type')}, {V('item_code')}]:",
            "    return None",
            f"if not AMOUNTS[{V('quantity')}, {V('unit_price')}, {V('amount')}]:",
            "    return None",
            f"EXAM[{V('exam_result')}]",  # KeyError: not P, N or empty
        ]
    else:
        B += [
            f"if {V('insurance_type')} not in INS or {V('medical_category')} not in MED"
            f" or not ICD[{V('principal_diagnosis')}]:",
            "    return None",
            "parts = c_fund_paid + c_other_fund_paid + c_account_paid + c_cash_paid",  # TypeError: bad amount
            "if c_total_amount - parts > 1 or parts - c_total_amount > 1:",
            "    return None",
            "if (c_negotiated_drug_amount < 0 or c_negotiated_drug_amount > c_fund_paid) if c_fund_paid >= 0"
            " else (c_negotiated_drug_amount < c_fund_paid or c_negotiated_drug_amount > 0):",
            "    return None",
            f"if {V('medical_category')} in INPATIENT and not ({V('admission_date')} and {V('discharge_date')}):",
            "    return None",
            f"if {V('admission_date')} and {V('discharge_date')} and {V('discharge_date')} < {V('admission_date')}:",
            "    return None",
        ]
    if age_on:  # completed days of age on the charge date (< 0: the general path names the defect)
        B += [
            "if born:",
            f"    age = DORD[{V(age_on)}[:10]] - BORD[born]",
            "    if age < 0:",
            "        return None",
            "else:",
            "    age = ''",
        ]
    # a free-text field holding a comma, quote or line break needs CSV quoting: such rows go to csv.writer
    free = [V(c) for c in _FREE_TEXT[extract] if var.get(c, "''") != "''"]
    if free:
        B += [
            f"x = {' + '.join(free)}",
            "if ',' in x or '\"' in x or '\\n' in x or '\\r' in x:",
            "    return None",
        ]
    if track_keys:
        B.append(f"KEYS_ADD({V(EXTRACT_KEYS[extract])})")
    fields = "},{".join(out)
    line = f"f'{{PREFIX}}{{n}},{{{fields}}},"
    if extras:
        pairs = ", ".join(f"({h!r}, r[{i}])" for i, h in extras)
        B.append(f"return {line}' + json_extra(({pairs},)) + '\\n'")
    else:
        B.append(f"return {line}\\n'")
    return "def fast_row(r, n):\n    try:\n" + "".join(f"        {b}\n" for b in B) + (
        "    except Exception:\n        return None\n"
    )
