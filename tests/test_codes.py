"""National code validators (yibao.codes) against python-stdnum, the real examples and boundaries.

No hypothesis here: generated cases come from ``random.Random`` with fixed seeds, so a failure
reproduces exactly.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
from stdnum import ean as std_ean
from stdnum.cn import ric as std_ric
from stdnum.cn import uscc as std_uscc
from stdnum.exceptions import ValidationError

from yibao import codes
from yibao.config import PROJECT_ROOT

REFERENCE = PROJECT_ROOT / "tests" / "data" / "reference"  # the national lists, vendored
DIGITS = "0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
TODAY = dt.date(2026, 1, 15)


def std_ok(module, value: str) -> bool:
    """stdnum's verdict on a value it would not need to clean (our validators never clean)."""
    try:
        return module.validate(value) == value
    except ValidationError:
        return False


def substitutions(code: str, alphabet: str):
    for i, old in enumerate(code):
        for new in alphabet:
            if new != old:
                yield code[:i] + new + code[i + 1:]


def transpositions(code: str):
    for i in range(len(code) - 1):
        if code[i] != code[i + 1]:
            yield code[:i] + code[i + 1] + code[i] + code[i + 2:]


# --- 统一社会信用代码 ----------------------------------------------------------------------------


def random_uscc(rng: random.Random, *, digit_prefix: bool = True) -> str:
    alphabet = codes.USCC_ALPHABET
    head = "".join(rng.choice(DIGITS if digit_prefix else alphabet) for _ in range(2))
    region = "".join(rng.choice(DIGITS) for _ in range(6))
    subject = "".join(rng.choice(alphabet) for _ in range(9))
    first17 = head + region + subject
    return first17 + codes.uscc_check_char(first17)


@pytest.mark.parametrize("code", ["914403001922038216", "91110000600037341L"])
def test_uscc_real_examples(code):
    assert codes.validate_uscc(code) is None
    assert codes.uscc_check_char(code[:17]) == code[17]
    assert std_ok(std_uscc, code)


def test_uscc_check_char_matches_stdnum():
    rng = random.Random(20151)
    for _ in range(5000):
        first17 = "".join(rng.choice(codes.USCC_ALPHABET) for _ in range(17))
        assert codes.uscc_check_char(first17) == std_uscc.calc_check_digit(first17 + "0"), first17


def test_uscc_generated_valid_codes_agree_with_stdnum():
    rng = random.Random(32100)
    for _ in range(3000):
        code = random_uscc(rng)
        assert codes.validate_uscc(code) is None, code
        assert std_ok(std_uscc, code), code


def test_uscc_every_single_substitution_rejected_by_both():
    rng = random.Random(7)
    for code in ["914403001922038216", "91110000600037341L"] + [random_uscc(rng) for _ in range(40)]:
        for bad in substitutions(code, DIGITS + UPPER):
            ours = codes.validate_uscc(bad)
            assert ours in ("format", "check_char"), bad
            assert not std_ok(std_uscc, bad), bad


def test_uscc_transpositions_and_random_strings_agree_with_stdnum():
    rng = random.Random(11)
    cases = []
    for _ in range(200):
        cases += list(transpositions(random_uscc(rng)))
    for _ in range(20000):  # about 1 in 31 has a matching check character by chance
        first17 = "".join(rng.choice(DIGITS) for _ in range(8)) + "".join(
            rng.choice(codes.USCC_ALPHABET) for _ in range(9))
        cases.append(first17 + rng.choice(codes.USCC_ALPHABET))
    accepted = 0
    for code in cases:
        ours = codes.validate_uscc(code) is None
        assert ours == std_ok(std_uscc, code), code
        accepted += ours
    assert 400 < accepted < 1500  # the random ones: ~ 20000 / 31


