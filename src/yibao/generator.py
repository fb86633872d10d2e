"""A synthetic city: a landing zone laid out exactly as docs/extract-contract.md, deterministic from a seed.

    generate_city(landing, seed=42, hospitals=6, start=date(2025, 1, 1), end=date(2025, 3, 31))

writes ``<landing>/reference/*.csv`` (the bureau's eight reference files; ``workday_overrides``
only when the range reaches a year the bundled holiday calendar lacks), one folder per business
date and hospital with ``purchase`` / ``usage`` / ``claim`` extracts (and, for some hospitals, a
``_manifest.json``), plus the ground truth for tests under ``<landing>/_generator/`` (ignored by
the loader): ``defects.json`` lists every injected defect, ``summary.json`` the counts.

The city (新乡市, region 4107xx) is built so that every rule R1-R10 has something to find: VBP
batches for coronary stents (C020202) and artificial joints (C031001) with selected and
non-selected products, agreed volumes that some hospitals complete and others fall behind on,
price violations, off-platform purchases, supplier payments on time / late / never, returns and
refunds, marked-up charges and charges above the payment standard, brand-loyal doctors and
outlier surgeries, reversals (冲正) that cross months and years, budgets that some hospitals
overrun, one hospital with monthly budget weights.

Formats vary per hospital and stay stable over time (hospital index → format):

| # | level | file format |
|---|---|---|
| 0 | 三级 public | UTF-8, English headers, ``YYYY-MM-DD``, Y/N, manifest |
| 1 | 三级 public | UTF-8 with BOM, ``YYYYMMDD``; its budget has monthly weights |
| 2 | 二级 public | GB18030, Chinese headers, CRLF, ``YYYY/MM/DD``, 是/否, manifest |
| 3 | 二级 private | usage as .xlsx (typed cells), ``YYYYMMDD``; marks up charges, price violations |
| 4 | 一级 public | all three as .csv.gz (gzip mtime 0), manifest, never fills UDI-DI |
| 5 | 基层 public | extra column ``备注`` (kept by the loader), padded headers, 是/否 |
| 6+ | mixed | UTF-8 variations (date styles, Chinese headers for some), manifest on even # |

Defects (``defect_rate`` of data rows, exactly one per corrupted row; plus file-level
``truncated_file`` / ``bad_manifest`` on files with a manifest) are drawn from a random stream of
their own, so a city with defects is the clean city of the same seed with the listed rows
changed (and duplicate rows inserted). With ``defect_rate=0`` the city is clean. Two cases are
placed on purpose: every other ``duplicate_key`` pair has a copy that is also malformed (its
defects.json entry carries the other defect under ``also``; the loader must still quarantine both
rows as duplicates), and a city of three or more business dates misses one claim file in the
middle of the range (``missing_file``: one hospital-night that never arrived, manifest entry
dropped too; its rows are not in ``summary.json``).

Sizing: at ``volume=1.0`` a working day brings about 600 claims from a 三级 hospital, 220 from
二级, 70 from 一级 and 35 from 基层 (rest days fewer), plus usage lines of about 3 % of the
claims; purchases stay at a few lines per hospital and day whatever the volume (see
:func:`estimate_rows_per_day`). Six hospitals at volume 1.0 make about 1,900 rows a working day,
~600,000 a year. A one-million-row night (about 20 s of CPU, 135 MB)::

    generate_city(out, hospitals=40, volume=volume_for_rows(1_000_000, 40), start=d, end=d)

Money is generated in integer cents (prices in 1/10000 yuan) and written as exact decimals.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import math
import random
import re
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

from . import codes
from .contract import CLAIM, EXTRACTS, PURCHASE, REFERENCE, USAGE

__all__ = [
    "DEFECT_CLASSES",
    "CitySummary",
    "estimate_rows_per_day",
    "generate_city",
    "volume_for_rows",
]

GENERATOR_VERSION = 1

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

# Column positions (canonical order from contract.py).
PI = {c.name: i for i, c in enumerate(PURCHASE.columns)}
UI = {c.name: i for i, c in enumerate(USAGE.columns)}
CI = {c.name: i for i, c in enumerate(CLAIM.columns)}

# --- the city ---------------------------------------------------------------------------------

CITY_NAME = "新乡市"
COUNTIES = (  # code, name: in the order hospitals are placed
    ("410702", "红旗区"),
    ("410711", "牧野区"),
    ("410703", "卫滨区"),
    ("410721", "新乡县"),
    ("410782", "辉县市"),
    ("410724", "获嘉县"),
    ("410704", "凤泉区"),
    ("410725", "原阳县"),
    ("410726", "延津县"),
    ("410727", "封丘县"),
    ("410781", "卫辉市"),
    ("410783", "长垣市"),
)
COUNTY_CODES = tuple(c for c, _ in COUNTIES)
# Birth-place codes on ID numbers: the city's counties (长垣 only from 2019, as 410783) + a few elsewhere.
_BIRTH_REGIONS = ("410702", "410703", "410704", "410711", "410721", "410724", "410725", "410726",
                  "410727", "410781", "410782", "410105", "410202", "130102")

LEVELS = ("三级", "二级", "一级", "基层")
# Per working day at volume 1.0: claims (outpatient + non-surgical inpatient), the inpatient share
# of them, surgeries by type (each also brings an inpatient claim and usage lines), and the scale of
# low-value consumption (purchased, not in the high-value usage extract).
LEVEL_PROFILE = {
    "三级": {"claims": 600.0, "inpatient": 0.10, "pci": 6.0, "joint": 3.0, "gi": 4.0, "low": 3.0},
    "二级": {"claims": 220.0, "inpatient": 0.09, "pci": 1.2, "joint": 1.0, "gi": 2.0, "low": 2.0},
    "一级": {"claims": 70.0, "inpatient": 0.05, "pci": 0.0, "joint": 0.0, "gi": 0.4, "low": 1.0},
    "基层": {"claims": 35.0, "inpatient": 0.02, "pci": 0.0, "joint": 0.0, "gi": 0.0, "low": 0.6},
}
# Rest days (weekends and holidays) scale activity down.
REST_FACTOR = {"outpatient": 0.55, "inpatient": 0.8, "surgery": 0.25, "purchase": 0.5}

# Hospital # → (level, ownership) for the first six; then a repeating mix.
_FIRST_HOSPITALS = (("三级", "public"), ("三级", "public"), ("二级", "public"), ("二级", "private"),
                    ("一级", "public"), ("基层", "public"))
_LATER_HOSPITALS = (("二级", "public"), ("一级", "public"), ("基层", "public"), ("三级", "public"),
                    ("基层", "public"), ("一级", "private"), ("二级", "private"), ("基层", "public"))

# --- the consumable world (static: the national catalog does not depend on the seed) -------------

BRANDS = {
    "10231": "华康介入医疗器械有限公司",
    "10487": "瑞普心脉医疗科技有限公司",
    "11052": "明德生物材料股份有限公司",
    "12316": "康联医疗器械（上海）有限公司",
    "13770": "远航心血管科技有限公司",
    "14105": "博研医学工程有限公司",
    "15520": "安济医疗器械有限公司",
    "16001": "恒通导管有限公司",
    "20118": "骏骨科技股份有限公司",
    "20463": "正衡关节医疗器械有限公司",
    "21027": "天衡骨科植入物有限公司",
    "21839": "固尔康医疗器械有限公司",
    "22340": "锐骨医疗器械有限公司",
    "40115": "康迈外科器械有限公司",
    "40367": "联创微创医疗科技有限公司",
    "50021": "卫康医用制品有限公司",
    "50118": "洁安医疗用品有限公司",
}

CATEGORIES = {
    "C020202": "冠脉支架",
    "C020301": "冠脉球囊扩张导管",
    "C031001": "人工关节",
    "C030501": "骨科螺钉",
    "C040201": "吻合器",
    "C040301": "结扎夹",
    "C140101": "输液器",
    "C140201": "注射器",
}

STENT_PREFIX = "C020202"
JOINT_PREFIX = "C031001"


@dataclass(frozen=True)
class Product:
    key: str  # short name used inside the generator
    kind: str  # stent | balloon | hip | knee | screw | stapler | clip | low
    code: str
    generic_name: str
    product_name: str
    brand: str
    price4: int  # list price (non-selected) or selected price (VBP), 1/10000 yuan
    high_value: bool = True
    status: str = "active"
    vbp: str | None = None  # 'stent' | 'joint' for selected products
    group: str | None = None
    pre_price4: int | None = None
    weight: float = 1.0
    specs: tuple[str, ...] = ("标准型",)

    @property
    def manufacturer(self) -> str:
        return BRANDS[self.brand]


def _code(category: str, generic: str, material: str, feature: str, brand: str) -> str:
    code = f"{category}{generic}{material}{feature}{brand}"
    assert len(code) == 20, code
    return code


def _y(yuan: str) -> int:
    """'469.00' → 4690000 (1/10000 yuan)."""
    return int(Decimal(yuan) * 10000)


_STENT_SPECS = ("2.5×18mm", "2.75×24mm", "3.0×18mm", "3.0×24mm", "3.5×18mm", "3.5×29mm", "4.0×15mm")
_HIP_SPECS = ("股骨柄12#/髋臼杯52mm", "股骨柄13#/髋臼杯54mm", "股骨柄11#/髋臼杯50mm")
_KNEE_SPECS = ("股骨髁C号/胫骨平台3号", "股骨髁D号/胫骨平台4号", "股骨髁B号/胫骨平台2号")

PRODUCTS: tuple[Product, ...] = (
    # 冠脉支架 C020202 (VBP): selected, group A / B
    Product("S1", "stent", _code("C020202", "001", "01", "001", "10231"), "冠脉药物洗脱支架", "钴铬合金雷帕霉素洗脱支架系统",
            "10231", _y("469.00"), vbp="stent", group="A组", pre_price4=_y("10230.00"), weight=3.0, specs=_STENT_SPECS),
    Product("S2", "stent", _code("C020202", "001", "02", "001", "10487"), "冠脉药物洗脱支架", "铂铬合金依维莫司洗脱支架系统",
            "10487", _y("798.00"), vbp="stent", group="A组", pre_price4=_y("12980.00"), weight=2.0, specs=_STENT_SPECS),
    Product("S3", "stent", _code("C020202", "001", "01", "002", "11052"), "冠脉药物洗脱支架", "钴铬合金西罗莫司洗脱支架系统",
            "11052", _y("590.00"), vbp="stent", group="A组", pre_price4=_y("11200.00"), weight=2.0, specs=_STENT_SPECS),
    Product("S4", "stent", _code("C020202", "001", "03", "001", "12316"), "冠脉药物洗脱支架", "不锈钢紫杉醇洗脱支架系统",
            "12316", _y("548.00"), vbp="stent", group="B组", pre_price4=_y("10500.00"), weight=1.5, specs=_STENT_SPECS),
    Product("S5", "stent", _code("C020202", "001", "01", "003", "13770"), "冠脉药物洗脱支架", "钴铬合金药物洗脱支架系统",
            "13770", _y("645.50"), vbp="stent", group="B组", pre_price4=_y("12100.00"), weight=1.5, specs=_STENT_SPECS),
    Product("S6", "stent", _code("C020202", "001", "02", "002", "10231"), "冠脉药物洗脱支架", "铂铬合金雷帕霉素洗脱支架系统（快速交换）",
            "10231", _y("737.50"), vbp="stent", group="A组", pre_price4=_y("11880.00"), weight=1.0, specs=_STENT_SPECS),
    # non-selected stents
    Product("N1", "stent", _code("C020202", "001", "01", "004", "14105"), "冠脉药物洗脱支架", "钴铬合金药物洗脱支架系统",
            "14105", _y("2380.00"), weight=1.2, specs=_STENT_SPECS),
    Product("N2", "stent", _code("C020202", "003", "04", "001", "15520"), "生物可吸收冠脉支架", "生物可吸收冠脉支架系统",
            "15520", _y("8900.00"), weight=0.1, specs=("3.0×18mm", "3.5×18mm")),
    Product("N3", "stent", _code("C020202", "001", "03", "002", "12316"), "冠脉药物洗脱支架", "不锈钢药物洗脱支架系统（一代）",
            "12316", _y("1650.00"), weight=0.6, specs=_STENT_SPECS),
    Product("RS", "stent", _code("C020202", "002", "03", "001", "13770"), "冠脉裸金属支架", "冠脉裸金属支架系统",
            "13770", _y("1200.00"), status="retired", weight=0.0),
    # 冠脉球囊 (not VBP in this city)
    Product("B1", "balloon", _code("C020301", "001", "01", "001", "10231"), "冠脉球囊扩张导管", "快速交换球囊扩张导管",
            "10231", _y("1260.00"), weight=3.0, specs=("2.0×15mm", "2.5×20mm", "3.0×15mm")),
    Product("B2", "balloon", _code("C020301", "001", "02", "001", "16001"), "冠脉球囊扩张导管", "非顺应性球囊扩张导管",
            "16001", _y("2480.00"), weight=1.5, specs=("3.0×12mm", "3.5×12mm")),
    Product("B3", "balloon", _code("C020301", "002", "01", "001", "16001"), "冠脉切割球囊", "切割球囊导管",
            "16001", _y("3980.00"), weight=0.3, specs=("3.0×10mm",)),
    # 人工关节 C031001 (VBP): hip 001 / knee 002
    Product("H1", "hip", _code("C031001", "001", "01", "001", "20118"), "人工髋关节", "陶瓷-陶瓷全髋关节假体系统",
            "20118", _y("7260.00"), vbp="joint", group="髋关节A组", pre_price4=_y("35800.00"), weight=2.0, specs=_HIP_SPECS),
    Product("H2", "hip", _code("C031001", "001", "02", "001", "20463"), "人工髋关节", "陶瓷-聚乙烯全髋关节假体系统",
            "20463", _y("6890.00"), vbp="joint", group="髋关节A组", pre_price4=_y("32600.00"), weight=1.5, specs=_HIP_SPECS),
    Product("H3", "hip", _code("C031001", "001", "03", "001", "21027"), "人工髋关节", "金属-聚乙烯全髋关节假体系统",
            "21027", _y("5180.00"), vbp="joint", group="髋关节B组", pre_price4=_y("30400.00"), weight=1.0, specs=_HIP_SPECS),
    Product("K1", "knee", _code("C031001", "002", "03", "001", "20118"), "人工膝关节", "后稳定型全膝关节假体系统",
            "20118", _y("5650.00"), vbp="joint", group="膝关节A组", pre_price4=_y("32000.00"), weight=2.0, specs=_KNEE_SPECS),
    Product("K2", "knee", _code("C031001", "002", "03", "002", "20463"), "人工膝关节", "十字韧带保留型全膝关节假体系统",
            "20463", _y("5020.00"), vbp="joint", group="膝关节A组", pre_price4=_y("31500.00"), weight=1.5, specs=_KNEE_SPECS),
    Product("K3", "knee", _code("C031001", "002", "02", "001", "21027"), "人工膝关节", "高交联聚乙烯全膝关节假体系统",
            "21027", _y("6180.00"), vbp="joint", group="膝关节A组", pre_price4=_y("33900.00"), weight=1.0, specs=_KNEE_SPECS),
    Product("NH", "hip", _code("C031001", "001", "01", "002", "21839"), "人工髋关节", "陶瓷-陶瓷全髋关节假体系统（进口）",
            "21839", _y("12800.00"), weight=0.5, specs=_HIP_SPECS),
    Product("NK", "knee", _code("C031001", "002", "03", "003", "21839"), "人工膝关节", "活动平台全膝关节假体系统（进口）",
            "21839", _y("11600.00"), weight=0.5, specs=_KNEE_SPECS),
    Product("RJ", "hip", _code("C031001", "001", "03", "009", "20463"), "人工髋关节", "双动头髋关节假体（停产）",
            "20463", _y("9800.00"), status="retired", weight=0.0),
    # 骨科螺钉 C030501, 吻合器 C040201, 结扎夹 C040301 (high value, not VBP)
    Product("SC1", "screw", _code("C030501", "001", "01", "001", "20118"), "皮质骨螺钉", "钛合金皮质骨螺钉",
            "20118", _y("320.00"), weight=2.0, specs=("φ3.5×30mm", "φ4.5×40mm")),
    Product("SC2", "screw", _code("C030501", "002", "01", "001", "22340"), "松质骨螺钉", "钛合金空心松质骨螺钉",
            "22340", _y("455.00"), weight=1.5, specs=("φ6.5×60mm", "φ7.3×80mm")),
    Product("SC3", "screw", _code("C030501", "001", "02", "001", "22340"), "皮质骨螺钉", "不锈钢皮质骨螺钉",
            "22340", _y("268.80"), weight=1.0, specs=("φ3.5×26mm",)),
    Product("ST1", "stapler", _code("C040201", "001", "01", "001", "40115"), "腔镜直线切割吻合器", "一次性使用腔镜直线切割吻合器",
            "40115", _y("3850.00"), weight=1.5, specs=("60mm", "45mm")),
    Product("ST2", "stapler", _code("C040201", "002", "01", "001", "40367"), "管型吻合器", "一次性使用管型消化道吻合器",
            "40367", _y("2960.00"), weight=1.0, specs=("25mm", "28mm, 钉高4.8mm")),
    Product("CL1", "clip", _code("C040301", "001", "02", "001", "40367"), "结扎夹", "可吸收结扎夹",
            "40367", _y("185.00"), weight=1.0, specs=("中号", "大号")),
    # low value (purchases only, not in the high-value usage extract); 4-decimal prices
    Product("L1", "low", _code("C140101", "001", "01", "001", "50021"), "一次性使用输液器", "一次性使用精密过滤输液器",
            "50021", 34567, high_value=False, specs=("带针 0.7mm",)),
    Product("L2", "low", _code("C140201", "001", "01", "001", "50118"), "一次性使用无菌注射器", "一次性使用无菌注射器",
            "50118", 5275, high_value=False, specs=("5ml", "10ml")),
)
PRODUCT_BY_KEY = {p.key: p for p in PRODUCTS}
# 27-char variants (20-char code + 7-digit 规格型号 serial): the catalog carries both.
LONG_VARIANTS = {"SC1": "0000301", "SC2": "0000652", "ST1": "0000060", "ST2": "0000028"}


def _udi(code: str) -> str:
    """A fixed GTIN-14 per consumable code: indicator, 69 (China), brand, item ref, check."""
    h = int(hashlib.sha256(code.encode()).hexdigest()[:10], 16)
    payload = f"{h % 2}69{code[15:20]}{h % 100000:05d}"
    return payload + codes.gs1_check_digit(payload)


# Distributors (配送企业): fictional; USCC = 91 + region + 9-char subject code + check char.
_DISTRIBUTORS = (
    ("410702", "MA3X5K7Q2"),
    ("410711", "MA40C1LN8"),
    ("410100", "MA9F2T6UX"),
    ("410703", "75480123X"),
    ("410782", "MA47RDW0Y"),
    ("410100", "17001839B"),
)
SUPPLIER_USCC = tuple(f"91{r}{s}" + codes.uscc_check_char(f"91{r}{s}") for r, s in _DISTRIBUTORS)

# Diagnoses (all in tests/data/reference/icd10_chs_diagnoses.tsv; tests check it) and DRG groups.
OUTPATIENT_DIAGNOSES = (
    "J06.900", "I10.x00", "E11.900", "K29.500", "J20.900", "M54.500", "A09.900", "R50.900", "K59.000",
    "L20.900", "H10.900", "N39.000", "Z00.000", "G47.000", "J45.900", "E78.500", "F32.900", "K21.000",
    "R51.x00", "I25.103", "M51.202", "H25.900",
)
CHRONIC_DIAGNOSES = ("I10.x00", "E11.900", "J44.900", "I63.900", "N18.500", "I25.103", "C34.900",
                     "C50.900", "E11.200x023+N08.3*", "I10.x00x002")
INPATIENT_DIAGNOSES = (  # (code, drg)
    ("J18.900", "ES33"), ("I63.900", "BR23"), ("J44.100", "ET23"), ("I50.900", "FR25"),
    ("K80.200x003", "HC29"), ("N20.000", "LX19"), ("C34.900", "ER13"), ("K40.900", "GE15"),
    ("I20.000", "FR39"), ("E11.900", "KS15"), ("J20.900", "EX25"), ("Z51.100", "RE15"),
)
TRAUMA_DIAGNOSES = (("S72.000", "IF33"), ("S82.000", "IF49"))
MATERNITY_OUTPATIENT = ("Z34.900", "Z32.100")
MATERNITY_INPATIENT = (("O80.900", "OC19"), ("O82.000", "OB19"))
SURGERY_DIAGNOSES = {  # kind → ((code, drg, medical_category, weight), …)
    "pci": (("I25.103", "FM19", "21", 0.50), ("I20.000", "FM19", "21", 0.35), ("I21.900", "FM19", "24", 0.15)),
    "hip": (("M16.101", "IC29", "21", 0.40), ("M16.900", "IC29", "21", 0.25), ("S72.000", "IC29", "22", 0.35)),
    "knee": (("M17.101", "IC29", "21", 0.55), ("M17.900", "IC29", "21", 0.45)),
    "gi": (("K80.100x001", "HC29", "21", 0.45), ("K35.800x001", "GD25", "21", 0.30), ("C18.900", "GB29", "21", 0.25)),
}
DEPARTMENTS = {"pci": ("0304", "心血管内科"), "joint": ("0703", "骨科"), "gi": ("0701", "普通外科")}

# Claim money model per medical category: mean total (yuan), spread (lognormal sigma).
_CATEGORY_MEANS = {
    "11": (160, 0.7), "12": (12, 0.0), "13": (380, 0.7), "14": (520, 0.6), "16": (210, 0.6), "51": (260, 0.5),
    "21": (8500, 0.55), "22": (11000, 0.55), "23": (26000, 0.5), "24": (14000, 0.5), "28": (5200, 0.4),
    "52": (4800, 0.35),
}
_OUTPATIENT_MIX = (("11", 0.68), ("12", 0.04), ("13", 0.06), ("14", 0.15), ("16", 0.03), ("51", 0.04))
_INPATIENT_MIX = (("21", 0.80), ("22", 0.04), ("23", 0.02), ("24", 0.05), ("28", 0.03), ("52", 0.06))
_SURGERY_BASE_YUAN = {"pci": 16000, "hip": 21000, "knee": 19000, "gi": 12000}

# Synthetic statutory-holiday schedules for years after the bundled calendar (chinese_calendar).
_LUNAR_HOLIDAYS = {  # year: spring festival day 1, qingming, dragon boat, mid-autumn
    2027: ((2, 6), (4, 5), (6, 9), (9, 15)),
    2028: ((1, 26), (4, 4), (5, 28), (10, 3)),
    2029: ((2, 13), (4, 4), (6, 16), (9, 22)),
    2030: ((2, 3), (4, 5), (6, 5), (9, 12)),
}
MAX_YEAR = max(_LUNAR_HOLIDAYS)

_FIXED_TIME = dt.datetime(2020, 1, 1)
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


# --- small helpers -------------------------------------------------------------------------------


def _cents(c: int) -> str:
    """Integer cents → '12.34' / '-12.34'."""
    if c >= 0:
        q, r = divmod(c, 100)
        return f"{q}.{r:02d}"
    q, r = divmod(-c, 100)
    return f"-{q}.{r:02d}"


def _price(p4: int) -> str:
    """Price in 1/10000 yuan → text with 2 decimals, or 4 when needed."""
    if p4 < 0:
        return "-" + _price(-p4)
    whole, frac = divmod(p4, 10000)
    return f"{whole}.{frac // 100:02d}" if frac % 100 == 0 else f"{whole}.{frac:04d}"


def _line_cents(qty: int, p4: int) -> int:
    """round(quantity × unit_price, 2), half up (away from zero), in cents."""
    v = qty * p4
    return (v + 50) // 100 if v >= 0 else -((-v + 50) // 100)


def _count(rng: random.Random, mean: float) -> int:
    """A non-negative integer count around mean (± 12 %)."""
    if mean <= 0:
        return 0
    m = mean * (0.88 + 0.24 * rng.random())
    n = int(m)
    return n + (1 if rng.random() < m - n else 0)


def _weighted(items):
    """(values, cumulative weights normalised to end at exactly 1.0) for bisect-based choice."""
    values, cum, total = [], [], 0.0
    for v, w in items:
        if w <= 0:
            continue
        total += w
        values.append(v)
        cum.append(total)
    cum = [c / total for c in cum]
    cum[-1] = 1.0
    return values, cum


def _pick(rng: random.Random, table) -> object:
    values, cum = table
    return values[bisect.bisect_right(cum, rng.random())]


class _Calendar:
    """Working days: chinese_calendar for the years it covers, synthetic schedules after that."""

    def __init__(self) -> None:
        import chinese_calendar
        from chinese_calendar import constants

        self._cc = chinese_calendar
        self.min_year = min(constants.holidays).year
        self.max_bundled = max(constants.holidays).year
        self._cache: dict[dt.date, bool] = {}
        self._synthetic: dict[int, dict[dt.date, bool]] = {}

    def overrides(self, year: int) -> dict[dt.date, bool]:
        """Synthetic holidays (False) and adjusted working days (True) of a year after the bundled calendar."""
        if year in self._synthetic:
            return self._synthetic[year]
        out: dict[dt.date, bool] = {}
        lunar = _LUNAR_HOLIDAYS.get(year)
        if lunar is not None:
            d = dt.date

            def block(first: dt.date, days: int, adjust: bool) -> None:
                days_ = [first + dt.timedelta(i) for i in range(days)]
                for x in days_:
                    out[x] = False
                if adjust:  # one weekend day before and one after become working days (调休)
                    for step, edge in ((-1, days_[0]), (1, days_[-1])):
                        x = edge + dt.timedelta(step)
                        for _ in range(7):
                            if x.weekday() >= 5 and x not in out:
                                out[x] = True
                                break
                            x += dt.timedelta(step)

            (sm, sd), (qm, qd), (dm, dd), (mm, md) = lunar
            block(d(year, 1, 1), 1, False)
            block(d(year, sm, sd) - dt.timedelta(1), 8, True)
            block(d(year, qm, qd), 1, False)
            block(d(year, 5, 1), 5, True)
            block(d(year, dm, dd), 1, False)
            mid = d(year, mm, md)
            if d(year, 10, 1) <= mid <= d(year, 10, 8):
                block(d(year, 10, 1), 8, True)
            else:
                block(mid, 1, False)
                block(d(year, 10, 1), 7, True)
        self._synthetic[year] = dict(sorted(out.items()))
        return self._synthetic[year]

    def is_workday(self, day: dt.date) -> bool:
        hit = self._cache.get(day)
        if hit is None:
            if self.min_year <= day.year <= self.max_bundled:
                hit = self._cc.is_workday(day)
            else:
                hit = self.overrides(day.year).get(day, day.weekday() < 5)
            self._cache[day] = hit
        return hit

    def add_workdays(self, day: dt.date, n: int) -> dt.date:
        """The n-th working day after day (day 1 = first working day after it)."""
        while n > 0:
            day += dt.timedelta(1)
            if self.is_workday(day):
                n -= 1
        return day

    def next_workday(self, day: dt.date) -> dt.date:
        while not self.is_workday(day):
            day += dt.timedelta(1)
        return day


# --- formats -----------------------------------------------------------------------------------


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
        cols = EXTRACTS[extract].columns
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


# --- hospitals -------------------------------------------------------------------------------------


@dataclass
class _Doctor:
    code: str
    kind: str  # pci | joint | gi
    loyal_brand: str | None
    weight: float


@dataclass
class _Hospital:
    index: int
    code: str
    name: str
    level: str
    county: str
    ownership: str
    fmt: FileFormat
    dates: _DateFormatter
    profile: dict
    doctors: dict[str, list[_Doctor]]
    doctor_tables: dict[str, tuple]
    formulary: list[str]  # product keys stocked (and so purchased)
    untraceable: str | None  # a product key used rarely but never purchased (跟台)
    long_codes: bool  # uses 27-char codes for screws and staplers
    discount: float  # on list prices
    violation_rate: float  # share of selected-product purchase lines not at the selected price
    markup_rate: float  # share of usage lines charged above the purchase price
    off_platform: float
    budget_factor: dict[str, float]
    window: tuple[int, int]  # patient pool offset and width
    # state
    stock: dict[str, int] = field(default_factory=dict)
    last_price: dict[str, int] = field(default_factory=dict)
    reorder: dict[str, tuple[int, int]] = field(default_factory=dict)
    n_purchase: int = 0
    n_usage: int = 0
    n_claim: int = 0
    n_visit: int = 0
    n_surgery: int = 0

    def code_of(self, key: str) -> str:
        p = PRODUCT_BY_KEY[key]
        if self.long_codes and key in LONG_VARIANTS:
            return p.code + LONG_VARIANTS[key]
        return p.code


def _hospital_name(level: str, ownership: str, county_name: str, k: int) -> str:
    if level == "三级":
        names = ("新乡市第一人民医院", "新乡市中心医院", "新乡市第二人民医院", "新乡市第三人民医院", "新乡市中医院")
        return names[k] if k < len(names) else f"新乡市第{k + 1}人民医院"
    if level == "二级":
        return f"{county_name}{'仁和医院' if ownership == 'private' else ('人民医院', '中医院', '妇幼保健院')[k % 3]}"
    if level == "一级":
        return f"{county_name}{'康宁医院' if ownership == 'private' else ('第一社区医院', '城关医院', '第二社区医院')[k % 3]}"
    return f"{county_name}{('城关镇卫生院', '社区卫生服务中心', '中心卫生院', '第二社区卫生服务中心')[k % 4]}"


# --- the generator ----------------------------------------------------------------------------------


@dataclass
class CitySummary:
    """What generate_city wrote. ``rows`` counts data rows as written (defect rows and duplicate
    copies included, truncated files at full length)."""

    landing: str
    seed: int
    start: str
    end: str
    volume: float
    defect_rate: float
    hospitals: list[str]
    business_dates: int
    rows: dict[str, int]
    reference_rows: dict[str, int]
    files: dict[str, int]
    bytes: int
    defects: dict[str, int]

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def __str__(self) -> str:
        lines = [
            (f"synthetic city (seed {self.seed}) in {self.landing}: {len(self.hospitals)} hospitals, "
             f"{self.business_dates} business dates {self.start} … {self.end}"),
            "  rows: " + ", ".join(f"{k} {v:,}" for k, v in self.rows.items()) + f" (total {self.total_rows:,})",
            "  reference: " + ", ".join(f"{k} {v:,}" for k, v in self.reference_rows.items()),
            "  files: " + ", ".join(f"{k} {v:,}" for k, v in self.files.items()) + f"; {self.bytes / 1e6:,.1f} MB",
            "  defects: " + (", ".join(f"{k} {v:,}" for k, v in self.defects.items() if v) or "none"),
        ]
        return "\n".join(lines)


def estimate_rows_per_day(hospitals: int, volume: float = 1.0) -> dict[str, float]:
    """Approximate data rows of one working day, by extract.

    Purchases hardly grow with volume (orders get bigger, not more frequent): about 2 lines a day
    for a surgical hospital, one per stocked code on the first day.
    """
    claims = usage = purchase = 0.0
    for i in range(hospitals):
        level, _ = _level_of(i)
        p = LEVEL_PROFILE[level]
        surgeries = p["pci"] + p["joint"] + p["gi"]
        claims += (p["claims"] + surgeries) * volume * 1.006
        usage += (p["pci"] * 2.1 + p["joint"] * 1.6 + p["gi"] * 1.8) * volume
        purchase += 2.0 if surgeries else 0.4
    return {"purchase": round(purchase, 1), "usage": round(usage, 1), "claim": round(claims, 1),
            "total": round(purchase + usage + claims, 1)}


def volume_for_rows(rows: int, hospitals: int) -> float:
    """The ``volume`` that makes one working day of ``hospitals`` hospitals about ``rows`` data rows."""
    fixed = estimate_rows_per_day(hospitals, 0.0)["total"]  # purchases do not grow with volume
    return max(rows - fixed, 1.0) / (estimate_rows_per_day(hospitals, 1.0)["total"] - fixed)


def _level_of(index: int) -> tuple[str, str]:
    if index < len(_FIRST_HOSPITALS):
        return _FIRST_HOSPITALS[index]
    return _LATER_HOSPITALS[(index - len(_FIRST_HOSPITALS)) % len(_LATER_HOSPITALS)]


class _City:
    def __init__(self, landing: Path, seed: int, n_hospitals: int, start: dt.date, end: dt.date,
                 volume: float, defect_rate: float) -> None:
        self.landing = landing
        self.seed = seed
        self.start = start
        self.end = end
        self.volume = volume
        self.defect_rate = defect_rate
        self.cal = _Calendar()
        self._cache: dict[tuple, object] = {}
        if start.year < self.cal.min_year or end.year > MAX_YEAR:
            raise ValueError(f"the generator's holiday calendar covers {self.cal.min_year}-{MAX_YEAR}")
        self.rng = random.Random(f"yibao-city|{seed}")
        self.days = [start + dt.timedelta(i) for i in range((end - start).days + 1)]
        self.catalog_codes = self._catalog_codes()
        self.hospitals = self._make_hospitals(n_hospitals)
        self.batches = self._make_batches()
        self.patients = self._make_patients()
        # pending work keyed by (hospital index, business date)
        self.pending_purchase: dict[tuple[int, dt.date], list[list[str]]] = {}
        self.pending_usage: dict[tuple[int, dt.date], list[list[str]]] = {}
        self.pending_claims: dict[tuple[int, dt.date], list[tuple]] = {}
        # outputs
        self.defects: list[dict] = []
        self.duplicates = 0  # duplicate_key pairs written (every other one gets a malformed copy)
        self.rows = {"purchase": 0, "usage": 0, "claim": 0}
        self.files = {"extract": 0, "manifest": 0, "reference": 0, "generator": 0}
        self.bytes = 0
        self.reference_rows: dict[str, int] = {}
        self._diag_tables = {
            "outpatient": _weighted((c, 1.0) for c in OUTPATIENT_DIAGNOSES),
            "chronic": _weighted((c, 1.0) for c in CHRONIC_DIAGNOSES),
            "inpatient": _weighted((c, 1.0) for c in INPATIENT_DIAGNOSES),
            **{k: _weighted(((c, drg, cat), w) for c, drg, cat, w in v) for k, v in SURGERY_DIAGNOSES.items()},
        }
        self._out_mix = _weighted(_OUTPATIENT_MIX)
        self._in_mix = _weighted(_INPATIENT_MIX)
        self._out_mix_no_ob = _weighted((c, w) for c, w in _OUTPATIENT_MIX if c != "51")
        self._in_mix_no_ob = _weighted((c, w) for c, w in _INPATIENT_MIX if c != "52")

    # -- static world ------------------------------------------------------------------------------

    def _catalog_codes(self) -> dict[str, Product]:
        out = {}
        for p in PRODUCTS:
            out[p.code] = p
            if p.key in LONG_VARIANTS:
                out[p.code + LONG_VARIANTS[p.key]] = p
        return out

    def _make_hospitals(self, n: int) -> list[_Hospital]:
        rng = self.rng
        hospitals = []
        per_county: dict[str, int] = {}
        per_level: dict[str, int] = {}
        names: set[str] = set()
        for i in range(n):
            level, ownership = _level_of(i)
            county, county_name = COUNTIES[i % len(COUNTIES)]
            seq = per_county.get(county, 0) + 1
            per_county[county] = seq
            k = per_level.get(level, 0)
            per_level[level] = k + 1
            name = _hospital_name(level, ownership, county_name, k)
            if name in names:
                name = f"{name}（{seq}院区）"
            names.add(name)
            code = f"H{county}{seq:05d}"
            profile = LEVEL_PROFILE[level]
            # doctors per surgical kind
            doctors: dict[str, list[_Doctor]] = {}
            dseq = 0
            for kind, per_day in (("pci", profile["pci"]), ("joint", profile["joint"]), ("gi", profile["gi"])):
                if per_day <= 0:
                    continue
                count = max(2, round(per_day * 0.8)) if kind != "gi" else max(2, round(per_day))
                doctors[kind] = []
                for j in range(count):
                    dseq += 1
                    loyal = None
                    if j == 0 and kind == "pci":  # the first cardiologist of every PCI hospital is loyal
                        loyal = ("10231", "10487", "11052", "13770")[i % 4]
                    elif j == 0 and kind == "joint" and i % 2 == 1:
                        loyal = ("20118", "20463", "21027")[i % 3]
                    doctors[kind].append(
                        _Doctor(f"D{county}{i:03d}{dseq:03d}", kind, loyal, 0.6 + rng.random())
                    )
            doctor_tables = {k: _weighted((d, d.weight) for d in v) for k, v in doctors.items()}
            formulary = ["L1", "L2"]
            untraceable = None
            if profile["pci"] > 0:
                non_selected = ["N1", "N2", "N3"]
                untraceable = non_selected[i % 3]
                formulary += [k for k in ("S1", "S2", "S3", "S4", "S5", "S6", "N1", "N2", "N3", "B1", "B2", "B3")
                              if k != untraceable]
            if profile["joint"] > 0:
                formulary += ["H1", "H2", "H3", "K1", "K2", "K3", "NH", "NK", "SC1", "SC2", "SC3"]
            if profile["gi"] > 0:
                formulary += ["ST1", "ST2", "CL1"]
            fmt = _format_for(i)
            private = ownership == "private"
            hospitals.append(
                _Hospital(
                    index=i, code=code, name=name, level=level, county=county, ownership=ownership,
                    fmt=fmt, dates=_DateFormatter(fmt.date_style), profile=profile, doctors=doctors,
                    doctor_tables=doctor_tables, formulary=formulary, untraceable=untraceable,
                    long_codes=i % 2 == 1, discount=(1.0, 0.98, 0.95, 0.97)[i % 4],
                    violation_rate=0.08 if private else 0.012,
                    markup_rate=0.2 if private else 0.01,
                    off_platform=0.15 if private else 0.02,
                    budget_factor={  # budget ≈ expected declared × factor in [0.85, 1.2]: some overrun
                        "310": min(1.2, max(0.85, (0.85, 1.0, 1.12, 0.9, 1.2, 1.05)[i % 6] * (0.97 + 0.06 * rng.random()))),
                        "390": min(1.2, max(0.85, (1.15, 0.88, 1.0, 1.2, 0.95, 0.86)[i % 6] * (0.97 + 0.06 * rng.random()))),
                    },
                    window=(0, 0),
                )
            )
        return hospitals

    def _make_batches(self) -> list[dict]:
        """VBP batches with cycles covering [start, end]: stents by calendar year, joints May-April."""
        batches = []
        for year in range(self.start.year, self.end.year + 1):
            batches.append({
                "batch_id": f"ZJ{year}", "kind": "stent",
                "batch_name": f"冠脉支架集中带量采购（{year}年度）", "category_prefix": STENT_PREFIX,
                "cycle_start": dt.date(year, 1, 1), "cycle_end": dt.date(year, 12, 31), "renewal": year - 2024,
            })
        first = self.start.year - 1 if self.start < dt.date(self.start.year, 5, 1) else self.start.year
        for year in range(first, self.end.year + 1):
            cs = dt.date(year, 5, 1)
            if cs > self.end:
                break
            batches.append({
                "batch_id": f"GJ{year}", "kind": "joint",
                "batch_name": f"人工关节集中带量采购（{year}-{year + 1}周期）", "category_prefix": JOINT_PREFIX,
                "cycle_start": cs, "cycle_end": dt.date(year + 1, 4, 30), "renewal": year - 2024,
            })
        return batches

    def selected_price(self, key: str, day: dt.date) -> int | None:
        """Selected price of a VBP product on a day (renewals cut S2 and H1 by 2.5 % per cycle after 2025)."""
        p = PRODUCT_BY_KEY[key]
        if p.vbp is None:
            return None
        for b in self.batches:
            if b["kind"] == p.vbp and b["cycle_start"] <= day <= b["cycle_end"]:
                return self._batch_price(p, b)
        return None

    @staticmethod
    def _batch_price(p: Product, batch: dict) -> int:
        if p.key in ("S2", "H1") and batch["renewal"] > 1:
            price = p.price4
            for _ in range(batch["renewal"] - 1):
                price = (price * 975 // 1000) // 100 * 100
            return price
        return p.price4

    def standard_price(self, h: _Hospital, key: str, day: dt.date) -> int:
        """What the hospital pays normally: the selected price, else its discounted list price."""
        sel = self.selected_price(key, day)
        if sel is not None:
            return sel
        p = PRODUCT_BY_KEY[key]
        if p.kind == "low":
            return p.price4
        return int(p.price4 * h.discount) // 100 * 100

    # -- patients ------------------------------------------------------------------------------------

    def _make_patients(self) -> list[tuple[str, str, str, int]]:
        """City pool of (id_number, insurance_type, sex, birth_year); each hospital draws from a window."""
        daily = [(h.profile["claims"] + h.profile["pci"] + h.profile["joint"] + h.profile["gi"]) * self.volume
                 for h in self.hospitals]
        widths = [int(min(max(d * 25, 300), 250_000)) for d in daily]
        size = min(sum(widths), 400_000)
        rng = random.Random(f"yibao-patients|{self.seed}")
        rnd = rng.random
        latest = min(self.start - dt.timedelta(400), dt.date(2024, 12, 31)).toordinal()
        latest_year = dt.date.fromordinal(latest).year
        ages = _weighted([(a, 0.6 if a < 18 else (1.0 if a < 45 else (1.3 if a < 75 else 0.7))) for a in range(96)])
        regions = _BIRTH_REGIONS
        year_start = {}
        pool = []
        for _ in range(size):
            year = latest_year - _pick(rng, ages)
            first = year_start.get(year)
            if first is None:
                first = year_start[year] = dt.date(year, 1, 1).toordinal()
            birth = dt.date.fromordinal(min(first + int(rnd() * 365), latest - int(rnd() * 30)))
            region = regions[int(rnd() * len(regions))] if rnd() < 0.95 else "410700"
            male = rnd() < 0.5
            seq = int(rnd() * 500) * 2 + male
            first17 = f"{region}{birth.year:04d}{birth.month:02d}{birth.day:02d}{seq:03d}"
            idno = first17 + codes.ric_check_char(first17)
            age_now = self.start.year - birth.year
            if age_now < 18:
                ins = "390"
            elif age_now < 60:
                ins = "310" if rnd() < 0.55 else "390"
            else:
                ins = "310" if rnd() < 0.4 else "390"
            pool.append((idno, ins, "M" if male else "F", birth.year))
        offset = 0
        for h, w in zip(self.hospitals, widths):
            w = min(w, size)
            h.window = (offset % size, w)
            offset += max(1, size // max(1, len(self.hospitals)))
        return pool

    def patient(self, rng: random.Random, h: _Hospital, *, min_age: int = 0, female_fertile: bool = False):
        pool = self.patients
        size = len(pool)
        off, width = h.window
        year = self.start.year
        for _ in range(40):
            if rng.random() < 0.1:
                p = pool[rng.randrange(size)]
            else:
                p = pool[(off + rng.randrange(width)) % size]
            age = year - p[3]
            if female_fertile:
                if p[2] == "F" and 20 <= age <= 42:
                    return p
            elif age >= min_age:
                return p
        return None

    # -- expectations (reference data is built from them) ------------------------------------------

    def _surgery_rate(self, h: _Hospital, kind: str) -> float:
        if kind in ("hip", "knee"):
            return h.profile["joint"] * self.volume * (0.55 if kind == "hip" else 0.45)
        return h.profile[kind] * self.volume

    def expected_daily_use(self, h: _Hospital) -> dict[str, float]:
        """Expected units used per working day by product key (without doctor loyalty)."""
        use: dict[str, float] = {}

        def add(key, q):
            use[key] = use.get(key, 0.0) + q

        pci = self._surgery_rate(h, "pci")
        if pci:
            stents = pci * 1.67
            sel = [p for p in PRODUCTS if p.kind == "stent" and p.vbp and p.status == "active"]
            non = [p for p in PRODUCTS if p.kind == "stent" and not p.vbp and p.status == "active"
                   and p.key != h.untraceable]
            ws, wn = sum(p.weight for p in sel), sum(p.weight for p in non)
            for p in sel:
                add(p.key, stents * 0.85 * p.weight / ws)
            for p in non:
                add(p.key, stents * 0.15 * p.weight / wn)
            balloons = [p for p in PRODUCTS if p.kind == "balloon"]
            wb = sum(p.weight for p in balloons)
            for p in balloons:
                add(p.key, pci * 1.2 * p.weight / wb)
        for kind in ("hip", "knee"):
            rate = self._surgery_rate(h, kind)
            if not rate:
                continue
            sel = [p for p in PRODUCTS if p.kind == kind and p.vbp]
            non = [p for p in PRODUCTS if p.kind == kind and not p.vbp and p.status == "active"]
            ws, wn = sum(p.weight for p in sel), sum(p.weight for p in non)
            for p in sel:
                add(p.key, rate * 0.9 * p.weight / ws)
            for p in non:
                add(p.key, rate * 0.1 * p.weight / wn)
            screws = [p for p in PRODUCTS if p.kind == "screw"]
            wsc = sum(p.weight for p in screws)
            for p in screws:
                add(p.key, rate * (1.2 if kind == "hip" else 0.3) * p.weight / wsc)
        gi = self._surgery_rate(h, "gi")
        if gi:
            add("ST1", gi * 0.75)
            add("ST2", gi * 0.5)
            add("CL1", gi * 2.5)
        return use

    def _year_day_factors(self, year: int, kind: str) -> float:
        """Σ over the days of a year of the activity factor (1 on working days)."""
        key = (year, kind)
        if key not in self._cache:
            total = 0.0
            d = dt.date(year, 1, 1)
            while d.year == year:
                total += 1.0 if self.cal.is_workday(d) else REST_FACTOR[kind]
                d += dt.timedelta(1)
            self._cache[key] = total
        return self._cache[key]

    def _declared_per_claim(self, obstetrics: bool) -> dict[str, tuple[float, float]]:
        """Mean (fund − negotiated) in cents of one outpatient / non-surgical inpatient claim (Monte Carlo)."""
        key = ("per-claim", obstetrics)
        if key not in self._cache:
            rng = random.Random(f"yibao-mc|{self.seed}|{obstetrics}")
            out_mix = self._out_mix if obstetrics else self._out_mix_no_ob
            in_mix = self._in_mix if obstetrics else self._in_mix_no_ob
            samples = 4000
            result = {}
            for ins in ("310", "390"):
                o = sum(self._declared(*self.claim_money(rng, _pick(rng, out_mix), ins, 0)) for _ in range(samples))
                i = sum(self._declared(*self.claim_money(rng, _pick(rng, in_mix), ins, 0)) for _ in range(samples))
                result[ins] = (o / samples, i / samples)
            self._cache[key] = result
        return self._cache[key]

    def expected_declared(self, h: _Hospital, year: int) -> dict[str, int]:
        """Expected Σ(fund_paid − negotiated) of a year by insurance type, in cents."""
        sample = self.patients[:5000]
        share310 = sum(1 for p in sample if p[1] == "310") / len(sample)
        per_claim = self._declared_per_claim(h.level != "基层")
        claims = h.profile["claims"] * self.volume
        out_n = claims * (1 - h.profile["inpatient"]) * self._year_day_factors(year, "outpatient")
        in_n = claims * h.profile["inpatient"] * self._year_day_factors(year, "inpatient")
        surgery_days = self._year_day_factors(year, "surgery")
        surgery = 0.0  # total cost in cents
        for kind, base in _SURGERY_BASE_YUAN.items():
            rate = self._surgery_rate(h, kind)
            if rate:
                surgery += rate * surgery_days * (base + self._mean_consumables(h, kind)) * 100
        result = {}
        for ins, share in (("310", share310), ("390", 1 - share310)):
            o, i = per_claim[ins]
            fund_ratio = 0.825 if ins == "310" else 0.635
            result[ins] = int(share * (out_n * o + in_n * i + surgery * fund_ratio * 0.985))
        return result

    @staticmethod
    def _declared(total, fund, other, account, cash, nego) -> int:
        return fund - nego

    def _mean_consumables(self, h: _Hospital, kind: str) -> float:
        """Mean consumables charge (yuan) of one surgery of a kind, by sampling the selection model."""
        if not self._surgery_rate(h, kind):
            return 0.0
        doctors = h.doctors["joint" if kind in ("hip", "knee") else kind]
        key = ("consumables", kind, h.discount, h.untraceable, tuple(h.formulary), tuple(d.loyal_brand for d in doctors))
        if key not in self._cache:
            rng = random.Random(f"yibao-mc-consumables|{self.seed}|{kind}")
            total = 0
            samples = 400
            for i in range(samples):
                for k, qty in self._surgery_lines(rng, h, kind, doctors[i % len(doctors)]):
                    total += qty * self.standard_price(h, k, self.start)
            self._cache[key] = total / samples / 10000
        return self._cache[key]

    # -- claim money -------------------------------------------------------------------------------

    @staticmethod
    def claim_money(rng: random.Random, cat: str, ins: str, extra_cents: int, base_yuan: float | None = None):
        """(total, fund, other, account, cash, negotiated) in cents; total = fund + other + account + cash."""
        rnd = rng.random
        mean, sigma = _CATEGORY_MEANS[cat]
        if base_yuan is not None:
            mean, sigma = base_yuan, 0.35
        if cat == "12":
            total = (500, 1000, 1200, 1500, 2000, 5000)[int(rnd() * 6)]
        else:
            total = max(500, int(mean * 100 * math.exp(rng.gauss(-sigma * sigma / 2, sigma))))
        total += extra_cents
        nego = other = account = 0
        if cat in codes.INPATIENT_CATEGORIES:
            lo, hi = ((0.80, 0.95) if cat == "52" else ((0.75, 0.90) if ins == "310" else (0.55, 0.72)))
            fund = int(total * (lo + (hi - lo) * rnd()))
            rest = total - fund
            if total > 3_000_000 and rnd() < 0.7:
                other = int(rest * (0.3 + 0.3 * rnd()))
            elif ins == "390" and rnd() < 0.04:
                other = min(rest, total // 10)
            rest -= other
            if ins == "310" and rnd() < 0.2:
                account = min(rest, 10000 + int(rnd() * 190000))
            if rnd() < 0.06:
                nego = int(fund * (0.05 + 0.3 * rnd()))
        else:
            if cat == "14":
                lo, hi, p_fund = ((0.65, 0.85, 1.0) if ins == "310" else (0.55, 0.70, 1.0))
            elif cat == "51":
                lo, hi, p_fund = 0.6, 0.9, 1.0
            elif cat == "12":
                lo, hi, p_fund = 0.4, 0.6, 0.3
            else:
                lo, hi, p_fund = ((0.5, 0.7, 0.75) if ins == "310" else (0.45, 0.6, 0.6))
            fund = int(total * (lo + (hi - lo) * rnd())) if rnd() < p_fund else 0
            rest = total - fund
            if ins == "310" and rnd() < 0.6:
                account = int(rest * (0.3 + 0.7 * rnd()))
            if cat == "14" and fund and rnd() < 0.22:
                nego = int(fund * (0.1 + 0.5 * rnd()))
            elif fund and rnd() < 0.01:
                nego = int(fund * 0.3 * rnd())
        cash = total - fund - other - account
        return total, fund, other, account, cash, nego

    # -- reference files ----------------------------------------------------------------------------

    def write_reference(self) -> None:
        ref = self.landing / "reference"
        ref.mkdir(parents=True, exist_ok=True)
        tables: dict[str, list[list[str]]] = {}
        tables["hospitals"] = [[h.code, h.name, h.level, h.county, h.ownership] for h in self.hospitals]
        tables["consumable_catalog"] = [
            [code, p.generic_name, code[:7], "Y" if p.high_value else "N", p.status]
            for code, p in sorted(self.catalog_codes.items())
        ]
        tables["vbp_batches"] = [
            [b["batch_id"], b["batch_name"], b["category_prefix"], b["cycle_start"].isoformat(), b["cycle_end"].isoformat()]
            for b in self.batches
        ]
        tables["vbp_products"] = []
        tables["vbp_agreed_volumes"] = []
        for b in self.batches:
            members = [p for p in PRODUCTS if p.vbp == b["kind"]]
            for p in members:
                tables["vbp_products"].append(
                    [b["batch_id"], p.group, p.code, p.manufacturer, _price(self._batch_price(p, b)), _price(p.pre_price4)]
                )
            groups = sorted({p.group for p in members})
            # sized on the part of the cycle the city's data can cover (a cycle may start before `start`)
            cycle_days = (b["cycle_end"] - max(b["cycle_start"], self.start)).days + 1
            for h in self.hospitals:
                if (b["kind"] == "stent" and h.profile["pci"] <= 0) or (b["kind"] == "joint" and h.profile["joint"] <= 0):
                    continue
                use = self.expected_daily_use(h)
                rng = random.Random(f"yibao-agreed|{self.seed}|{b['batch_id']}|{h.code}")
                for g_i, group in enumerate(groups):
                    daily = sum(use.get(p.key, 0.0) for p in members if p.group == group)
                    expected = daily * cycle_days * (5 / 7 + 2 / 7 * REST_FACTOR["surgery"])
                    # completed early / on track / behind, by hospital and group
                    k = (0.3, 0.85, 1.5)[(h.index + g_i) % 3] * (0.9 + 0.2 * rng.random())
                    ratio = ("0.7", "0.8", "0.55")[(h.index + 2 * g_i) % 3]
                    base = max(1, round(expected * k / float(ratio)))
                    if ratio == "0.55" and base >= 100:
                        base = round(base / 100) * 100  # ceil(100 × 0.55) = 55 exactly, not 56
                    tables["vbp_agreed_volumes"].append([b["batch_id"], h.code, group, str(base), ratio])
        tables["fund_budgets"] = []
        years = range(self.start.year, self.end.year + 1)
        for year in years:
            for h in self.hospitals:
                declared = self.expected_declared(h, year)
                for ins in ("310", "390"):
                    budget = int(declared[ins] * h.budget_factor[ins])
                    budget = max(100_00, (budget + 5000) // 10000 * 10000)  # whole hundreds of yuan
                    weights = [""] * 12
                    if h.index == 1:
                        w = [800, 700, 850, 830, 840, 820, 850, 860, 840, 870, 860]
                        w.append(10000 - sum(w))
                        weights = [f"0.{x:04d}" for x in w]
                    tables["fund_budgets"].append([str(year), h.code, ins, _cents(budget), *weights])
        tables["settlement_params"] = []
        for year in years:
            rng = random.Random(f"yibao-params|{self.seed}|{year}")
            tables["settlement_params"].append(
                [str(year), ("0.60", "0.70", "0.80", "0.90", "1.00")[rng.randrange(5)],
                 ("0.00", "0.10", "0.20", "0.30")[rng.randrange(4)]]
            )
        overrides = []
        for year in years:
            if year > self.cal.max_bundled:
                overrides += [[d.isoformat(), "Y" if w else "N"] for d, w in self.cal.overrides(year).items()]
        if overrides:
            tables["workday_overrides"] = overrides
        for name, rows in tables.items():
            path = ref / f"{name}.csv"
            with open(path, "w", encoding="utf-8", newline="") as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow([c.name for c in REFERENCE[name]])
                w.writerows(rows)
            self.reference_rows[name] = len(rows)
            self.files["reference"] += 1
            self.bytes += path.stat().st_size

    # -- one hospital-day ----------------------------------------------------------------------------

    def run(self) -> None:
        self.write_reference()
        hospital_codes = [h.code for h in self.hospitals]
        missing = None  # (day, hospital index) whose claim file never arrives
        if self.defect_rate > 0 and len(self.days) >= 3:
            missing = (self.days[len(self.days) // 2],
                       random.Random(f"yibao-missing|{self.seed}").randrange(len(self.hospitals)))
        for day in self.days:
            folder = self.landing / f"{day:%Y%m%d}"
            for h in self.hospitals:
                hdir = folder / h.code
                hdir.mkdir(parents=True, exist_ok=True)
                rng = random.Random(f"yibao|{self.seed}|{h.code}|{day.isoformat()}")
                workday = self.cal.is_workday(day)
                others = [c for c in hospital_codes if c != h.code] or [f"H{h.county}99999"]
                sinks = {
                    e: _Sink(self, h, day, e, hdir, others)
                    for e in ("purchase", "usage", "claim")
                }
                self._purchases(rng, h, day, workday, sinks["purchase"])
                sinks["purchase"].close()
                self._usage_and_surgeries(rng, h, day, workday, sinks["usage"])
                sinks["usage"].close()
                self._claims(rng, h, day, workday, sinks["claim"])
                sinks["claim"].close()
                self._finish_folder(h, day, hdir, sinks)
                if missing == (day, h.index):
                    self._drop_file(hdir, sinks["claim"])

    # purchases ---------------------------------------------------------------------------------

    def _purchase_row(self, rng, h: _Hospital, day: dt.date, key: str, qty: int, price4: int,
                      order_date: dt.date, via: bool) -> list[str]:
        p = PRODUCT_BY_KEY[key]
        code = h.code_of(key)
        h.n_purchase += 1
        fmt = h.dates
        row = [""] * len(PURCHASE.columns)
        row[PI["purchase_line_id"]] = f"CG{day:%Y%m%d}{h.n_purchase:07d}"
        row[PI["hospital_code"]] = h.code
        row[PI["order_date"]] = fmt(order_date)
        row[PI["delivery_date"]] = fmt(day)
        row[PI["consumable_code"]] = code
        row[PI["udi_di"]] = _udi(code) if p.high_value and rng.random() < h.fmt.fills_udi else ""
        row[PI["product_name"]] = p.product_name
        row[PI["spec"]] = p.specs[rng.randrange(len(p.specs))]
        row[PI["manufacturer"]] = p.manufacturer
        row[PI["supplier_uscc"]] = SUPPLIER_USCC[(int(p.brand) + (rng.random() < 0.3)) % len(SUPPLIER_USCC)]
        row[PI["quantity"]] = str(qty)
        row[PI["unit_price"]] = _price(price4)
        row[PI["amount"]] = _cents(_line_cents(qty, price4))
        row[PI["via_platform"]] = h.fmt.yes if via else h.fmt.no
        row[PI["invoice_no"]] = f"{rng.randrange(10**8):08d}" if rng.random() < 0.6 else ""
        return row

    def _purchases(self, rng, h: _Hospital, day: dt.date, workday: bool, sink: _Sink) -> None:
        # re-sent lines (payment made) and returns scheduled for today
        for row in self.pending_purchase.pop((h.index, day), ()):
            sink.emit(row)
        use = self.expected_daily_use(h) if not h.reorder else None
        if use is not None:  # first day: set reorder points, stock 0 → everything is ordered today
            for key in h.formulary:
                p = PRODUCT_BY_KEY[key]
                if p.kind == "low":
                    e = max(10.0, h.profile["low"] * 400 * self.volume)
                else:
                    e = use.get(key, 0.0)
                h.reorder[key] = (max(2, math.ceil(e * 4)), max(5, math.ceil(e * 10)))
                h.stock[key] = 0
        for key in h.formulary:
            p = PRODUCT_BY_KEY[key]
            if p.kind == "low":  # consumed outside the usage extract
                h.stock[key] -= int(h.reorder[key][1] * 0.1 * (0.5 + rng.random()))
            point, qty = h.reorder[key]
            if h.stock[key] >= point:
                continue
            if not workday and rng.random() > REST_FACTOR["purchase"] and h.stock[key] > 0:
                continue  # fewer deliveries on rest days, unless out of stock
            qty = qty + max(0, -h.stock[key])
            qty = max(1, int(qty * (0.8 + 0.4 * rng.random())))
            self._deliver(rng, h, day, key, qty, sink)
            if rng.random() < 0.005 and p.high_value:  # a second delivery the same day at another price
                self._deliver(rng, h, day, key, max(1, qty // 3), sink, price_shift=True)

    def _deliver(self, rng, h: _Hospital, day: dt.date, key: str, qty: int, sink: _Sink,
                 price_shift: bool = False) -> None:
        p = PRODUCT_BY_KEY[key]
        standard = self.standard_price(h, key, day)
        price = standard
        selected = p.vbp is not None and self.selected_price(key, day) is not None
        if selected and rng.random() < h.violation_rate:
            price = (standard * (105, 110, 120)[rng.randrange(3)] // 100) // 100 * 100  # price violation
        if price_shift:  # R1: the highest price of the day is the reference
            price = price + price // 20 // 100 * 100
        order_date = day - dt.timedelta(1 + rng.randrange(6))
        via = rng.random() >= (h.off_platform if p.high_value else 0.1)
        row = self._purchase_row(rng, h, day, key, qty, price, order_date, via)
        sink.emit(row)
        h.stock[key] = h.stock.get(key, 0) + qty
        h.last_price[key] = price
        # payment re-send
        if selected:
            r = rng.random()
            if r < 0.78:
                paid = self.cal.add_workdays(day, 3 + rng.randrange(28))
            elif r < 0.90:
                paid = self.cal.add_workdays(self.cal.add_workdays(day, 30), 1 + rng.randrange(45))
            else:
                paid = None
        else:
            paid = self.cal.next_workday(day + dt.timedelta(20 + rng.randrange(100))) if rng.random() < 0.6 else None
        if paid is not None and paid <= self.end:
            again = list(row)
            again[PI["paid_date"]] = h.dates(paid)
            again[PI["paid_amount"]] = row[PI["amount"]]
            if not again[PI["invoice_no"]]:
                again[PI["invoice_no"]] = f"{rng.randrange(10**8):08d}"
            self.pending_purchase.setdefault((h.index, paid), []).append(again)
        # a return (退货) of part of the delivery
        if p.high_value and rng.random() < 0.01:
            back = day + dt.timedelta(2 + rng.randrange(19))
            if back <= self.end:
                n = -min(qty, 1 + rng.randrange(3))
                h.n_purchase += 1
                ret = list(row)
                ret[PI["purchase_line_id"]] = f"CG{back:%Y%m%d}{h.n_purchase:07d}"
                ret[PI["delivery_date"]] = h.dates(back)
                ret[PI["quantity"]] = str(n)
                ret[PI["amount"]] = _cents(_line_cents(n, price))
                ret[PI["invoice_no"]] = ""
                self.pending_purchase.setdefault((h.index, back), []).append(ret)
                h.stock[key] += n

    # usage ----------------------------------------------------------------------------------------

    def _usage_row(self, rng, h: _Hospital, visit: str, patient: str, dept: str, doctor: str, surgery: str,
                   key: str, qty: int, price4: int, at: dt.datetime, day: dt.date) -> list[str]:
        code = h.code_of(key)
        h.n_usage += 1
        row = [""] * len(USAGE.columns)
        row[UI["usage_id"]] = f"SY{day:%Y%m%d}{h.n_usage:07d}"
        row[UI["hospital_code"]] = h.code
        row[UI["visit_id"]] = visit
        row[UI["patient_id_no"]] = patient
        row[UI["dept_code"]] = dept
        row[UI["doctor_code"]] = doctor
        row[UI["surgery_id"]] = surgery
        row[UI["consumable_code"]] = code
        row[UI["udi_di"]] = _udi(code) if rng.random() < h.fmt.fills_udi else ""
        row[UI["batch_no"]] = f"{at:%y%m}{rng.randrange(10000):04d}" if rng.random() < 0.7 else ""
        row[UI["quantity"]] = str(qty)
        row[UI["charge_unit_price"]] = _price(price4)
        row[UI["charge_amount"]] = _cents(_line_cents(qty, price4))
        row[UI["used_at"]] = f"{h.dates(at.date())} {at:%H:%M:%S}"
        return row

    def _pick_product(self, rng, h: _Hospital, kind: str, doctor: _Doctor) -> str:
        cands = [p for p in PRODUCTS if p.kind == kind and p.status == "active" and p.key in h.formulary]
        if doctor.loyal_brand and rng.random() < 0.93:
            mine = [p for p in cands if p.brand == doctor.loyal_brand and p.vbp]
            if mine:
                return mine[rng.randrange(len(mine))].key
        vbp = [p for p in cands if p.vbp]
        if vbp and rng.random() < (0.85 if kind == "stent" else 0.9):
            cands = vbp
        elif vbp:
            cands = [p for p in cands if not p.vbp] or cands
        return _pick(rng, _weighted((p.key, p.weight) for p in cands))

    def _surgery_lines(self, rng, h: _Hospital, kind: str, doctor: _Doctor) -> list[tuple[str, int]]:
        lines: dict[str, int] = {}

        def add(key, q):
            lines[key] = lines.get(key, 0) + q

        outlier = rng.random() < 0.012
        if kind == "pci":
            n = 1 + (rng.random() < 0.45) + (rng.random() < 0.22)
            first = self._pick_product(rng, h, "stent", doctor)
            add(first, 1)
            for _ in range(n - 1):
                add(first if rng.random() < 0.8 else self._pick_product(rng, h, "stent", doctor), 1)
            add(self._pick_product(rng, h, "balloon", doctor), 1 + (rng.random() < 0.2))
            if outlier:  # complex multi-vessel case with expensive non-selected devices
                add("N2" if "N2" in h.formulary else "N1", 3 + rng.randrange(3))
                add("B3", 2)
            if h.untraceable and rng.random() < 0.006:  # 跟台: a device the hospital never bought
                add(h.untraceable, 1)
        elif kind in ("hip", "knee"):
            add(self._pick_product(rng, h, kind, doctor), 1)
            if kind == "hip" and rng.random() < 0.5:
                add(self._pick_product(rng, h, "screw", doctor), 1 + rng.randrange(4))
            elif kind == "knee" and rng.random() < 0.15:
                add(self._pick_product(rng, h, "screw", doctor), 1 + rng.randrange(2))
            if outlier:  # revision with an imported system
                add("NH" if kind == "hip" else "NK", 1)
                add("SC2", 6 + rng.randrange(4))
        else:
            add("ST1" if rng.random() < 0.6 else "ST2", 1 + (rng.random() < 0.25))
            add("CL1", 1 + rng.randrange(4))
            if outlier:
                add("ST1", 4)
        return list(lines.items())

    def _usage_and_surgeries(self, rng, h: _Hospital, day: dt.date, workday: bool, sink: _Sink) -> None:
        for row in self.pending_usage.pop((h.index, day), ()):  # refunds scheduled earlier
            sink.emit(row)
        factor = 1.0 if workday else REST_FACTOR["surgery"]
        plan = []
        for kind in ("pci", "hip", "knee", "gi"):
            for _ in range(_count(rng, self._surgery_rate(h, kind) * factor)):
                plan.append(kind)
        for kind in plan:
            doctor_kind = "joint" if kind in ("hip", "knee") else kind
            patient = self.patient(rng, h, min_age=40 if kind != "gi" else 18)
            if patient is None:
                continue
            doctor: _Doctor = _pick(rng, h.doctor_tables[doctor_kind])
            dept = DEPARTMENTS[doctor_kind][0]
            h.n_visit += 1
            h.n_surgery += 1
            visit = f"ZY{h.n_visit:09d}"
            surgery = f"SS{day:%Y%m%d}{h.n_surgery:05d}"
            admission = day - dt.timedelta(rng.randrange(3))
            los = {"pci": (2, 5), "hip": (5, 10), "knee": (5, 10), "gi": (3, 7)}[kind]
            discharge = day + dt.timedelta(los[0] + rng.randrange(los[1] - los[0] + 1))
            at = dt.datetime.combine(day, dt.time(8 + rng.randrange(10), rng.randrange(60), rng.randrange(60)))
            net = 0
            for key, qty in self._surgery_lines(rng, h, kind, doctor):
                ref = h.last_price.get(key)
                price = ref if ref is not None else self.standard_price(h, key, day)
                if rng.random() < h.markup_rate:  # charged above the purchase price
                    price = price * (105 + rng.randrange(11)) // 100 // 100 * 100
                row = self._usage_row(rng, h, visit, patient[0], dept, doctor.code, surgery, key, qty, price, at, day)
                sink.emit(row)
                h.stock[key] = h.stock.get(key, 0) - qty
                net += _line_cents(qty, price)
                at += dt.timedelta(minutes=1 + rng.randrange(5))
                if rng.random() < 0.02:  # refund (退费) of the line before discharge
                    back = day + dt.timedelta(rng.randrange(min(3, (discharge - day).days + 1)))
                    n = -qty if qty == 1 or rng.random() < 0.5 else -1
                    refund_at = dt.datetime.combine(back, dt.time(16 + rng.randrange(4), rng.randrange(60), 0))
                    if back <= self.end:
                        ref_row = self._usage_row(rng, h, visit, patient[0], dept, doctor.code, surgery, key, n,
                                                  price, refund_at, back)
                        ref_row[UI["udi_di"]] = row[UI["udi_di"]]
                        ref_row[UI["batch_no"]] = row[UI["batch_no"]]
                        if back == day:
                            sink.emit(ref_row)
                        else:
                            self.pending_usage.setdefault((h.index, back), []).append(ref_row)
                        h.stock[key] += -n
                    net += _line_cents(n, price)
            diag, drg, cat = _pick(rng, self._diag_tables[kind if kind != "gi" else "gi"])
            if kind == "pci" and cat == "24" and rng.random() < 0.5:
                cat = "21"
            if discharge <= self.end:
                self.pending_claims.setdefault((h.index, discharge), []).append(
                    ("surgery", visit, patient, cat, admission, discharge, diag, drg, net, _SURGERY_BASE_YUAN[kind])
                )

    # claims ---------------------------------------------------------------------------------------

    @staticmethod
    def _claim_row(h: _Hospital, ymd: str, dstr: str, secs: int, visit: str, pid: str, ins: str, cat: str,
                   admission: str, discharge: str, diag: str, drg: str, money, reversal_of: str = "") -> list[str]:
        """A claim row; ymd/dstr are the settlement day as YYYYMMDD and in the hospital's style."""
        h.n_claim += 1
        total, fund, other, account, cash, nego = money
        c = _cents
        return [
            f"JS{ymd}{h.n_claim:07d}", h.code, visit, pid, ins, cat, admission, discharge,
            f"{dstr} {secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}", diag, drg,
            c(total), c(fund), c(other), c(account), c(cash), c(nego), reversal_of,
        ]

    def _claims(self, rng, h: _Hospital, day: dt.date, workday: bool, sink: _Sink) -> None:
        rnd = rng.random
        ymd = f"{day:%Y%m%d}"
        fmt = h.dates
        dstr = fmt(day)
        for item in self.pending_claims.pop((h.index, day), ()):
            kind = item[0]
            if kind == "surgery":
                _, visit, patient, cat, admission, discharge, diag, drg, net, base = item
                money = self.claim_money(rng, cat, patient[1], max(0, net), base_yuan=base)
                secs = 8 * 3600 + int(rnd() * 9 * 3600)
                row = self._claim_row(h, ymd, dstr, secs, visit, patient[0], patient[1], cat, fmt(admission),
                                      fmt(discharge), diag, drg, money)
                self._emit_claim(rng, h, day, row, money, sink)
            elif kind == "reversal":
                _, o, money = item
                secs = 9 * 3600 + int(rnd() * 8 * 3600)
                neg = tuple(-x for x in money)
                row = self._claim_row(h, ymd, dstr, secs, o[CI["visit_id"]], o[CI["patient_id_no"]],
                                      o[CI["insurance_type"]], o[CI["medical_category"]], o[CI["admission_date"]],
                                      o[CI["discharge_date"]], o[CI["principal_diagnosis"]], o[CI["drg_code"]], neg,
                                      reversal_of=o[CI["settlement_id"]])
                sink.emit(row)
                if rnd() < 0.5:  # settled again, corrected
                    total, fund, other, account, cash, nego = money
                    adj = int(fund * (rnd() - 0.5) * 0.1)
                    money2 = (total, fund + adj, other, account, cash - adj, min(nego, max(fund + adj, 0)))
                    if money2[4] < 0:
                        money2 = money
                    secs = min(secs + 300 + int(rnd() * 3000), 86399)
                    row2 = self._claim_row(h, ymd, dstr, secs, o[CI["visit_id"]], o[CI["patient_id_no"]],
                                           o[CI["insurance_type"]], o[CI["medical_category"]], o[CI["admission_date"]],
                                           o[CI["discharge_date"]], o[CI["principal_diagnosis"]], o[CI["drg_code"]],
                                           money2)
                    sink.emit(row2)
        ob = h.level != "基层"
        claims = h.profile["claims"] * self.volume
        n_out = _count(rng, claims * (1 - h.profile["inpatient"]) * (1.0 if workday else REST_FACTOR["outpatient"]))
        n_in = _count(rng, claims * h.profile["inpatient"] * (1.0 if workday else REST_FACTOR["inpatient"]))
        out_vals, out_cum = self._out_mix if ob else self._out_mix_no_ob
        in_mix = self._in_mix if ob else self._in_mix_no_ob
        diag_out_vals, diag_out_cum = self._diag_tables["outpatient"]
        diag_chronic, diag_in = self._diag_tables["chronic"], self._diag_tables["inpatient"]
        pool = self.patients
        size = len(pool)
        off, width = h.window
        bisect_right = bisect.bisect_right
        claim_money = self.claim_money
        claim_row = self._claim_row
        emit = self._emit_claim
        for i in range(n_out + n_in):
            inpatient = i >= n_out
            cat = _pick(rng, in_mix) if inpatient else out_vals[bisect_right(out_cum, rnd())]
            if cat == "51" or cat == "52":
                patient = self.patient(rng, h, female_fertile=True)
                if patient is None:
                    cat = "21" if inpatient else "11"
                    patient = self.patient(rng, h)
            else:
                r = rnd()
                patient = pool[int(r * 10 * size) % size] if r < 0.1 else pool[(off + int(rnd() * width)) % size]
            drg = ""
            if inpatient:
                if cat == "52":
                    diag, drg = MATERNITY_INPATIENT[int(rnd() * 2)]
                elif cat == "22":
                    diag, drg = TRAUMA_DIAGNOSES[int(rnd() * 2)]
                else:
                    diag, drg = _pick(rng, diag_in)
                    if rnd() < 0.2:
                        drg = ""
                h.n_visit += 1
                visit = f"ZY{h.n_visit:09d}"
                los = 0 if cat == "28" else 2 + int(rnd() * 12)
                admission, discharge = fmt(day - dt.timedelta(los)), dstr
                secs = 8 * 3600 + int(rnd() * 9 * 3600)
            else:
                if cat == "14":
                    diag = _pick(rng, diag_chronic)
                elif cat == "51":
                    diag = MATERNITY_OUTPATIENT[int(rnd() * 2)]
                elif rnd() < 0.9:
                    diag = diag_out_vals[bisect_right(diag_out_cum, rnd())]
                else:
                    diag = CHRONIC_DIAGNOSES[int(rnd() * len(CHRONIC_DIAGNOSES))]
                h.n_visit += 1
                visit = f"MZ{h.n_visit:010d}"
                admission = discharge = ""
                secs = 7 * 3600 + int(rnd() * 14 * 3600)
            money = claim_money(rng, cat, patient[1], 0)
            row = claim_row(h, ymd, dstr, secs, visit, patient[0], patient[1], cat, admission, discharge, diag, drg,
                            money)
            emit(rng, h, day, row, money, sink)

    def _emit_claim(self, rng, h: _Hospital, day: dt.date, row: list[str], money, sink: _Sink) -> None:
        sink.emit(row)
        if rng.random() < 0.006:  # reversed (冲正) later, sometimes in the next month or year
            later = day + dt.timedelta(1 + (rng.randrange(5) if rng.random() < 0.6 else rng.randrange(45)))
            if later <= self.end:
                self.pending_claims.setdefault((h.index, later), []).append(("reversal", list(row), money))

    # -- folder finish: manifest and file-level defects ------------------------------------------

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


