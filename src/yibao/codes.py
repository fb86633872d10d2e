"""National code validators (docs/codes.md): fast, pure Python, no dependencies.

The loader calls these once per row (about a million rows a night), so each validator is a
precompiled regular expression plus table look-ups. Every ``validate_*`` returns ``None`` when the
code is valid, else a short reason (``'format'``, ``'check_char'``, ``'check_digit'``,
``'birth_date'``). Validators are strict: no trimming, no case folding (the loader trims fields;
``x`` is not ``X``).

Check algorithms (cross-checked against python-stdnum in tests/test_codes.py):

- 统一社会信用代码 (GB 32100-2015): 18 chars; weights 1,3,9,…,28 over the first 17 character
  values (alphabet ``0123456789ABCDEFGHJKLMNPQRTUWXY``); check = (31 − Σ mod 31) mod 31.
  Format per the standard: registration authority + entity type (2 alphabet chars), 6-digit
  region, 9-char subject code, check char. (python-stdnum additionally requires the first two
  characters to be digits; real codes such as ``N2…`` 农民专业合作社 or ``Y1…`` have letters.)
- 居民身份证号 (GB 11643, ISO 7064 MOD 11-2): weights 7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2;
  check = (12 − Σ mod 11) mod 11, 10 → ``X``; birth date real and not in the future.
- UDI-DI / GTIN-14: GS1 mod 10, weights 3,1,3,… from the rightmost payload digit.
"""

from __future__ import annotations

import datetime as _dt
import re
from functools import lru_cache

__all__ = [
    "INPATIENT_CATEGORIES",
    "INSURANCE_TYPES",
    "MEDICAL_CATEGORIES",
    "USCC_ALPHABET",
    "consumable_brand",
    "consumable_category",
    "gs1_check_digit",
    "hospital_region",
    "id_number_sex_birth_year",
    "ric_check_char",
    "uscc_check_char",
    "validate_consumable_code",
    "validate_doctor_code",
    "validate_hospital_code",
    "validate_icd10",
    "validate_id_number",
    "validate_udi_di",
    "validate_uscc",
]

# --- code sets --------------------------------------------------------------------------------

INSURANCE_TYPES: dict[str, str] = {"310": "职工基本医疗保险", "390": "城乡居民基本医疗保险"}

MEDICAL_CATEGORIES: dict[str, str] = {
    "11": "普通门诊",
    "12": "门诊挂号",
    "13": "急诊",
    "14": "门诊慢特病",
    "16": "中医特色门诊",
    "21": "普通住院",
    "22": "外伤住院",
    "23": "转外诊治住院",
    "24": "急诊转住院",
    "28": "日间手术",
    "41": "定点药店购药",
    "51": "生育门诊",
    "52": "生育住院",
}

# Inpatient categories need admission and discharge dates (docs/codes.md; R10 inpatient averages).
INPATIENT_CATEGORIES: frozenset[str] = frozenset({"21", "22", "23", "24", "28", "52"})

# --- 统一社会信用代码 (GB 32100-2015) ------------------------------------------------------------

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
# Per position: char → value × weight (saves a multiplication and a dict look-up per char).
_USCC_TABLE = tuple({c: v * w for c, v in _USCC_VALUE.items()} for w in _USCC_WEIGHTS)
_USCC_RE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}\Z")


def uscc_check_char(first17: str) -> str:
    """The GB 32100-2015 check character of the first 17 characters (ValueError if not 17 valid chars)."""
    if len(first17) != 17:
        raise ValueError(f"expected 17 characters, got {len(first17)}")
    try:
        total = sum(t[c] for t, c in zip(_USCC_TABLE, first17))
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not in the USCC alphabet") from None
    return USCC_ALPHABET[-total % 31]


def validate_uscc(code: str) -> str | None:
    """统一社会信用代码: None if valid, else 'format' or 'check_char'."""
    if not _USCC_RE.match(code):
        return "format"
    t = _USCC_TABLE
    total = (
        t[0][code[0]] + t[1][code[1]] + t[2][code[2]] + t[3][code[3]] + t[4][code[4]] + t[5][code[5]]
        + t[6][code[6]] + t[7][code[7]] + t[8][code[8]] + t[9][code[9]] + t[10][code[10]]
        + t[11][code[11]] + t[12][code[12]] + t[13][code[13]] + t[14][code[14]] + t[15][code[15]]
        + t[16][code[16]]
    )
    if USCC_ALPHABET[-total % 31] != code[17]:
        return "check_char"
    return None


# --- 居民身份证号 (GB 11643-1999, ISO 7064 MOD 11-2) ------------------------------------------------

_RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RIC_CHECK = "10X98765432"  # index Σ mod 11 → check char, i.e. (12 − Σ mod 11) mod 11 with 10 → X
_RIC_RE = re.compile(r"[0-9]{17}[0-9X]\Z")
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def ric_check_char(first17: str) -> str:
    """The GB 11643 check character ('0'-'9' or 'X') of the first 17 digits (ValueError otherwise)."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("expected 17 ASCII digits")
    # Σ wᵢdᵢ with wᵢ = 2^(18-i) mod 11 equals 2 × int(first17, base 13) mod 11, since 13 ≡ 2 (mod 11)
    return _RIC_CHECK[2 * int(first17, 13) % 11]


def _real_date(y: int, m: int, d: int) -> bool:
    if not 1 <= m <= 12 or d < 1 or y < 1:
        return False
    if m == 2 and d == 29:
        return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    return d <= _MONTH_DAYS[m]


# 'YYYYMMDD' → is it a real date; bounded by the distinct birth dates seen (tens of thousands)
_birth_cache: dict[str, bool] = {}
_today_cache: dict[_dt.date, str] = {}


def validate_id_number(code: str, today: _dt.date | None = None) -> str | None:
    """居民身份证号: None if valid, else 'format', 'birth_date' or 'check_char'.

    The birth date (characters 7-14) must be a real date not after ``today`` (default: the
    machine's date; the loader passes its run date so results are reproducible).
    """
    if not _RIC_RE.match(code):
        return "format"
    birth = code[6:14]
    real = _birth_cache.get(birth)
    if real is None:
        real = _real_date(int(birth[:4]), int(birth[4:6]), int(birth[6:]))
        if len(_birth_cache) < 200_000:
            _birth_cache[birth] = real
    if not real:
        return "birth_date"
    if today is None:
        today = _dt.date.today()
    today_text = _today_cache.get(today)
    if today_text is None:
        today_text = _today_cache.setdefault(today, f"{today.year:04d}{today.month:02d}{today.day:02d}")
    if birth > today_text:  # same-length digit strings compare like the dates they spell
        return "birth_date"
    # the weights are 2^(18-i) mod 11 and 13 ≡ 2 (mod 11): one C-level int() instead of 17 look-ups
    if _RIC_CHECK[2 * int(code[:17], 13) % 11] != code[17]:
        return "check_char"
    return None


def id_number_sex_birth_year(code: str) -> tuple[str, int]:
    """('M' | 'F', birth year) of an 18-char ID number: the 17th digit is odd for men."""
    return ("M" if int(code[16]) % 2 else "F"), int(code[6:10])


# --- UDI-DI / GTIN-14 (GS1 mod 10) --------------------------------------------------------------

_GTIN14_RE = re.compile(r"[0-9]{14}\Z")
_GS1_TABLE = tuple({str(d): d * w for d in range(10)} for w in (3, 1) * 6 + (3,))  # 13 payload positions


def gs1_check_digit(payload13: str) -> str:
    """GS1 mod-10 check digit of a 13-digit GTIN-14 payload (ValueError otherwise)."""
    if len(payload13) != 13 or not payload13.isascii() or not payload13.isdigit():
        raise ValueError("expected 13 ASCII digits")
    return str(-sum(t[c] for t, c in zip(_GS1_TABLE, payload13)) % 10)


def validate_udi_di(code: str) -> str | None:
    """UDI-DI as GTIN-14: None if valid, else 'format' or 'check_digit'."""
    if not _GTIN14_RE.match(code):
        return "format"
    t = _GS1_TABLE
    total = (
        t[0][code[0]] + t[1][code[1]] + t[2][code[2]] + t[3][code[3]] + t[4][code[4]] + t[5][code[5]]
        + t[6][code[6]] + t[7][code[7]] + t[8][code[8]] + t[9][code[9]] + t[10][code[10]]
        + t[11][code[11]] + t[12][code[12]]
    )
    if str(-total % 10) != code[13]:
        return "check_digit"
    return None


# --- 医保医用耗材代码 ------------------------------------------------------------------------------

_CONSUMABLE_RE = re.compile(r"C(?:[0-9]{19}|[0-9]{26})\Z")


def validate_consumable_code(code: str) -> str | None:
    """20 chars ``C`` + 19 digits, or 27 chars (``C`` + 26 digits): None or 'format'."""
    return None if _CONSUMABLE_RE.match(code) else "format"


def consumable_brand(code: str) -> str:
    """The 5-digit 生产企业 segment: characters 16-20 (1-based)."""
    return code[15:20]


def consumable_category(code: str) -> str:
    """The 分类 code: the first 7 characters (C + 2 + 2 + 2)."""
    return code[:7]


# --- 定点医疗机构 and 医保医师 codes -----------------------------------------------------------------

_HOSPITAL_RE = re.compile(r"H[0-9]{11}\Z")
DEFAULT_DOCTOR_PATTERN = r"^D\d{12}$"


def validate_hospital_code(code: str) -> str | None:
    """``H`` + 6-digit region + 5-digit sequence: None or 'format'."""
    return None if _HOSPITAL_RE.match(code) else "format"


def hospital_region(code: str) -> str:
    """The 6-digit region (county) code of a hospital code."""
    return code[1:7]


@lru_cache(maxsize=32)
def _doctor_re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII)


def validate_doctor_code(code: str, pattern: str = DEFAULT_DOCTOR_PATTERN) -> str | None:
    """医保医师代码 against a configurable pattern (default ``D`` + 12 digits): None or 'format'."""
    # fullmatch so a pattern without anchors (or ``$`` before a trailing newline) cannot pass junk
    return None if _doctor_re(pattern).fullmatch(code) else "format"


# --- 医保版 ICD-10 -------------------------------------------------------------------------------

# letter, 2 digits, dot, 3 of digit/x, optional x + 3 digits, optional +asterisk code (X99* or X99.9*)
_ICD10_RE = re.compile(r"[A-Z][0-9]{2}\.[0-9x]{3}(?:x[0-9]{3})?(?:\+[A-Z][0-9]{2}(?:\.[0-9])?\*)?\Z")


def validate_icd10(code: str) -> str | None:
    """医保版 ICD-10 diagnosis code (``A00.000``, ``I10.x00x002``, ``A01.000x005+J17.0*``): None or 'format'."""
    return None if _ICD10_RE.match(code) else "format"