def test_uscc_reasons_and_letter_prefixes():
    good = "91110000600037341L"
    assert codes.validate_uscc(good[:-1]) == "format"
    assert codes.validate_uscc(good + "0") == "format"
    assert codes.validate_uscc(good.lower()) == "format"
    for letter in "IOSVZ":  # not in the alphabet
        assert codes.validate_uscc(good[:10] + letter + good[11:]) == "format"
    assert codes.validate_uscc(good[:17] + "K") == "check_char"
    assert codes.validate_uscc("911A0000600037341L") == "format"  # region (chars 3-8) digits only
    # GB 32100: registration authority and entity type may be letters (N2… 农民专业合作社, Y1…);
    # stdnum demands digits there, we follow the standard.
    rng = random.Random(5)
    lettered = [c for c in (random_uscc(rng, digit_prefix=False) for _ in range(200)) if not c[:2].isdigit()]
    assert lettered
    for code in lettered:
        assert codes.validate_uscc(code) is None
        assert not std_ok(std_uscc, code)


def test_uscc_check_char_rejects_bad_input():
    with pytest.raises(ValueError):
        codes.uscc_check_char("9111000060003734")
    with pytest.raises(ValueError):
        codes.uscc_check_char("9111000060003734I")


# --- 居民身份证号 ---------------------------------------------------------------------------------

# regions stdnum's place table accepts for any birth year ≥ 1990
REGIONS = ("110101", "410702", "410703", "410711", "410721", "410782", "310104", "440305")


def random_id(rng: random.Random, *, earliest=dt.date(1990, 1, 1), latest=dt.date(2025, 12, 31)) -> str:
    birth = earliest + dt.timedelta(rng.randrange((latest - earliest).days + 1))
    first17 = f"{rng.choice(REGIONS)}{birth:%Y%m%d}{rng.randrange(1000):03d}"
    return first17 + codes.ric_check_char(first17)


def weighted_check(first17: str) -> str:
    """GB 11643 written out: weights 7,9,10,…; check = (12 − Σ mod 11) mod 11, 10 → X."""
    total = sum(int(d) * w for d, w in zip(first17, codes._RIC_WEIGHTS))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def test_ric_check_char_matches_formula_and_stdnum():
    rng = random.Random(11643)
    seen_x = False
    for _ in range(20000):
        first17 = "".join(rng.choice(DIGITS) for _ in range(17))
        check = codes.ric_check_char(first17)
        assert check == weighted_check(first17) == std_ric.calc_check_digit(first17 + "0"), first17
        seen_x |= check == "X"
    assert seen_x


def test_id_generated_valid_codes_agree_with_stdnum():
    rng = random.Random(1999)
    for _ in range(3000):
        code = random_id(rng)
        assert codes.validate_id_number(code, TODAY) is None, code
        assert std_ok(std_ric, code), code


def test_id_every_single_substitution_rejected_by_both():
    rng = random.Random(3)
    for code in [random_id(rng) for _ in range(60)] + ["11010519491231002X"]:
        assert codes.validate_id_number(code, TODAY) is None
        for bad in substitutions(code, DIGITS + "X"):
            ours = codes.validate_id_number(bad, TODAY)
            assert ours in ("format", "birth_date", "check_char"), bad
            assert not std_ok(std_ric, bad), bad


def test_id_random_strings_and_transpositions_agree_with_stdnum_checksum():
    """stdnum also checks the birth place against its region table; compare checksum + real date."""
    rng = random.Random(17)
    cases = []
    for _ in range(200):
        cases += list(transpositions(random_id(rng)))
    for _ in range(20000):
        birth = dt.date(1930, 1, 1) + dt.timedelta(rng.randrange(35000))
        day = f"{birth:%Y%m%d}" if rng.random() < 0.9 else f"{rng.randrange(1900, 2030)}{rng.randrange(1, 14):02d}{rng.randrange(0, 33):02d}"
        first17 = f"{rng.randrange(100000, 999999)}{day}{rng.randrange(1000):03d}"
        cases.append(first17 + rng.choice(DIGITS + "X"))
    agree_valid = 0
    for code in cases:
        ours = codes.validate_id_number(code, dt.date.max)
        try:
            std_ric.get_birth_date(code)
            std = code[:17].isdigit() and std_ric.calc_check_digit(code) == code[-1]
        except ValidationError:
            std = False
        assert (ours is None) == std, (code, ours)
        agree_valid += ours is None
    assert agree_valid > 1000