class _Sink:
    """One extract file being written: defects are injected here, rows streamed to disk."""

    def __init__(self, city: _City, h: _Hospital, day: dt.date, extract: str, hdir: Path, others: list[str]) -> None:
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
        self.rate = city.defect_rate
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


# --- defects ---------------------------------------------------------------------------------------


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


# --- entry point -----------------------------------------------------------------------------------


def generate_city(
    landing: Path,
    *,
    seed: int = 42,
    hospitals: int = 6,
    start: dt.date,
    end: dt.date,
    volume: float = 1.0,
    defect_rate: float = 0.01,
) -> CitySummary:
    """Write a synthetic city's landing zone under ``landing`` (see the module docstring).

    Same arguments → byte-identical files. ``landing`` must not exist or be empty (a city is
    written whole; mixing two cities in one landing zone would make neither ground truth right).
    """
    if not 1 <= hospitals <= 999:
        raise ValueError("hospitals must be in 1..999")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if volume <= 0:
        raise ValueError("volume must be > 0")
    if not 0 <= defect_rate < 1:
        raise ValueError("defect_rate must be in [0, 1)")
    landing = Path(landing)
    if landing.exists() and any(landing.iterdir()):
        raise FileExistsError(f"{landing} is not empty: generate a city into a new or empty directory")
    landing.mkdir(parents=True, exist_ok=True)
    city = _City(landing, seed, hospitals, start, end, volume, defect_rate)
    city.run()
    counts = {cls: 0 for cls in DEFECT_CLASSES}
    for d in city.defects:
        counts[d["class"]] += 1
    gen = landing / "_generator"
    gen.mkdir(exist_ok=True)
    summary = CitySummary(
        landing=str(landing), seed=seed, start=start.isoformat(), end=end.isoformat(), volume=volume,
        defect_rate=defect_rate, hospitals=[h.code for h in city.hospitals], business_dates=len(city.days),
        rows=dict(city.rows), reference_rows=dict(city.reference_rows), files=dict(city.files),
        bytes=city.bytes, defects=counts,
    )
    summary.files["generator"] = 2
    lines = [json.dumps(d, ensure_ascii=False) for d in city.defects]
    (gen / "defects.json").write_text("[\n" + ",\n".join(lines) + ("\n]\n" if lines else "]\n"), encoding="utf-8")
    data = asdict(summary)
    data.pop("landing")
    data["generator_version"] = GENERATOR_VERSION
    data["hospital_formats"] = {
        h.code: {"level": h.level, "ownership": h.ownership, **asdict(h.fmt)} for h in city.hospitals
    }
    (gen / "summary.json").write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return summary