def test_id_boundaries():
    def make(region: str, birth: str, seq: str = "123") -> str:
        return region + birth + seq + codes.ric_check_char(region + birth + seq)

    today = dt.date(2025, 6, 17)
    assert codes.validate_id_number(make("410702", "20250617"), today) is None  # born today
    assert codes.validate_id_number(make("410702", "20250618"), today) == "birth_date"  # tomorrow
    assert codes.validate_id_number(make("410702", "20990101"), today) == "birth_date"
    assert codes.validate_id_number(make("410702", "20230229"), today) == "birth_date"  # not a leap year
    assert codes.validate_id_number(make("410702", "19000229"), today) == "birth_date"  # century, not leap
    assert codes.validate_id_number(make("410702", "20000229"), today) is None  # divisible by 400
    assert codes.validate_id_number(make("410702", "20240229"), today) is None
    assert codes.validate_id_number(make("410702", "19851301"), today) == "birth_date"
    assert codes.validate_id_number(make("410702", "19850431"), today) == "birth_date"
    assert codes.validate_id_number(make("410702", "19850100"), today) == "birth_date"
    assert codes.validate_id_number(make("410702", "00000101"), today) == "birth_date"
    good = make("410702", "19850715")
    assert codes.validate_id_number(good[:17] + ("0" if good[17] != "0" else "1"), today) == "check_char"
    assert codes.validate_id_number(good[:17], today) == "format"
    assert codes.validate_id_number(good + "1", today) == "format"
    assert codes.validate_id_number("A" + good[1:], today) == "format"
    assert codes.validate_id_number(" " + good[:17], today) == "format"
    # a check character 'X' is upper case; 'x' is a format error (the loader does not fold case)
    x_code = "11010519491231002X"
    assert codes.validate_id_number(x_code, today) is None
    assert codes.validate_id_number(x_code.lower(), today) == "format"
    # default today = the machine's date: a birth date far in the past is fine, one in 2999 is not
    assert codes.validate_id_number(good) is None
    assert codes.validate_id_number(make("410702", "29990101")) == "birth_date"


def test_id_sex_and_birth_year():
    assert codes.id_number_sex_birth_year("11010519491231002X") == ("F", 1949)  # 17th digit 2: even
    assert codes.id_number_sex_birth_year("360426199101010071") == ("M", 1991)  # 7: odd
    rng = random.Random(8)
    for _ in range(200):
        code = random_id(rng)
        sex, year = codes.id_number_sex_birth_year(code)
        assert year == int(code[6:10])
        assert sex == ("M" if int(code[16]) % 2 else "F")


# --- UDI-DI / GTIN-14 --------------------------------------------------------------------------


def random_gtin14(rng: random.Random) -> str:
    payload = "".join(rng.choice(DIGITS) for _ in range(13))
    return payload + codes.gs1_check_digit(payload)


def test_gs1_check_digit_matches_stdnum():
    rng = random.Random(14)
    for _ in range(10000):
        payload = "".join(rng.choice(DIGITS) for _ in range(13))
        assert codes.gs1_check_digit(payload) == std_ean.calc_check_digit(payload)
    assert codes.gs1_check_digit("9841234567890") == "8"  # stdnum's documented GTIN example
    with pytest.raises(ValueError):
        codes.gs1_check_digit("984123456789")


def test_udi_generated_substituted_and_transposed_agree_with_stdnum():
    rng = random.Random(41)
    valid = [random_gtin14(rng) for _ in range(3000)] + ["98412345678908", "06901234567892"]
    for code in valid:
        assert codes.validate_udi_di(code) is None
        assert std_ok(std_ean, code)
    for code in valid[:60]:
        for bad in substitutions(code, DIGITS):
            assert codes.validate_udi_di(bad) == "check_digit", bad
            assert not std_ok(std_ean, bad), bad
    undetected = 0
    for code in valid[:300]:
        for bad in transpositions(code):  # GS1 misses swaps of digits that differ by 5
            ours = codes.validate_udi_di(bad) is None
            assert ours == std_ok(std_ean, bad), bad
            undetected += ours
    assert undetected > 0
    for _ in range(10000):
        code = "".join(rng.choice(DIGITS) for _ in range(14))
        assert (codes.validate_udi_di(code) is None) == std_ok(std_ean, code), code


def test_udi_formats():
    assert codes.validate_udi_di("9841234567890") == "format"  # EAN-13: stdnum accepts, we want GTIN-14
    assert codes.validate_udi_di("984123456789080") == "format"
    assert codes.validate_udi_di("9841234567890A") == "format"
    assert codes.validate_udi_di("98412345678909") == "check_digit"


# --- consumables, hospitals, doctors -----------------------------------------------------------


def test_consumable_codes():
    short, long_ = "C0344051070500007551", "C09100100000000211790000049"
    assert codes.validate_consumable_code(short) is None
    assert codes.validate_consumable_code(long_) is None
    assert codes.consumable_category(short) == "C034405"
    assert codes.consumable_brand(short) == "07551"  # characters 16-20
    assert codes.consumable_category(long_) == "C091001"
    assert codes.consumable_brand(long_) == "21179"
    assert codes.consumable_brand(long_) == codes.consumable_brand(long_[:20])
    for bad in (short[:-1], short + "0", long_[:-1], long_ + "0", "c" + short[1:], "D" + short[1:],
                short[:10] + "A" + short[11:], " " + short, short + "\n", "", short[:20] + "123456"):
        assert codes.validate_consumable_code(bad) == "format", bad


def test_hospital_codes():
    assert codes.validate_hospital_code("H52020100022") is None
    assert codes.hospital_region("H52020100022") == "520201"
    for bad in ("H5202010002", "H520201000222", "h52020100022", "52020100022", "H5202010002A", ""):
        assert codes.validate_hospital_code(bad) == "format", bad


def test_doctor_codes():
    assert codes.validate_doctor_code("D410702000001") is None
    for bad in ("D41070200001", "D4107020000011", "d410702000001", "410702000001", "D410702000001\n"):
        assert codes.validate_doctor_code(bad) == "format", bad
    local = r"^D\d{6}[A-Z]\d{4}$"
    assert codes.validate_doctor_code("D410702A0001", local) is None
    assert codes.validate_doctor_code("D410702000001", local) == "format"
    assert codes.validate_doctor_code("xD410702000001x", r"D\d{12}") == "format"  # unanchored: still whole


# --- ICD-10 ------------------------------------------------------------------------------------


def reference_icd10_codes() -> list[str]:
    lines = (REFERENCE / "icd10_chs_diagnoses.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == ["diagnosis_code", "name"]
    return [line.split("\t")[0] for line in lines[1:] if line]


def test_every_reference_icd10_code_passes():
    all_codes = reference_icd10_codes()
    assert len(all_codes) >= 33303
    failing = [c for c in all_codes if codes.validate_icd10(c) is not None]
    assert failing == []
    shapes = {c.count("x") for c in all_codes}
    assert shapes == {0, 1, 2}
    assert any("+" in c and c.endswith("*") for c in all_codes)


@pytest.mark.parametrize("code", [
    "A00.000", "A00.000x001", "I10.x00", "I10.x00x002", "A01.000x005+J17.0*", "E11.200x023+N08.3*",
    "A17.000+G01*", "X59.x00x001",
])
def test_icd10_documented_shapes(code):
    assert codes.validate_icd10(code) is None


@pytest.mark.parametrize("code", [
    "I25103", "i25.103", "I25.1", "I25.10", "125.103", "I25.1034", "I25.103X001", "I25.103x01",
    "I25.103x0011", "I25-103", "A01.000x005+J17.0", "A01.000x005+J17.00*", "A01.000x005J17.0*",
    "A01.000+j17.0*", "I25.103 ", " I25.103", "", "I25.103\n", "II5.103", "I25.y03",
])
def test_icd10_rejects(code):
    assert codes.validate_icd10(code) == "format"


# --- code sets ---------------------------------------------------------------------------------


def test_code_sets():
    assert codes.INSURANCE_TYPES == {"310": "职工基本医疗保险", "390": "城乡居民基本医疗保险"}
    assert set(codes.MEDICAL_CATEGORIES) == {
        "11", "12", "13", "14", "16", "21", "22", "23", "24", "28", "41", "51", "52"}
    assert codes.MEDICAL_CATEGORIES["28"] == "日间手术"
    assert codes.MEDICAL_CATEGORIES["52"] == "生育住院"
    assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in codes.MEDICAL_CATEGORIES.items())
    assert codes.INPATIENT_CATEGORIES == {"21", "22", "23", "24", "28", "52"}
    assert codes.INPATIENT_CATEGORIES <= set(codes.MEDICAL_CATEGORIES)
